"""Shifts of feature maps: the Diagonal BiLSTM's skew (row r shifted right by r) and
unskew, the valid cells of a skewed map, and the one-row shift down that keeps a
pixel's features from seeing its own row."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def skew(x: jax.Array) -> jax.Array:
  """(..., H, W, C) -> (..., H, W + H - 1, C): row i shifted right by i, zeros elsewhere.

  The leading axes are never merged, so a batch sharded over devices stays sharded.
  """
  *lead, h, w, c = x.shape
  padded = jnp.pad(x, [(0, 0)] * len(lead) + [(0, 0), (0, h), (0, 0)])  # Rows of length W + H.
  flat = padded.reshape(*lead, h * (w + h), c)[..., : h * (w + h - 1), :]
  return flat.reshape(*lead, h, w + h - 1, c)


def unskew(x: jax.Array, width: int) -> jax.Array:
  """The exact inverse of `skew`: (..., H, W + H - 1, C) -> (..., H, W, C)."""
  *lead, h, skewed_width, c = x.shape
  if skewed_width != width + h - 1:
    raise ValueError(
      f"A skewed map of height {h} and width {width} has "
      f"{width + h - 1} columns, got {skewed_width}."
    )
  flat = x.reshape(*lead, h * skewed_width, c)
  flat = jnp.pad(flat, [(0, 0)] * len(lead) + [(0, h), (0, 0)])
  return flat.reshape(*lead, h, skewed_width + 1, c)[..., :width, :]


def skewed_validity(height: int, width: int) -> np.ndarray:
  """(W + H - 1, H) float: 1 where column t, row i of the skewed map is in the image."""
  t = np.arange(width + height - 1)[:, None]
  i = np.arange(height)[None, :]
  return ((t - i >= 0) & (t - i < width)).astype(np.float32)


def shift_down(x: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, H, W, C): row i takes row i - 1; row 0 is zero."""
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
