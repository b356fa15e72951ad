"""The K-way softmax likelihood shared by every model, and the masked output head.

Each sub-pixel x[b, i, j, c] takes one of K levels (K = 2 for binarized MNIST,
K = 256 for 8-bit images). A model outputs logits of shape (B, H, W, C, K); the
logits at (i, j, c) may depend only on sub-pixels before (i, j, c) in
raster-then-R,G,B order, so the product of the per-sub-pixel softmaxes is a
normalised distribution over whole images.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from pixelrnn.layers import masks


def log_probs(logits: jax.Array, images: jax.Array) -> jax.Array:
  """Log-probability of every observed sub-pixel.

  Args:
    logits: (B, H, W, C, K) float.
    images: (B, H, W, C) integer levels in [0, K).

  Returns:
    (B, H, W, C) float: log p(x[b, i, j, c] | sub-pixels before it), in nats.
  """
  if logits.ndim != 5 or logits.shape[:4] != images.shape:
    raise ValueError(f"logits {logits.shape} must be images {images.shape} + (K,).")
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(log_p, images[..., None].astype(jnp.int32), axis=-1)[..., 0]


def nll_per_image(logits: jax.Array, images: jax.Array) -> jax.Array:
  """Negative log-likelihood of each image in nats: (B,) from (B,H,W,C,K) logits."""
  return -jnp.sum(log_probs(logits, images), axis=(1, 2, 3))


def bits_per_dim(nats_per_image, num_dims: int):
  """Converts nats per image to bits per sub-pixel: nats / (H * W * C * ln 2)."""
  return nats_per_image / (num_dims * math.log(2.0))


def to_model_input(images: jax.Array, num_levels: int, dtype=jnp.float32) -> jax.Array:
  """Maps integer levels [0, K) to floats in [-1, 1]: (B,H,W,C) -> (B,H,W,C) `dtype`.

  Models pass the dtype of their parameters, so a network whose parameters were cast
  to bfloat16 (see `precision.py`) computes in bfloat16 from its first layer on.
  """
  return (images.astype(jnp.float32) * (2.0 / (num_levels - 1)) - 1.0).astype(dtype)


def input_layer_at(conv: masks.MaskedConv, images: jax.Array, i, j, num_levels: int) -> jax.Array:
  """A model's first layer `conv` at pixel (i, j) of integer images (B, H, W, C) -> (B, F),
  as the model's forward pass applies it to `to_model_input(images)`."""
  return conv.at_image(images, i, j, lambda v: to_model_input(v, num_levels, conv.dtype))
