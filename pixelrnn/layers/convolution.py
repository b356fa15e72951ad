"""A stride-1 'SAME' convolution whose gradients are canonical convolutions.

Autodiff writes a convolution's gradients as convolutions with permuted dimension
labels (the kernel's gradient contracts over the batch, the input's uses the kernel
with its in and out axes swapped). XLA's CPU compiler rewrites such convolutions into
the (batch, height, width, feature) x (height, width, in, out) form its fast
convolution kernel takes, but only in a program's top level: inside a loop body (the
training loop's `fori_loop`, a `scan`) they are left as they are and run several times
slower. `same_conv` states both gradients in the canonical form with explicit
transposes, so they are fast wherever they are compiled; its values are those of
`lax.conv_general_dilated` (tests/test_convolution.py). `conv` does the same for any
size-keeping padding (the causal windows of the Gated PixelCNN's stacks).

`masked_conv` is the masked convolutions' form: where `taps_preferred()` (on a CPU) it
multiplies only the kernel taps a mask leaves visible, stacked as one matrix product
(`taps_conv`), instead of convolving with the zeros of the masked kernel; a 1x1 kernel
whose channel-group mask is block-triangular multiplies only its visible blocks
(`blocked_matmul`) where they are wide enough to pay for the slices.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import jax
import jax.numpy as jnp
import numpy as np

_NHWC = ("NHWC", "HWIO", "NHWC")


Padding = tuple[tuple[int, int], tuple[int, int]]


def same_padding(kernel_shape: tuple[int, ...]) -> Padding:
  """'SAME' padding ((top, bottom), (left, right)) of a stride-1 kernel (kh, kw, ...)."""
  return tuple(((size - 1) // 2, size // 2) for size in kernel_shape[:2])


def _conv(x, kernel, padding):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC)


def same_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """x (B, H, W, I), kernel (kh, kw, I, O) -> (B, H, W, O): a 'SAME' stride-1
  convolution, as `lax.conv_general_dilated` with padding "SAME" computes it."""
  return conv(x, kernel, same_padding(kernel.shape))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  """x (B, H, W, I), kernel (kh, kw, I, O) -> (B, H, W, O): a stride-1 convolution
  whose padding ((top, bottom), (left, right)) keeps the size (top + bottom = kh - 1,
  left + right = kw - 1): output (i, j) reads input rows i - top .. i + bottom and
  columns j - left .. j + right."""
  (top, bottom), (left, right) = padding
  if top + bottom != kernel.shape[0] - 1 or left + right != kernel.shape[1] - 1:
    raise ValueError(f"padding {padding} does not keep the size for a {kernel.shape[:2]} kernel.")
  return _conv(x, kernel, padding)


def _conv_fwd(x, kernel, padding):
  return conv(x, kernel, padding), (x, kernel)


def _conv_bwd(padding, residuals, g):
  x, kernel = residuals
  (top, bottom), (left, right) = padding
  # d x: the flipped kernel, in and out swapped, with the padding mirrored.
  flipped = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
  d_x = _conv(g, flipped, [(bottom, top), (right, left)])
  # d kernel[a, b, i, o] = sum_{n, y, x} x_pad[n, y + a, x + b, i] g[n, y, x, o]: a
  # convolution of the input, batch and features swapped, with the cotangent as kernel.
  d_kernel = _conv(
    jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)), [(top, bottom), (left, right)]
  )  # (I, kh, kw, O)
  return d_x, jnp.transpose(d_kernel, (1, 2, 0, 3))


conv.defvjp(_conv_fwd, _conv_bwd)


Taps = tuple[tuple[int, int], ...]
# Column blocks of a masked matrix: (start, stop, rows), columns start..stop - 1 reading
# input rows 0..rows - 1 and nothing else.
Blocks = tuple[tuple[int, int, int], ...]


MASKED_CONV_FORMS = ("conv", "taps", "blocks")
_FORM = contextvars.ContextVar("masked_conv_form", default=None)


def taps_preferred() -> bool:
  """Whether masked convolutions compute as `taps_conv`: on a CPU, where one matrix
  product of the visible taps runs 1.2-2.5x faster than XLA's convolution of the masked
  kernel, forward and backward (experiments/results/README.md, "CPU speed"). Other
  backends keep the convolution until one is measured both ways. Inside
  `masked_conv_form`, the form it names ("taps" and "blocks" are both taps forms)."""
  form = _FORM.get()
  return jax.default_backend() == "cpu" if form is None else form in ("taps", "blocks")


# Narrower column blocks cost more in slices and concatenations than the masked
# products they skip save: on a CPU, a 1x1 (256 -> 128) layer in 3 channel groups (blocks
# of 43 columns) ran 10% slower blocked, the output head's (256 -> 1024) and
# (1024 -> 768) layers (blocks of 341 and 256) 24% faster (experiments/results/README.md,
# "Channel-group blocks").
MIN_BLOCK_COLUMNS = 256


def blocks_preferred(blocks: Blocks | None) -> bool:
  """Whether a 1x1 masked layer with column `blocks` (`column_blocks`) multiplies them
  one by one: in the "blocks" form wherever there are blocks; by the backend's choice
  (the CPU's) where each block has at least MIN_BLOCK_COLUMNS columns; never in the
  other forms."""
  form = _FORM.get()
  if not blocks or not taps_preferred() or form == "taps":
    return False
  return form == "blocks" or all(stop - start >= MIN_BLOCK_COLUMNS for start, stop, _ in blocks)


@contextlib.contextmanager
def masked_conv_form(form: str | None):
  """Functions traced inside the block compute masked convolutions in `form` ("conv",
  "taps", or "blocks": taps, and every 1x1 layer's channel blocks; None or "default": the
  backend's choice), to measure or test one form against another."""
  form = None if form == "default" else form
  if form is not None and form not in MASKED_CONV_FORMS:
    raise ValueError(f"Unknown masked convolution form {form!r}; valid: {list(MASKED_CONV_FORMS)}.")
  token = _FORM.set(form)
  try:
    yield
  finally:
    _FORM.reset(token)


def taps_conv(
  x: jax.Array, kernel: jax.Array, taps: Taps, padding: Padding | None = None
) -> jax.Array:
  """x (B, H, W, I), kernel (kh, kw, I, O) -> (B, H, W, O): the stride-1 convolution
  with `kernel` and the size-keeping `padding` ((top, bottom), (left, right); default
  'SAME', as `conv` takes it), reading only the kernel positions (a, b) in `taps`; the
  others must be zero (a masked kernel's). Tap (a, b) reads input (i - top + a,
  j - left + b) for output (i, j), and no tap may read a row below the output's.

  The visible taps' shifted inputs are concatenated along the features (B, H, W, T * I)
  and multiplied by their kernel rows (T * I, O): one matrix product, whose gradients
  are matrix products too.
  """
  kh, kw, _, out_features = kernel.shape
  (top, _), (left, right) = same_padding(kernel.shape) if padding is None else padding
  if any(a > top for a, _ in taps):
    raise ValueError(f"taps {taps} reach below the output row of a {kh}x{kw} kernel.")
  if not taps:
    return jnp.zeros(x.shape[:3] + (out_features,), x.dtype)
  height, width = x.shape[1:3]
  if taps == ((top, left),):  # The output pixel alone (a 1x1 kernel): no shifted copies.
    return jnp.einsum("bhwi,io->bhwo", x, kernel[top, left])
  # Rows below the output row are never read, so the bottom needs no padding.
  padded = jnp.pad(x, ((0, 0), (top, 0), (left, right), (0, 0)))
  shifted = jnp.concatenate([padded[:, a : a + height, b : b + width] for a, b in taps], axis=-1)
  rows = jnp.concatenate([kernel[a, b] for a, b in taps], axis=0)
  return jnp.einsum("bhwi,io->bhwo", shifted, rows)


def masked_conv(
  x: jax.Array, kernel: jax.Array, taps: Taps, blocks: Blocks | None = None
) -> jax.Array:
  """x (B, H, W, I), masked kernel (kh, kw, I, O) whose nonzero positions are `taps` ->
  (B, H, W, O): the 'SAME' convolution, in the form the backend runs fastest. `blocks`:
  a 1x1 kernel's visible column blocks (`column_blocks` of its mask), or None."""
  if kernel.shape[:2] == (1, 1) and blocks_preferred(blocks):
    flat = x.reshape(-1, x.shape[-1])
    return blocked_matmul(flat, kernel[0, 0], blocks).reshape(x.shape[:3] + (kernel.shape[-1],))
  return taps_conv(x, kernel, taps) if taps_preferred() else same_conv(x, kernel)


def column_blocks(mask: np.ndarray) -> Blocks | None:
  """The runs of columns of an (I, O) 0/1 mask that see the same prefix of the rows, in
  order (a channel-group mask with contiguous groups: output group g sees input groups
  <= g, or < g); None unless every column sees a prefix, no shorter than the column
  before it sees, and some column hides a row."""
  mask = np.asarray(mask) != 0
  rows = mask.sum(axis=0)
  if not np.array_equal(mask, np.arange(mask.shape[0])[:, None] < rows[None, :]):
    return None
  if np.any(np.diff(rows) < 0) or np.all(rows == mask.shape[0]):
    return None
  starts = [0] + [c for c in range(1, len(rows)) if rows[c] != rows[c - 1]]
  stops = starts[1:] + [len(rows)]
  return tuple((start, stop, int(rows[start])) for start, stop in zip(starts, stops))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def blocked_matmul(x: jax.Array, w: jax.Array, blocks: Blocks) -> jax.Array:
  """x (M, I) @ w (I, O) -> (M, O) for a `w` that is zero outside `blocks`: each column
  block is the product of the rows it sees, x[:, :rows] @ w[:rows, start:stop], so the
  masked zeros are never multiplied, forward or backward."""
  return jnp.concatenate(
    [x[:, :rows] @ w[:rows, start:stop] for start, stop, rows in blocks], axis=-1
  )


def _blocked_matmul_fwd(x, w, blocks):
  return blocked_matmul(x, w, blocks), (x, w)


def _blocked_matmul_bwd(blocks, residuals, g):
  x, w = residuals
  in_features = x.shape[1]
  # d x: the input rows a block reads beyond the block before it are read by that block
  # and every later one, the columns from its start on.
  d_x, first = [], 0
  for start, _, rows in blocks:
    if rows > first:
      d_x.append(g[:, start:] @ w[first:rows, start:].T)
      first = rows
  if first < in_features:  # Rows no block reads.
    d_x.append(jnp.zeros((x.shape[0], in_features - first), x.dtype))
  d_w = [
    jnp.pad(x[:, :rows].T @ g[:, start:stop], ((0, in_features - rows), (0, 0)))
    for start, stop, rows in blocks
  ]
  return jnp.concatenate(d_x, axis=-1), jnp.concatenate(d_w, axis=-1)


blocked_matmul.defvjp(_blocked_matmul_fwd, _blocked_matmul_bwd)
