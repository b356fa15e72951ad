"""Writes images of K levels as PNG grids."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray, num_levels: int) -> np.ndarray:
  """(N, H, W, C) levels in [0, K) -> uint8 (N, H, W, C) in [0, 255]."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
  if images.min(initial=0) < 0 or images.max(initial=0) >= num_levels:
    raise ValueError(
      f"image values must be in [0, {num_levels}), got [{images.min()}, {images.max()}]."
    )
  return np.round(images.astype(np.float64) * 255.0 / (num_levels - 1)).astype(np.uint8)


def grid(
  images: np.ndarray, num_levels: int, columns: int, scale: int = 2, padding: int = 2
) -> np.ndarray:
  """Tiles (N, H, W, C) images row by row into one uint8 (rows*(H+p)+p, ...) picture.

  Each image is upscaled `scale` times (nearest neighbour) and separated by
  `padding` pixels of mid grey.
  """
  pixels = to_uint8(images, num_levels)
  n, h, w, c = pixels.shape
  pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
  h, w = h * scale, w * scale
  rows = -(-n // columns)
  out = np.full(
    (rows * (h + padding) + padding, columns * (w + padding) + padding, c), 128, np.uint8
  )
  for k in range(n):
    r, col = divmod(k, columns)
    top, left = padding + r * (h + padding), padding + col * (w + padding)
    out[top : top + h, left : left + w] = pixels[k]
  return out


def save_grid(path: str, images: np.ndarray, num_levels: int, columns: int, scale: int = 2) -> None:
  """Saves a PNG grid of `images` (see `grid`)."""
  picture = grid(images, num_levels, columns, scale)
  Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(path)


def completion_figure(
  originals: np.ndarray, completions: np.ndarray, num_levels: int, observed_rows: int
) -> np.ndarray:
  """The paper's completion figure as rows of uint8 images (N * (2 + M), H, W, C).

  originals: (N, H, W, C) levels; completions: (N, M, H, W, C). Each row shows the
  occluded image (unobserved rows in mid grey), the M completions, then the original.
  Tile it with `grid(..., num_levels=256, columns=M + 2)`.
  """
  originals = to_uint8(originals, num_levels)
  n, m = completions.shape[:2]
  filled = to_uint8(completions.reshape((n * m,) + completions.shape[2:]), num_levels)
  filled = filled.reshape(completions.shape)
  occluded = originals.copy()
  occluded[:, observed_rows:] = 128
  rows = [np.concatenate([occluded[k : k + 1], filled[k], originals[k : k + 1]]) for k in range(n)]
  return np.concatenate(rows)
