"""Ancestral sampling, one sub-pixel at a time in raster-then-R,G,B order.

The random draw for sub-pixel n (its raster-then-channel index) uses the key
`fold_in(key, n)` and Gumbel-max on logits / temperature, for every image of the
batch at once. Any sampler that computes the same logits therefore draws exactly
the same images from the same key, however it computes them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ApplyFn = Callable[[jax.Array], jax.Array]  # (B, H, W, C) levels -> (B, H, W, C, K) logits.


def draw(key: jax.Array, index: jax.Array, logits: jax.Array, temperature: float) -> jax.Array:
  """Samples levels (B,) from logits (B, K) for the sub-pixel with raster index `index`."""
  return jax.random.categorical(jax.random.fold_in(key, index), logits / temperature, axis=-1)


def check_temperature(temperature: float) -> None:
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature!r}.")


def sample_reference(apply_fn: ApplyFn, key: jax.Array, *, num_samples: int,
                     image_shape: tuple[int, int, int], temperature: float = 1.0,
                     images: jax.Array | None = None, num_observed: int = 0) -> jax.Array:
  """Reference ancestral sampler: a full forward pass per sub-pixel.

  Args:
    apply_fn: the model, (B, H, W, C) levels -> (B, H, W, C, K) logits.
    key: PRNG key; sub-pixel n draws with fold_in(key, n).
    num_samples: B.
    image_shape: (H, W, C).
    temperature: > 0; logits are divided by it.
    images: optional (B, H, W, C) integer images whose first `num_observed`
      sub-pixels (raster-then-channel order) are kept; the rest are sampled.
    num_observed: how many leading sub-pixels of `images` are observed.

  Returns:
    (B, H, W, C) int32 levels.
  """
  check_temperature(temperature)
  h, w, c = image_shape
  if images is None:
    images = jnp.zeros((num_samples, h, w, c), jnp.int32)
  images = jnp.asarray(images, jnp.int32)
  if images.shape != (num_samples, h, w, c):
    raise ValueError(f"images {images.shape} must be {(num_samples, h, w, c)}.")

  def body(n, current):
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits = apply_fn(current)[:, i, j, ch]
    return current.at[:, i, j, ch].set(draw(key, n, logits, temperature).astype(jnp.int32))

  return jax.lax.fori_loop(num_observed, h * w * c, body, images)
