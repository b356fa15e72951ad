"""What a model's outputs mean: the distribution of each pixel given the pixels before it.

`config.model.likelihood` chooses it for any family that supports it:

- "softmax" (`Softmax`): K logits per sub-pixel, outputs (B, H, W, C, K). The logits of
  channel c may read the current pixel's channels < c, so a network's features carry C
  channel groups (`mask_groups` is C) and the sampler draws one sub-pixel at a time.
- "logistic_mixture" (`LogisticMixture`, 8-bit images only): the discretized logistic
  mixture of PixelCNN++ (`logistic_mixture.py`), `num_params(C, K)` numbers per pixel,
  outputs (B, H, W, P). Its channels are coupled inside the distribution, so the
  features of pixel p must see none of p (`mask_groups` is 1: masks treat the pixel as
  one group) and the sampler draws a whole pixel at once (`draws_whole_pixels`).

A distribution is a frozen dataclass: a static attribute of a model, hashable, with no
parameters of its own.
"""

from __future__ import annotations

import dataclasses

import jax

from pixelrnn import likelihood, logistic_mixture

KINDS = ("softmax", "logistic_mixture")


@dataclasses.dataclass(frozen=True)
class Softmax:
  """K-way softmax per sub-pixel (`likelihood.py`)."""

  num_levels: int
  draws_whole_pixels = False

  def mask_groups(self, num_channels: int) -> int:
    return num_channels

  def outputs_per_pixel(self, num_channels: int) -> int:
    return num_channels * self.num_levels

  def shape_outputs(self, flat: jax.Array, num_channels: int) -> jax.Array:
    """(..., C * K) -> (..., C, K) logits."""
    return flat.reshape(*flat.shape[:-1], num_channels, self.num_levels)

  def nll_per_image(self, outputs: jax.Array, images: jax.Array) -> jax.Array:
    """outputs (B, H, W, C, K), images (B, H, W, C) -> (B,) nats."""
    return likelihood.nll_per_image(outputs, images)


@dataclasses.dataclass(frozen=True)
class LogisticMixture:
  """Discretized logistic mixture of `num_components` components per pixel (256 levels)."""

  num_components: int
  draws_whole_pixels = True
  num_levels = logistic_mixture.NUM_LEVELS

  def mask_groups(self, num_channels: int) -> int:
    del num_channels
    return 1

  def outputs_per_pixel(self, num_channels: int) -> int:
    return logistic_mixture.num_params(num_channels, self.num_components)

  def shape_outputs(self, flat: jax.Array, num_channels: int) -> jax.Array:
    del num_channels
    return flat

  def nll_per_image(self, outputs: jax.Array, images: jax.Array) -> jax.Array:
    """outputs (B, H, W, P), images (B, H, W, C) -> (B,) nats."""
    if outputs.ndim != 4 or outputs.shape[:3] != images.shape[:3]:
      raise ValueError(f"outputs {outputs.shape} must be images {images.shape[:3]} + (P,).")
    return logistic_mixture.nll_per_image(outputs, images, self.num_components)

  def sample_pixel(
    self, key: jax.Array, outputs: jax.Array, num_channels: int, temperature: float
  ) -> jax.Array:
    """outputs (B, P) of one pixel -> its levels (B, C) int32, drawn together."""
    return logistic_mixture.sample(key, outputs, num_channels, self.num_components, temperature)


def from_config(model_config, num_levels: int):
  """The distribution `model_config.likelihood` names, for images of `num_levels` levels."""
  kind = model_config.get("likelihood", "softmax")
  if kind == "softmax":
    return Softmax(num_levels)
  if kind != "logistic_mixture":
    raise ValueError(f"Unknown model.likelihood {kind!r}; valid choices: {list(KINDS)}.")
  if num_levels != logistic_mixture.NUM_LEVELS:
    raise ValueError(
      f"model.likelihood='logistic_mixture' models 8-bit images (256 levels); "
      f"this dataset has {num_levels}: use 'softmax'."
    )
  components = model_config.num_mixtures
  if not isinstance(components, int) or isinstance(components, bool) or components < 1:
    raise ValueError(f"model.num_mixtures must be an integer >= 1, got {components!r}.")
  return LogisticMixture(components)


def of(model) -> Softmax | LogisticMixture:
  """A single-scale model's distribution (softmax for a model built before the key)."""
  return getattr(model, "distribution", None) or Softmax(model.num_levels)
