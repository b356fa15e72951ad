"""Shifted convolutions: causality by padding instead of masks (PixelCNN++, Section 2.4).

A "down" convolution with a (kh, kw) kernel, kw odd, computes its output at (i, j) from
input rows i - kh + 1 .. i and the kw columns centred on j: it never reads a row below
i. A "down_right" one reads rows i - kh + 1 .. i and columns j - kw + 1 .. j: nothing
below i, nothing right of j. With `stride` s, output (i, j) sits at input (i s, j s).
Shifting a down convolution's output one row down (`down_shift`) makes it see only the
rows above; shifting a down-right one right (`right_shift`) only the pixels to the left.

The transposed convolutions upsample by 2: a "down" one, kernel (2, 3), gives output
row i from input row i // 2 alone; a "down_right" one, kernel (2, 2), gives output
(i, j) from input (i // 2, j // 2) alone.

Every layer also computes one output row (`row`) or one output pixel (`pixel`) from a
stored map of its input, for the cached sampler. Stored maps are padded with one zero
row on top and one zero column on each side (`padded_map`): enough for any kernel here
(kh <= 2, kw <= 3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pixelrnn.layers import convolution

KINDS = ("down", "down_right")
DIMENSIONS = ("NHWC", "HWIO", "NHWC")
PAD_TOP = PAD_SIDE = 1  # The stored maps' zero border.


def concat_elu(x: jax.Array) -> jax.Array:
  """(..., F) -> (..., 2F): ELU of x and of -x. Zero stays zero, so zero padding does too."""
  return jax.nn.elu(jnp.concatenate([x, -x], axis=-1))


def down_shift(x: jax.Array) -> jax.Array:
  """(B, H, W, F): row i takes row i - 1; row 0 is zero."""
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x: jax.Array) -> jax.Array:
  """(B, H, W, F): column j takes column j - 1; column 0 is zero."""
  return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def padded_map(x: jax.Array) -> jax.Array:
  """(B, H, W, F) -> (B, H + 1, W + 2, F), the stored form of a map."""
  return jnp.pad(x, ((0, 0), (PAD_TOP, 0), (PAD_SIDE, PAD_SIDE), (0, 0)))


def empty_map(batch_size: int, height: int, width: int, features: int, dtype) -> jax.Array:
  return jnp.zeros((batch_size, height + PAD_TOP, width + 2 * PAD_SIDE, features), dtype)


def write(stored: jax.Array, value: jax.Array, r, c) -> jax.Array:
  """A stored map with value (B, 1, n, F) written at row r, columns c .. c + n - 1."""
  return jax.lax.dynamic_update_slice(stored, value, (0, r + PAD_TOP, c + PAD_SIDE, 0))


def read(stored: jax.Array, r, c, n: int) -> jax.Array:
  """(B, 1, n, F) of a stored map at row r, columns c .. c + n - 1."""
  return jax.lax.dynamic_slice_in_dim(
    jax.lax.dynamic_slice_in_dim(stored, r + PAD_TOP, 1, axis=1), c + PAD_SIDE, n, axis=2
  )


def _left(kind: str, kernel_size: tuple[int, int]) -> int:
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
  kh, kw = kernel_size
  if kind == "down" and kw % 2 == 0:
    raise ValueError(f"A down convolution needs an odd kernel width, got {kernel_size}.")
  return (kw - 1) // 2 if kind == "down" else kw - 1


class ShiftedConv(nnx.Module):
  """(B, H, W, in) -> (B, H / s, W / s, out), output (i, j) reading rows <= i s (see the
  module docstring for the columns)."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: tuple[int, int],
    *,
    kind: str,
    rngs: nnx.Rngs,
    stride: int = 1,
    init_scale: float = 1.0,
  ):
    self.kernel_size = tuple(kernel_size)
    self.left = _left(kind, self.kernel_size)
    self.stride = stride
    shape = self.kernel_size + (in_features, out_features)
    self.kernel = nnx.Param(init_scale * nnx.initializers.lecun_normal()(rngs.params(), shape))
    self.bias = nnx.Param(jnp.zeros((out_features,)))

  def __call__(self, x: jax.Array) -> jax.Array:
    # A size-keeping convolution (whose gradients stay fast inside loops: see
    # convolution.py), then every stride-th output: stride-s output (i, j) is the
    # stride-1 output at (i s, j s).
    kh, kw = self.kernel_size
    out = convolution.conv(x, self.kernel[...], ((kh - 1, 0), (self.left, kw - 1 - self.left)))
    return out[:, :: self.stride, :: self.stride] + self.bias[...]

  def region(self, stored: jax.Array, r, c, n: int, transform=lambda v: v) -> jax.Array:
    """Outputs (B, 1, n, out) at row r, columns c .. c + n - 1, from the stored
    (`padded_map`) input, `transform` applied to the input window first."""
    kh, kw = self.kernel_size
    s = self.stride
    rows = jax.lax.dynamic_slice_in_dim(stored, r * s + PAD_TOP - (kh - 1), kh, axis=1)
    window = jax.lax.dynamic_slice_in_dim(rows, c * s + PAD_SIDE - self.left, (n - 1) * s + kw, 2)
    out = jax.lax.conv_general_dilated(
      transform(window), self.kernel[...], (s, s), "VALID", dimension_numbers=DIMENSIONS
    )
    return out + self.bias[...]


class ShiftedDeconv(nnx.Module):
  """(B, h, w, in) -> (B, 2h, 2w, out): a stride-2 transposed convolution, kernel (2, 3)
  ("down": output row i reads input row i // 2) or (2, 2) ("down_right": output (i, j)
  reads input (i // 2, j // 2))."""

  def __init__(self, in_features: int, out_features: int, *, kind: str, rngs: nnx.Rngs):
    self.kernel_size = (2, 3) if kind == "down" else (2, 2)
    _left(kind, self.kernel_size)
    self.crop = 1 if kind == "down" else 0  # Columns cut on the left: centred, or none.
    shape = self.kernel_size + (in_features, out_features)
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), shape))
    self.bias = nnx.Param(jnp.zeros((out_features,)))

  def __call__(self, x: jax.Array) -> jax.Array:
    # Each input pixel's contribution to its output block is one matrix product,
    # out[2i + a, 2j + b - crop] += x[i, j] K[a, b]; a "down" layer's 3-wide blocks
    # overlap their neighbours' by a column.
    batch, h, w, _ = x.shape
    blocks = jnp.einsum("bhwi,klio->bhwklo", x, self.kernel[...])  # (B, h, w, 2, kw, O)
    if self.crop:  # Column 2j: the middle tap; 2j + 1: the right tap and the next left.
      next_left = jnp.pad(blocks[:, :, 1:, :, 0], ((0, 0), (0, 0), (0, 1), (0, 0), (0, 0)))
      blocks = jnp.stack([blocks[:, :, :, :, 1], blocks[:, :, :, :, 2] + next_left], axis=4)
    out = jnp.transpose(blocks, (0, 1, 3, 2, 4, 5)).reshape(batch, 2 * h, 2 * w, -1)
    return out + self.bias[...]

  def row(self, stored: jax.Array, r) -> jax.Array:
    """Output row r (B, 1, 2w, out) from the stored (B, h + 1, w + 2, in) input."""
    width = stored.shape[2] - 2 * PAD_SIDE
    return jax.lax.dynamic_slice_in_dim(self(read(stored, r // 2, 0, width)), r % 2, 1, axis=1)

  def pixel(self, stored: jax.Array, r, c) -> jax.Array:
    """Output (B, 1, 1, out) at (r, c); only for a "down_right" layer, whose output
    pixel reads one input pixel."""
    if self.crop:
      raise ValueError("A down deconvolution's output pixel reads three input columns.")
    block = self(read(stored, r // 2, c // 2, 1))  # (B, 2, 2, out)
    return jax.lax.dynamic_slice(
      block, (0, r % 2, c % 2, 0), block.shape[:1] + (1, 1) + block.shape[3:]
    )
