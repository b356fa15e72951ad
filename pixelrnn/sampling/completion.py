"""Completing occluded images: the rows below `observed_rows` drawn pixel by pixel
given the rows above, with the cached sampler where the model has one."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pixelrnn.sampling.samplers import _refuse_staged, sample
from pixelrnn.training import precision


def integer_images(images) -> jax.Array:
  """Images to complete, checked: an integer (N, H, W, C) array."""
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
  if not jnp.issubdtype(images.dtype, jnp.integer):
    raise ValueError(f"images must hold integer levels, got dtype {images.dtype}.")
  return images


def check_observed_rows(observed_rows: int, height: int) -> None:
  if not 0 <= observed_rows <= height:
    raise ValueError(f"observed_rows must be in [0, {height}], got {observed_rows}.")


@precision.full_precision
def observed_count(
  image_shape: tuple[int, int, int],
  num_observed: int | None,
  observed_pixels: int | None,
  observed_rows: int | None,
  observed_mask: jax.Array | None,
) -> int:
  """The number of observed leading sub-pixels that exactly one of `complete`'s four
  ways of saying it gives; raises ValueError for none, several, or one out of range."""
  h, w, c = image_shape
  total = h * w * c
  given = [a is not None for a in (num_observed, observed_pixels, observed_rows, observed_mask)]
  if sum(given) != 1:
    raise ValueError(
      "Give exactly one of num_observed, observed_pixels, observed_rows or observed_mask."
    )
  if observed_pixels is not None:
    if not 0 <= observed_pixels <= h * w:
      raise ValueError(f"observed_pixels must be in [0, {h * w}], got {observed_pixels}.")
    num_observed = observed_pixels * c
  if observed_rows is not None:
    check_observed_rows(observed_rows, h)
    num_observed = observed_rows * w * c
  if observed_mask is not None:
    num_observed = _mask_prefix_length(observed_mask, image_shape)
  if not 0 <= num_observed <= total:
    raise ValueError(f"num_observed must be in [0, {total}], got {num_observed}.")
  return num_observed


def _mask_prefix_length(observed_mask: jax.Array, image_shape: tuple[int, int, int]) -> int:
  flat = jnp.asarray(observed_mask, bool).reshape(-1)
  if flat.shape != (image_shape[0] * image_shape[1] * image_shape[2],):
    raise ValueError(
      f"observed_mask must have shape {image_shape}, got {jnp.shape(observed_mask)}."
    )
  length = int(flat.sum())
  if not bool(jnp.all(flat[:length])) or bool(jnp.any(flat[length:])):
    raise ValueError(
      "observed_mask is not a raster-order prefix: a PixelRNN/PixelCNN cannot condition "
      "on pixels that come after the ones it generates. Observe the top rows (and a "
      "leading part of the next row) instead."
    )
  return length


def complete(
  model,
  key: jax.Array,
  images: jax.Array,
  *,
  num_observed: int | None = None,
  observed_pixels: int | None = None,
  observed_rows: int | None = None,
  num_completions: int = 1,
  temperature: float = 1.0,
  observed_mask: jax.Array | None = None,
  conditioning: jax.Array | None = None,
) -> jax.Array:
  """Completes images whose leading sub-pixels are observed (the paper's occlusion task).

  Args:
    model: (B, H, W, C) levels -> logits.
    images: (N, H, W, C) integer images; only the observed part is read.
    num_observed: number of observed leading sub-pixels in raster-then-channel order;
      or `observed_pixels`, the number of observed leading pixels (all channels); or
      `observed_rows`, the number of observed top rows (H/2 is the paper's setting).
    num_completions: completions per image.
    observed_mask: optional bool (H, W, C) mask of observed sub-pixels. It must be a
      raster-order prefix: an autoregressive model cannot condition on later pixels.
    conditioning: a conditional model's (N, H, W, c) map, one per image (for a
      class-conditional model, `FunctionalModel.class_conditioning` of its labels).

  Returns:
    (N, num_completions, H, W, C) int32; observed sub-pixels equal `images` exactly.
  """
  _refuse_staged(model)
  images = integer_images(images)
  n, h, w, c = images.shape
  num_observed = observed_count(
    (h, w, c), num_observed, observed_pixels, observed_rows, observed_mask
  )
  repeated = jnp.repeat(images.astype(jnp.int32), num_completions, axis=0)
  if conditioning is not None:
    conditioning = jnp.repeat(conditioning, num_completions, axis=0)
  out = sample(
    model,
    key,
    num_samples=n * num_completions,
    image_shape=(h, w, c),
    temperature=temperature,
    images=repeated,
    num_observed=num_observed,
    conditioning=conditioning,
  )
  return out.reshape(n, num_completions, h, w, c)
