"""Gated PixelCNN (van den Oord et al. 2016b, "Conditional Image Generation with
PixelCNN Decoders", Section 2).

Stacked masked k x k convolutions (`pixelcnn.py`) reach one pixel further to the
upper right per layer, so part of the rows above is never seen: the PixelCNN's blind
spot. Two stacks of convolutions remove it:

- The vertical stack: a layer's output at (i, j) reads its input on rows
  i - k//2 .. i, columns j - k//2 .. j + k//2. It sees rows <= i of the image, the
  current row's future included, so it is read only one row further down.
- The horizontal stack: a layer's output at (i, j) reads its input on row i, columns
  j - k//2 .. j, the pixel itself through the R, G, B channel-group masks (mask A in
  the first layer, mask B after), plus a 1x1 convolution of the vertical stack's
  pre-activations shifted down one row: the rows above, whole, and nothing of row i.

Units are gated: a pre-activation [a | b] of 2p features gives tanh(a) * sigmoid(b),
p features, unit u's two halves in u's channel group. Every layer's gated horizontal
output goes through a 1x1 mask-B convolution that is added to the layer's input (from
the second layer on: the first layer's input is the image) and through another, to
2p features, into the skip sum, which the shared masked output head reads.

So the logits of sub-pixel (i, j, c) see (i, j)'s channels < c, the pixels left of
(i, j) on row i, and the rows above; with enough layers, every earlier sub-pixel
(tests/test_gated_pixelcnn.py, beside the PixelCNN's blind spot).

With `conditioning_dim = c > 0` a (B, H, W, c) map is projected and added to both
stacks' pre-activations in every layer (`conditioning.py`); a class label is a
one-hot map.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pixelrnn import distributions, likelihood
from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.layers import masks, output_head
from pixelrnn.layers.causal_conv import CausalConv
from pixelrnn.layers.shifts import shift_down


def gate(pre_activation: jax.Array) -> jax.Array:
  """(..., 2p) laid out [a | b] -> (..., p): tanh(a) * sigmoid(b)."""
  a, b = jnp.split(pre_activation, 2, axis=-1)
  return jnp.tanh(a) * jax.nn.sigmoid(b)


class GatedLayer(nnx.Module):
  """One layer of both stacks: (vertical (B, H, W, in), horizontal (B, H, W, in)) ->
  (vertical (B, H, W, p), horizontal (B, H, W, p), skip (B, H, W, 2p))."""

  def __init__(
    self,
    in_features: int,
    features: int,
    kernel_size: int,
    *,
    num_channels: int,
    first: bool,
    rngs: nnx.Rngs,
    conditioning_dim: int = 0,
  ):
    half = kernel_size // 2
    gate_groups = masks.gate_groups(features, num_channels, 2)
    in_groups = masks.channel_groups(in_features, num_channels)
    self.first = first
    self.vertical = CausalConv(
      in_features, 2 * features, rows=half + 1, left=half, right=half, rngs=rngs
    )
    self.horizontal = CausalConv(
      in_features,
      2 * features,
      rows=1,
      left=half,
      right=0,
      rngs=rngs,
      centre_mask=masks.centre_mask_from_groups(in_groups, gate_groups, "A" if first else "B"),
    )
    # The rows above are all in the past: the link needs no mask.
    self.link = nnx.Linear(2 * features, 2 * features, rngs=rngs)
    kw = dict(num_channels=num_channels, mask_type="B", rngs=rngs)
    self.out = masks.MaskedConv(features, features, (1, 1), **kw)
    self.skip = masks.MaskedConv(features, 2 * features, (1, 1), **kw)
    self.conditioning_vertical = conditioning_lib.projection(conditioning_dim, 2 * features, rngs)
    self.conditioning_horizontal = conditioning_lib.projection(conditioning_dim, 2 * features, rngs)

  def __call__(
    self, vertical: jax.Array, horizontal: jax.Array, conditioning: jax.Array | None = None
  ):
    v_pre = conditioning_lib.add_bias(
      self.vertical(vertical), self.conditioning_vertical, conditioning
    )
    h_pre = conditioning_lib.add_bias(
      self.horizontal(horizontal) + shift_down(self.link(v_pre)),
      self.conditioning_horizontal,
      conditioning,
    )
    gated = gate(h_pre)
    out = self.out(gated)
    return gate(v_pre), out if self.first else horizontal + out, self.skip(gated)

  # One pixel at a time, for sampling (see `GatedPixelCNN.step`).

  def init_cache(self, batch_size: int, height: int, width: int) -> dict:
    """`step`'s state before the first pixel, all zero.

    "vertical": the vertical stack's input on the last k//2 + 1 rows, padded by k//2
    left and right, row r in slot r mod (k//2 + 1) (B, k//2 + 1, W + 2 (k//2), in); rows
    above the image are zero. "link": the link's output for the row above (B, W, 2p).
    "row": the horizontal stack's input on the current row, padded by k//2 on the left
    (B, W + k//2, in).
    """
    (top, _), (left, right) = self.vertical.padding
    in_features = self.vertical.conv.in_features
    dtype = self.vertical.conv.kernel.dtype
    return {
      "vertical": jnp.zeros((batch_size, top + 1, width + left + right, in_features), dtype),
      "link": jnp.zeros((batch_size, width, self.link.out_features), dtype),
      "row": jnp.zeros((batch_size, width + left, in_features), dtype),
    }

  def vertical_row(
    self, cache: dict, x: jax.Array, r, conditioning: jax.Array | None
  ) -> tuple[jax.Array, dict]:
    """The vertical stack on image row r, complete: its input x (B, W, in) on row r ->
    its output (B, W, p) there, and the cache with row r's input and the link for the
    row below. Running it again on the same row gives the same cache."""
    (top, _), (left, _) = self.vertical.padding
    slots = top + 1
    maps = cache["vertical"]
    maps = jax.lax.dynamic_update_slice(
      maps, x[:, None].astype(maps.dtype), (0, r % slots, left, 0)
    )
    window = jnp.take(maps, (r - top + jnp.arange(slots)) % slots, axis=1)  # Rows r-k//2..r.
    kernel, bias = self.vertical.weights()
    v_pre = (
      jax.lax.conv_general_dilated(
        window, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
      )[:, 0]
      + bias
    )
    v_pre = conditioning_lib.add_bias(
      v_pre, self.conditioning_vertical, conditioning_lib.row(conditioning, r)
    )
    return gate(v_pre), {**cache, "vertical": maps, "link": self.link(v_pre)}

  def step(
    self,
    cache: dict,
    x: jax.Array,
    j,
    conditioning: jax.Array | None,
    window: jax.Array | None = None,
  ) -> tuple[jax.Array, jax.Array, dict]:
    """The horizontal stack at pixel (i, j) of the current row.

    x: the layer's horizontal input (B, in) at (i, j), written into the row cache
    whose window the convolution reads; or, for the first layer, `window`
    (B, 1, k//2 + 1, in), read from the image by the caller. conditioning: (B, c) at
    (i, j), or None. Returns the horizontal output (B, p), the skip term (B, p) and
    the cache.
    """
    if window is None:
      (_, _), (left, _) = self.horizontal.padding
      row = cache["row"].at[:, j + left].set(x)
      window = jax.lax.dynamic_slice_in_dim(row, j, left + 1, axis=1)[:, None]
      cache = {**cache, "row": row}
    h_pre = conditioning_lib.add_bias(
      self.horizontal.apply_window(window) + jnp.take(cache["link"], j, axis=1),
      self.conditioning_horizontal,
      conditioning,
    )
    gated = gate(h_pre)
    out = self.out.at_pixel(gated)
    return out if self.first else x + out, self.skip.at_pixel(gated), cache


class GatedPixelCNN(nnx.Module):
  """Images (B, H, W, C) as float levels in [0, K) -> logits (B, H, W, C, K).

  `num_layers` gated layers of `hidden_dim` (p) units: the first with
  `first_kernel_size` (k = 7) windows, the rest `kernel_size` (k = 3).
  """

  config_defaults: dict = {}  # No `config.model` keys beyond those every model takes.

  def __init__(
    self,
    *,
    num_channels: int,
    num_levels: int,
    hidden_dim: int,
    num_layers: int,
    output_dim: int,
    rngs: nnx.Rngs,
    conditioning_dim: int = 0,
    first_kernel_size: int = 7,
    kernel_size: int = 3,
    distribution=None,
  ):
    if num_layers < 1:
      raise ValueError(f"A Gated PixelCNN needs num_layers >= 1, got {num_layers}.")
    self.num_levels = num_levels
    self.conditioning_dim = conditioning_dim
    self.distribution = distribution or distributions.Softmax(num_levels)
    self.layers = nnx.List(
      [
        GatedLayer(
          num_channels if layer == 0 else hidden_dim,
          hidden_dim,
          first_kernel_size if layer == 0 else kernel_size,
          num_channels=self.distribution.mask_groups(num_channels),
          first=layer == 0,
          conditioning_dim=conditioning_dim,
          rngs=rngs,
        )
        for layer in range(num_layers)
      ]
    )
    self.head = output_head.OutputHead(
      2 * hidden_dim,
      output_dim,
      num_channels=num_channels,
      distribution=self.distribution,
      rngs=rngs,
    )

  def __call__(self, images: jax.Array, conditioning: jax.Array | None = None) -> jax.Array:
    """images (B, H, W, C) levels, conditioning (B, H, W, c) or None -> logits."""
    conditioning_lib.check_map(conditioning, images.shape, self.conditioning_dim)
    x = likelihood.to_model_input(
      images, self.num_levels, self.layers[0].vertical.conv.kernel.dtype
    )
    vertical = horizontal = x
    skip_sum = 0.0
    for layer in self.layers:
      vertical, horizontal, skip = layer(vertical, horizontal, conditioning)
      skip_sum = skip_sum + skip
    return self.head(skip_sum)

  def init_cache(self, batch_size: int, image_shape: tuple[int, int, int]) -> list:
    """The state of `step` before the first pixel: every layer's cache."""
    height, width, _ = image_shape
    return [layer.init_cache(batch_size, height, width) for layer in self.layers]

  def step(
    self, cache: list, images: jax.Array, i, j, conditioning: jax.Array | None = None
  ) -> tuple[jax.Array, list]:
    """The logits (B, C, K) of pixel (i, j), as `__call__` computes them there.

    When row i starts (j = 0), the vertical stack runs once over the completed row
    i - 1, every layer in turn, from the images; then each layer's horizontal stack
    runs at (i, j) alone. Arguments, call order and the cache's contract:
    `sampling.sample_cached`.
    """
    dtype = self.layers[0].vertical.conv.kernel.dtype
    to_input = lambda levels: likelihood.to_model_input(levels, self.num_levels, dtype)

    def vertical_pass(vertical):
      x = to_input(jnp.take(images, i - 1, axis=1))  # (B, W, C): row i - 1, complete.
      new_vertical = []
      for layer, layer_vertical in zip(self.layers, vertical):
        x, layer_vertical = layer.vertical_row(layer_vertical, x, i - 1, conditioning)
        new_vertical.append(layer_vertical)
      return new_vertical

    # Only the vertical stack's (small) part of the cache goes through the branch: a
    # branch's operands are copied at every step.
    vertical = jax.lax.cond(
      (j == 0) & (i > 0),
      vertical_pass,
      lambda v: v,
      [{k: c[k] for k in ("vertical", "link")} for c in cache],
    )
    cache = [{**c, **v} for c, v in zip(cache, vertical)]
    # The first layer's horizontal window, row i columns j - k//2 .. j, from the images.
    (_, _), (left, _) = self.layers[0].horizontal.padding
    window = masks.image_window(
      images, jnp.reshape(i, (1,)), j - left + jnp.arange(left + 1), to_input
    )
    cond = conditioning_lib.pixel(conditioning, i, j)
    x, skip_sum, new_cache = None, 0.0, []
    for layer, layer_cache in zip(self.layers, cache):
      x, skip, layer_cache = layer.step(
        layer_cache, x, j, cond, window=window if layer.first else None
      )
      skip_sum = skip_sum + skip
      new_cache.append(layer_cache)
    return self.head(skip_sum[:, None, None])[:, 0, 0], new_cache
