"""Multi-scale PixelRNN (van den Oord et al. 2016, Section 3.5).

An image x of size n x n is modelled in two stages:
  1. x_sub = x[::f, ::f], its s x s subsample (s = n / f: every f-th pixel of every
     f-th row, e.g. 28 -> 14 on binarized MNIST, 32 -> 16 on CIFAR-10), under an
     unconditional model p_small;
  2. the other pixels under a conditional model p_large(x_i | x_<i, x_sub) of the full
     image, which receives x_sub through a conditioning network (`conditioning.py`) as
     a bias on every layer.

The subsampled pixels are part of the large image, so the large model sees them as
ordinary context once it reaches them, but they are copied from x_sub, never scored
by it:
  log p(x) = log p_small(x_sub) + sum over pixels i not in the subsample of
             log p_large(x_i | x_<i, x_sub).
This is a normalised distribution over n x n images: each image is scored on its
H * W * C sub-pixels exactly once (s * s * C by the small model, the rest by the
large one).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixelrnn import distributions, likelihood
from pixelrnn.layers.conditioning import ConditioningNetwork
from pixelrnn.sampling import completion, samplers
from pixelrnn.training import precision


def check_factor(image_shape: tuple[int, ...], factor: int) -> None:
  """Checks that (H, W, ...) divides into an (H/f, W/f) subsample."""
  height, width = image_shape[:2]
  if factor < 2 or height % factor or width % factor:
    raise ValueError(
      f"The multi-scale factor must be >= 2 and divide the image size "
      f"{height}x{width}, got {factor}."
    )


def subsample(images: jax.Array, factor: int) -> jax.Array:
  """(B, H, W, C) -> (B, H/f, W/f, C): the pixels (f * a, f * b)."""
  check_factor(images.shape[1:], factor)
  return images[:, ::factor, ::factor]


def subsample_mask(height: int, width: int, factor: int) -> np.ndarray:
  """(H, W) bool: True at the subsampled pixels (rows and columns divisible by f)."""
  check_factor((height, width), factor)
  rows = np.arange(height)[:, None] % factor == 0
  cols = np.arange(width)[None, :] % factor == 0
  return rows & cols


def embed(small_images: jax.Array, factor: int) -> jax.Array:
  """(B, s, s, C) -> (B, s*f, s*f, C): the small image at the subsampled positions, 0 elsewhere."""
  b, s_h, s_w, c = small_images.shape
  large = jnp.zeros((b, s_h * factor, s_w * factor, c), small_images.dtype)
  return large.at[:, ::factor, ::factor].set(small_images)


class MultiScale(nnx.Module):
  """The two-stage model: `small` (unconditional, on x_sub), `conditioner` (x_sub to a
  (B, H, W, c) map) and `large` (conditional, on x)."""

  # Drawn stage by stage (`sample`, `complete` below): `samplers.sample` refuses it.
  samples_in_stages = True

  def __init__(
    self,
    small: nnx.Module,
    large: nnx.Module,
    *,
    num_channels: int,
    num_levels: int,
    factor: int,
    conditioning_dim: int,
    embedding_layers: int,
    rngs: nnx.Rngs,
  ):
    if getattr(large, "conditioning_dim", 0) != conditioning_dim:
      raise ValueError(
        f"The large model must be built with conditioning_dim="
        f"{conditioning_dim}, got {getattr(large, 'conditioning_dim', 0)}."
      )
    self.factor = factor
    self.num_levels = num_levels
    self.small = small
    self.large = large
    self.conditioner = ConditioningNetwork(
      num_channels=num_channels,
      num_levels=num_levels,
      factor=factor,
      conditioning_dim=conditioning_dim,
      num_layers=embedding_layers,
      rngs=rngs,
    )

  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, H, W, C) levels -> (small logits (B, H/f, W/f, C, K), large logits (B, H, W, C, K))."""
    small = subsample(images, self.factor)
    return self.small(small), self.large(images, self.conditioner(small))

  def nll_terms(self, images: jax.Array) -> dict[str, jax.Array]:
    """Per-image NLL in nats (B,): "nll" = "small_nll" + "large_nll".

    "small_nll" scores the subsample under the small model; "large_nll" scores every
    other sub-pixel under the large model; the large model's logits at the
    subsampled pixels are not used.
    """
    small_logits, large_logits = self(images)
    small_nll = likelihood.nll_per_image(small_logits, subsample(images, self.factor))
    scored = ~subsample_mask(images.shape[1], images.shape[2], self.factor)
    log_p = likelihood.log_probs(large_logits, images)
    large_nll = -jnp.sum(jnp.where(scored[None, :, :, None], log_p, 0.0), axis=(1, 2, 3))
    return {"nll": small_nll + large_nll, "small_nll": small_nll, "large_nll": large_nll}


def part_dims(image_shape: tuple[int, int, int], factor: int) -> dict[str, int]:
  """Sub-pixels each NLL term (`nll_terms`) scores: "nll" H*W*C, and for factor f >= 2
  also "small_nll" + "large_nll" = H*W*C."""
  total = math.prod(image_shape)
  if factor == 1:
    return {"nll": total}
  height, width, channels = image_shape
  small = (height // factor) * (width // factor) * channels
  return {"nll": total, "small_nll": small, "large_nll": total - small}


def nll_terms(model: nnx.Module, images: jax.Array) -> dict[str, jax.Array]:
  """Per-image NLL terms (B,) of any model; single-scale models have only "nll"."""
  if isinstance(model, MultiScale):
    return model.nll_terms(images)
  return {"nll": distributions.of(model).nll_per_image(model(images), images)}


@precision.full_precision
def sample(
  model: MultiScale,
  key: jax.Array,
  *,
  num_samples: int,
  image_shape: tuple[int, int, int],
  temperature: float = 1.0,
  cached: bool = True,
  small_images: jax.Array | None = None,
  small_observed: int = 0,
  images: jax.Array | None = None,
  num_observed: int = 0,
) -> tuple[jax.Array, jax.Array]:
  """Samples x_sub from the small model, then x from the large one given x_sub.

  The two stages use the keys split from `key` and the incremental samplers where
  the models have them (`cached`). The large sampler copies the subsampled pixels
  from x_sub instead of drawing them, so `large[:, ::f, ::f] == small` exactly.
  Optionally the leading `small_observed` / `num_observed` sub-pixels of
  `small_images` / `images` are kept (see `complete`).

  Returns:
    (small (B, H/f, W/f, C), large (B, H, W, C)) int32 levels.
  """
  f = model.factor
  check_factor(image_shape, f)
  height, width, channels = image_shape
  small_key, large_key = jax.random.split(key)
  small = samplers.sample(
    model.small,
    small_key,
    num_samples=num_samples,
    image_shape=(height // f, width // f, channels),
    temperature=temperature,
    cached=cached,
    images=small_images,
    num_observed=small_observed,
  )
  if images is None:
    images = jnp.zeros((num_samples,) + tuple(image_shape), jnp.int32)
  fixed = jnp.asarray(subsample_mask(height, width, f))
  images = jnp.where(fixed[None, :, :, None], embed(small, f), jnp.asarray(images, jnp.int32))
  large = samplers.sample(
    model.large,
    large_key,
    num_samples=num_samples,
    image_shape=image_shape,
    temperature=temperature,
    cached=cached,
    images=images,
    num_observed=num_observed,
    conditioning=model.conditioner(small),
    fixed=fixed,
  )
  return small, large


@precision.full_precision
def complete(
  model: MultiScale,
  key: jax.Array,
  images: jax.Array,
  *,
  observed_rows: int,
  num_completions: int = 1,
  temperature: float = 1.0,
) -> jax.Array:
  """Completes images whose top `observed_rows` rows are observed.

  The subsample's rows inside the observed rows are observed for the small model
  (they are copies of observed pixels); the rest of x_sub is sampled, then the large
  image given the observed rows and x_sub.

  Returns:
    (N, num_completions, H, W, C) int32; the observed rows equal `images` exactly.
  """
  images = completion.integer_images(images)
  n, h, w, c = images.shape
  completion.check_observed_rows(observed_rows, h)
  f = model.factor
  repeated = jnp.repeat(images.astype(jnp.int32), num_completions, axis=0)
  small_rows = -(-observed_rows // f)  # Subsample rows 0, f, 2f, ... below observed_rows.
  _, large = sample(
    model,
    key,
    num_samples=n * num_completions,
    image_shape=(h, w, c),
    temperature=temperature,
    small_images=subsample(repeated, f),
    small_observed=small_rows * (w // f) * c,
    images=repeated,
    num_observed=observed_rows * w * c,
  )
  return large.reshape(n, num_completions, h, w, c)
