"""A convolution whose window lies above, or above and to the left of, each output
pixel (the Gated PixelCNN's vertical and horizontal stacks): no mask, a shaped window."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixelrnn.layers import convolution, masks


class CausalConv(nnx.Module):
  """A stride-1 convolution whose window ends on the output pixel's row.

  (B, H, W, in) -> (B, H, W, out): output (i, j) reads input rows i - (rows - 1) .. i
  and columns j - left .. j + right, zero outside the map. `centre_mask` (in, out),
  if given, multiplies the tap at (i, j) itself (a channel-group mask). Computed in the
  masked convolutions' form (`convolution.taps_preferred`): on a CPU, one matrix
  product of the window's visible taps.
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    rows: int,
    left: int,
    right: int,
    rngs: nnx.Rngs,
    centre_mask: np.ndarray | None = None,
  ):
    window = np.ones((rows, left + right + 1, in_features, out_features), np.float32)
    if centre_mask is not None:
      window[rows - 1, left] = centre_mask
    self.padding = ((rows - 1, 0), (left, right))
    # Static, from the NumPy window (the module may be built under a trace): the
    # positions with any visible entry, in raster order.
    self.taps = masks.visible_taps(window)
    mask = None if centre_mask is None else jnp.asarray(window)
    self.conv = nnx.Conv(
      in_features,
      out_features,
      kernel_size=(rows, left + right + 1),
      padding=self.padding,
      mask=mask,
      rngs=rngs,
    )

  def weights(self) -> tuple[jax.Array, jax.Array]:
    """The (masked) kernel (rows, left + right + 1, in, out) and the bias (out,)."""
    kernel = self.conv.kernel[...]
    if self.conv.mask is not None:
      kernel = kernel * self.conv.mask[...]
    return kernel, self.conv.bias[...]

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = self.weights()
    if convolution.taps_preferred():
      return convolution.taps_conv(x, kernel, self.taps, self.padding) + bias
    return convolution.conv(x, kernel, self.padding) + bias

  def apply_window(self, window: jax.Array) -> jax.Array:
    """The output at one pixel from its input window (B, rows, left + right + 1, in)."""
    return masks.apply_window(window, *self.weights())
