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
(`taps_conv`), instead of convolving with the zeros of the masked kernel.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import jax
import jax.numpy as jnp

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


MASKED_CONV_FORMS = ("conv", "taps")
_FORM = contextvars.ContextVar("masked_conv_form", default=None)


def taps_preferred() -> bool:
  """Whether masked convolutions compute as `taps_conv`: on a CPU, where one matrix
  product of the visible taps runs 1.2-2.5x faster than XLA's convolution of the masked
  kernel, forward and backward (experiments/results/README.md, "CPU speed"). Other
  backends keep the convolution until one is measured both ways. Inside
  `masked_conv_form`, the form it names."""
  form = _FORM.get()
  return jax.default_backend() == "cpu" if form is None else form == "taps"


@contextlib.contextmanager
def masked_conv_form(form: str | None):
  """Functions traced inside the block compute masked convolutions in `form` ("conv" or
  "taps"; None: the backend's choice), to measure or test one form against the other."""
  if form is not None and form not in MASKED_CONV_FORMS:
    raise ValueError(f"Unknown masked convolution form {form!r}; valid: {list(MASKED_CONV_FORMS)}.")
  token = _FORM.set(form)
  try:
    yield
  finally:
    _FORM.reset(token)


def taps_conv(x: jax.Array, kernel: jax.Array, taps: Taps) -> jax.Array:
  """x (B, H, W, I), kernel (kh, kw, I, O) -> (B, H, W, O): the 'SAME' stride-1
  convolution with `kernel`, reading only the kernel positions (a, b) in `taps`; the
  others must be zero (a masked kernel's), and no tap may lie below the centre row.

  The visible taps' shifted inputs are concatenated along the features (B, H, W, T * I)
  and multiplied by their kernel rows (T * I, O): one matrix product, whose gradients
  are matrix products too.
  """
  kh, kw, _, out_features = kernel.shape
  top, left = kh // 2, kw // 2
  if any(a > top for a, _ in taps):
    raise ValueError(f"taps {taps} reach below the centre row of a {kh}x{kw} kernel.")
  if not taps:
    return jnp.zeros(x.shape[:3] + (out_features,), x.dtype)
  height, width = x.shape[1:3]
  if taps == ((top, left),):  # The centre alone (a 1x1 kernel): no shifted copies.
    return jnp.einsum("bhwi,io->bhwo", x, kernel[top, left])
  # Rows below the centre are never read, so the bottom needs no padding.
  padded = jnp.pad(x, ((0, 0), (top, 0), (left, kw - 1 - left), (0, 0)))
  shifted = jnp.concatenate([padded[:, a : a + height, b : b + width] for a, b in taps], axis=-1)
  rows = jnp.concatenate([kernel[a, b] for a, b in taps], axis=0)
  return jnp.einsum("bhwi,io->bhwo", shifted, rows)


def masked_conv(x: jax.Array, kernel: jax.Array, taps: Taps) -> jax.Array:
  """x (B, H, W, I), masked kernel (kh, kw, I, O) whose nonzero positions are `taps` ->
  (B, H, W, O): the 'SAME' convolution, in the form the backend runs fastest."""
  return taps_conv(x, kernel, taps) if taps_preferred() else same_conv(x, kernel)
