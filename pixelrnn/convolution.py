"""A stride-1 'SAME' convolution whose gradients are canonical convolutions.

Autodiff writes a convolution's gradients as convolutions with permuted dimension
labels (the kernel's gradient contracts over the batch, the input's uses the kernel
with its in and out axes swapped). XLA's CPU compiler rewrites such convolutions into
the (batch, height, width, feature) x (height, width, in, out) form its fast
convolution kernel takes, but only in a program's top level: inside a loop body (the
training loop's `fori_loop`, a `scan`) they are left as they are and run several times
slower. `same_conv` states both gradients in the canonical form with explicit
transposes, so they are fast wherever they are compiled; its values are those of
`lax.conv_general_dilated` (tests/test_convolution.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_NHWC = ("NHWC", "HWIO", "NHWC")


def _padding(kernel_size: int) -> tuple[int, int]:
  """'SAME' padding for an odd kernel size at stride 1."""
  return ((kernel_size - 1) // 2, kernel_size // 2)


def _conv(x, kernel, padding):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC)


@jax.custom_vjp
def same_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """x (B, H, W, I), kernel (kh, kw, I, O) -> (B, H, W, O): a 'SAME' stride-1
  convolution, as `lax.conv_general_dilated` with padding "SAME" computes it."""
  return _conv(x, kernel, [_padding(kernel.shape[0]), _padding(kernel.shape[1])])


def _same_conv_fwd(x, kernel):
  return same_conv(x, kernel), (x, kernel)


def _same_conv_bwd(residuals, g):
  x, kernel = residuals
  (top, bottom), (left, right) = _padding(kernel.shape[0]), _padding(kernel.shape[1])
  # d x: the flipped kernel, in and out swapped, with the padding mirrored.
  flipped = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
  d_x = _conv(g, flipped, [(bottom, top), (right, left)])
  # d kernel[a, b, i, o] = sum_{n, y, x} x_pad[n, y + a, x + b, i] g[n, y, x, o]: a
  # convolution of the input, batch and features swapped, with the cotangent as kernel.
  d_kernel = _conv(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)),
                   [(top, bottom), (left, right)])  # (I, kh, kw, O)
  return d_x, jnp.transpose(d_kernel, (1, 2, 0, 3))


same_conv.defvjp(_same_conv_fwd, _same_conv_bwd)
