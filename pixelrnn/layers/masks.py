"""Autoregressive masks for convolutions over images with R, G, B channel groups.

Sub-pixels are ordered raster-first (row by row, left to right) and then by colour
channel (R, G, B) within a pixel. A layer with `n` features on an image with `C`
channels splits its features into `C` contiguous groups: feature `f` belongs to group
`f * C // n`. Group `g` of a hidden layer carries information that the model may use
to predict channel `g` of the current pixel.

- Mask A (first layer): group `g` at the centre pixel sees input groups `< g` only.
- Mask B (later layers): group `g` at the centre pixel also sees group `g`.

Positions strictly before the centre in raster order are fully visible; positions
after it are invisible. With one channel, mask A hides the centre entirely and
mask B shows it, i.e. they degenerate to the plain spatial masks of the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixelrnn.layers import convolution

MaskType = Literal["A", "B"]
MASK_TYPES = ("A", "B")


def channel_groups(num_features: int, num_channels: int) -> np.ndarray:
  """Returns the channel group (0..num_channels-1) of each of `num_features` features.

  Groups are contiguous and as equal in size as possible. Every group must be
  non-empty, or the corresponding colour channel would have no features to carry it.
  """
  if num_channels < 1:
    raise ValueError(f"num_channels must be >= 1, got {num_channels}.")
  if num_features < num_channels:
    raise ValueError(
      f"A layer with {num_features} features cannot be split into {num_channels} "
      f"channel groups: it needs at least {num_channels} features."
    )
  return np.arange(num_features) * num_channels // num_features


def gate_groups(hidden_dim: int, num_channels: int, num_gates: int) -> np.ndarray:
  """Groups of `num_gates` stacked blocks of `hidden_dim` features (LSTM gates).

  Feature k of gate block q is gate q of hidden unit k, so it takes that unit's
  group: the R, G, B split repeats in every block.
  """
  return np.tile(channel_groups(hidden_dim, num_channels), num_gates)


def centre_mask_from_groups(
  in_groups: np.ndarray, out_groups: np.ndarray, mask_type: MaskType
) -> np.ndarray:
  """(len(in_groups), len(out_groups)) 0/1 mask applied at the centre pixel."""
  if mask_type not in MASK_TYPES:
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}.")
  in_groups = np.asarray(in_groups)[:, None]
  out_groups = np.asarray(out_groups)[None, :]
  allowed = in_groups < out_groups if mask_type == "A" else in_groups <= out_groups
  return allowed.astype(np.float32)


def centre_mask(
  in_features: int, out_features: int, num_channels: int, mask_type: MaskType
) -> np.ndarray:
  """Returns the (in_features, out_features) 0/1 mask applied at the centre pixel."""
  return centre_mask_from_groups(
    channel_groups(in_features, num_channels), channel_groups(out_features, num_channels), mask_type
  )


def conv_mask(
  kernel_size: tuple[int, int],
  in_features: int,
  out_features: int,
  num_channels: int,
  mask_type: MaskType,
  out_groups: np.ndarray | None = None,
) -> np.ndarray:
  """Returns a (kh, kw, in_features, out_features) 0/1 mask for a 'SAME' convolution.

  The kernel centre sits at (kh // 2, kw // 2), so both sizes must be odd. A kernel
  row above the centre row is fully visible, the centre row is visible left of the
  centre, and the centre position follows the channel-group rule. `out_groups`
  overrides the contiguous grouping of the outputs (see `gate_groups`).
  """
  kh, kw = kernel_size
  if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
    raise ValueError(f"Masked kernels need odd sizes, got kernel_size={kernel_size}.")
  if out_groups is None:
    out_groups = channel_groups(out_features, num_channels)
  elif len(out_groups) != out_features:
    raise ValueError(f"out_groups has {len(out_groups)} entries for {out_features} features.")
  ch, cw = kh // 2, kw // 2
  mask = np.zeros((kh, kw, in_features, out_features), np.float32)
  mask[:ch] = 1.0
  mask[ch, :cw] = 1.0
  mask[ch, cw] = centre_mask_from_groups(
    channel_groups(in_features, num_channels), out_groups, mask_type
  )
  return mask


def visible_taps(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
  """The positions (a, b) of a (kh, kw, in, out) mask with any visible entry, in raster
  order: the rows above the centre, the centre row up to the centre."""
  return tuple((int(a), int(b)) for a, b in zip(*np.nonzero(mask.any(axis=(2, 3)))))


def apply_window(window: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """One kernel application: window (B, kh, kw, in), kernel (kh, kw, in, out) -> (B, out)."""
  return jnp.einsum("bhwi,hwio->bo", window, kernel) + bias


def image_window(
  images: jax.Array, rows: jax.Array, cols: jax.Array, to_input: Callable[[jax.Array], jax.Array]
) -> jax.Array:
  """The window (B, len(rows), len(cols), C) of unpadded images (B, H, W, C) at the
  given row and column indices, mapped by `to_input`; taps outside the image read
  zero, as a convolution's zero padding does."""
  height, width = images.shape[1:3]
  window = images[:, jnp.clip(rows, 0, height - 1)][:, :, jnp.clip(cols, 0, width - 1)]
  inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
  return jnp.where(inside[None, :, :, None], to_input(window), 0)


class MaskedConv(nnx.Module):
  """A 'SAME' convolution whose kernel is multiplied by an autoregressive mask.

  Input (B, H, W, in_features) -> output (B, H, W, out_features). Output group g at
  pixel p sees input pixels strictly before p in raster order, and the input groups
  at p allowed by `mask_type` (see the module docstring).
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: tuple[int, int],
    *,
    num_channels: int,
    mask_type: MaskType,
    rngs: nnx.Rngs,
    out_groups: np.ndarray | None = None,
  ):
    mask = conv_mask(kernel_size, in_features, out_features, num_channels, mask_type, out_groups)
    self.conv = nnx.Conv(
      in_features,
      out_features,
      kernel_size=kernel_size,
      padding="SAME",
      mask=jnp.asarray(mask),
      rngs=rngs,
    )
    # Static: the kernel positions the mask leaves (partly) visible, in raster order, and
    # for a 1x1 kernel the column blocks its channel groups leave visible.
    self.taps = visible_taps(mask)
    self.blocks = convolution.column_blocks(mask[0, 0]) if tuple(kernel_size) == (1, 1) else None

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = self.weights()
    return convolution.masked_conv(x, kernel, self.taps, self.blocks) + bias

  @property
  def dtype(self):
    """The dtype of the kernel, which the layer computes in."""
    return self.conv.kernel.dtype

  def weights(self) -> tuple[jax.Array, jax.Array]:
    """The masked kernel (kh, kw, in, out) and the bias (out,) that `__call__` applies."""
    return self.conv.kernel[...] * self.conv.mask[...], self.conv.bias[...]

  # Incremental application, one pixel at a time (the models' `step` for sampling).
  # The input map is kept in a cache padded by (kh // 2, kw // 2) on each side, so that
  # the window of pixel (i, j) starts at (i, j) of the cache.

  def empty_cache(self, batch_size: int, height: int, width: int) -> jax.Array:
    """Zeros (B, H + kh - 1, W + kw - 1, in): the padded input map before any pixel."""
    kh, kw = self.conv.kernel.shape[:2]
    return jnp.zeros(
      (batch_size, height + kh - 1, width + kw - 1, self.conv.in_features), self.dtype
    )

  def write(self, cache: jax.Array, x: jax.Array, i, j) -> jax.Array:
    """The cache with the input features x (B, in) of pixel (i, j) written in."""
    kh, kw = self.conv.kernel.shape[:2]
    return cache.at[:, i + kh // 2, j + kw // 2].set(x)

  def at(self, cache: jax.Array, i, j) -> jax.Array:
    """The output (B, out) at pixel (i, j): one kernel application to its window.

    Masked taps read nothing, so only the cache's pixels before (i, j), and (i, j)
    itself, need to be written.
    """
    kernel, bias = self.weights()
    kh, kw = kernel.shape[:2]
    window = jax.lax.dynamic_slice(cache, (0, i, j, 0), (cache.shape[0], kh, kw, cache.shape[-1]))
    return apply_window(window, kernel, bias)

  def at_image(
    self, images: jax.Array, i, j, to_input: Callable[[jax.Array], jax.Array]
  ) -> jax.Array:
    """The output (B, out) at pixel (i, j) of the first layer, read from the images.

    images: (B, H, W, C), not padded: the image being sampled, whose values change
    between steps, so no copy of it is cached. `to_input` maps the window's values to
    the layer's input (e.g. levels to floats); taps outside the image read zero, as
    the 'SAME' padding of `__call__` does.
    """
    kernel, bias = self.weights()
    kh, kw = kernel.shape[:2]
    window = image_window(
      images, i - kh // 2 + jnp.arange(kh), j - kw // 2 + jnp.arange(kw), to_input
    )
    return apply_window(window, kernel, bias)

  def at_pixel(self, x: jax.Array) -> jax.Array:
    """A 1x1 convolution on the features (..., in) of single pixels -> (..., out)."""
    kernel, bias = self.weights()
    if kernel.shape[:2] != (1, 1):
      raise ValueError(f"at_pixel needs a 1x1 kernel, this one is {kernel.shape[:2]}.")
    return x @ kernel[0, 0] + bias
