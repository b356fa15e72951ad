"""PixelCNN as in van den Oord et al. (2016), Section 3.4 and Figure 5.

A 7x7 mask-A convolution to 2h features, then residual blocks of
ReLU -> 1x1 (2h -> h) -> ReLU -> 3x3 mask-B (h -> h) -> ReLU -> 1x1 (h -> 2h), each
added to its input, then the shared masked output head. Every convolution carries
the R, G, B channel-group masks, so the logits of sub-pixel (i, c) see only
sub-pixels before it (the stacked masks also leave PixelCNN's known blind spot
above and to the right of each pixel).

With `conditioning_dim = c > 0` the network is conditional: a (B, H, W, c) map is
projected and added to the 7x7 layer's output and to every block's 3x3 masked-conv
pre-activation (see `conditioning.py`); the map itself is not masked.
"""

from __future__ import annotations

import jax
from flax import nnx

from pixelrnn import distributions, likelihood
from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.layers import output_head
from pixelrnn.layers.masks import MaskedConv


class ResidualBlock(nnx.Module):
  """(B, H, W, 2h) -> (B, H, W, 2h); group g at pixel p sees inputs before p, and
  groups <= g at p."""

  def __init__(
    self, hidden_dim: int, *, num_channels: int, rngs: nnx.Rngs, conditioning_dim: int = 0
  ):
    kw = dict(num_channels=num_channels, mask_type="B", rngs=rngs)
    self.reduce = MaskedConv(2 * hidden_dim, hidden_dim, (1, 1), **kw)
    self.conv = MaskedConv(hidden_dim, hidden_dim, (3, 3), **kw)
    self.expand = MaskedConv(hidden_dim, 2 * hidden_dim, (1, 1), **kw)
    self.conditioning = conditioning_lib.projection(conditioning_dim, hidden_dim, rngs)

  def __call__(self, x: jax.Array, conditioning: jax.Array | None = None) -> jax.Array:
    """x (B, H, W, 2h); conditioning (B, H, W, c) for a conditional block."""
    h = self.reduce(jax.nn.relu(x))
    h = conditioning_lib.add_bias(self.conv(jax.nn.relu(h)), self.conditioning, conditioning)
    h = self.expand(jax.nn.relu(h))
    return x + h

  def step(
    self, cache: jax.Array, x: jax.Array, i, j, conditioning: jax.Array | None
  ) -> tuple[jax.Array, jax.Array]:
    """The block at pixel (i, j) alone: x (B, 2h) -> (B, 2h), as `__call__` computes it.

    cache: the 3x3 convolution's padded input map (`MaskedConv.empty_cache`), holding
    every pixel before (i, j); conditioning: (B, c) at (i, j), or None. Returns the
    output and the cache with pixel (i, j) added.
    """
    cache = self.conv.write(cache, jax.nn.relu(self.reduce.at_pixel(jax.nn.relu(x))), i, j)
    h = conditioning_lib.add_bias(self.conv.at(cache, i, j), self.conditioning, conditioning)
    return x + self.expand.at_pixel(jax.nn.relu(h)), cache


class PixelCNN(nnx.Module):
  """Images (B, H, W, C) as float levels in [0, K) -> logits (B, H, W, C, K)."""

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
    distribution=None,
  ):
    self.num_levels = num_levels
    self.conditioning_dim = conditioning_dim
    self.distribution = distribution or distributions.Softmax(num_levels)
    groups = self.distribution.mask_groups(num_channels)
    self.input_conv = MaskedConv(
      num_channels, 2 * hidden_dim, (7, 7), num_channels=groups, mask_type="A", rngs=rngs
    )
    self.blocks = nnx.List(
      [
        ResidualBlock(hidden_dim, num_channels=groups, rngs=rngs, conditioning_dim=conditioning_dim)
        for _ in range(num_layers)
      ]
    )
    self.input_conditioning = conditioning_lib.projection(conditioning_dim, 2 * hidden_dim, rngs)
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
    h = self.input_conv(likelihood.to_model_input(images, self.num_levels, self.input_conv.dtype))
    h = conditioning_lib.add_bias(h, self.input_conditioning, conditioning)
    for block in self.blocks:
      h = block(h, conditioning)
    return self.head(h)

  def init_cache(self, batch_size: int, image_shape: tuple[int, int, int]) -> list:
    """The state of `step` before the first pixel: each block's padded 3x3 input map,
    all zero."""
    height, width, _ = image_shape
    return [block.conv.empty_cache(batch_size, height, width) for block in self.blocks]

  def step(
    self, cache: list, images: jax.Array, i, j, conditioning: jax.Array | None = None
  ) -> tuple[jax.Array, list]:
    """The logits (B, C, K) of pixel (i, j), one kernel application per layer.

    The one-pixel step of `sampling.sample_cached`, which documents its arguments and
    the order of calls: `images` (B, H, W, C) final before (i, j), the conditioning
    map (B, H, W, c) or None. The logits equal `__call__`'s at (i, j).

    A cached feature of pixel p is final after p's last call: no feature of p sees
    p's last channel (mask A), so drawing it changes none of them.
    """
    cond = conditioning_lib.pixel(conditioning, i, j)
    h = conditioning_lib.add_bias(
      likelihood.input_layer_at(self.input_conv, images, i, j, self.num_levels),
      self.input_conditioning,
      cond,
    )
    blocks = []
    for block, block_cache in zip(self.blocks, cache):
      h, block_cache = block.step(block_cache, h, i, j, cond)
      blocks.append(block_cache)
    return self.head(h[:, None, None])[:, 0, 0], blocks
