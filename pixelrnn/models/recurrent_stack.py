"""The network around the recurrent layers of PixelRNN (van den Oord et al. 2016, Sec. 3).

images -> 7x7 mask-A conv (2h features) -> L recurrent layers -> masked output head.
Each recurrent layer maps its (B, H, W, 2h) input to (B, H, W, h) hidden states; a
1x1 mask-B convolution takes them back to 2h features. With `residual`, that is added
to the layer's input; with `skip`, every layer's output is summed into the head's
input (the connections ablated in the paper's Table 2).

With `conditioning_dim = c > 0` the stack is conditional: a (B, H, W, c) map is
projected and added to the 7x7 layer's output and to every recurrent layer's
input-to-state pre-activations (see `conditioning.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixelrnn import distributions, likelihood
from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.layers import output_head
from pixelrnn.layers.masks import MaskedConv


class RecurrentStack(nnx.Module):
  """Images (B, H, W, C) as float levels in [0, K) -> logits (B, H, W, C, K).

  `layer_factory(in_features, hidden_dim, num_channels=..., conditioning_dim=...,
  pallas_lstm=..., rngs=...)` builds one recurrent layer mapping (B, H, W, in_features)
  and an optional (B, H, W, c) conditioning map -> (B, H, W, hidden_dim), whose group-g
  hidden units at pixel p see only sub-pixels before (p, g). The factory's `layout`, a
  permutation of the axes (B, H, W, features), is the order in which its layers take
  and return these maps: the stack permutes the maps once after the 7x7 input layer and
  back once before the head, rather than each layer twice (the 1x1 projections and the
  residual sums are indifferent to the order).

  For sampling, a layer also computes one pixel at a time:
  `init_cache(batch_size, (H, W, C))` gives its state before the first pixel, and
  `step(cache, x (B, in_features), i, j, conditioning (B, H, W, c) or None)` returns
  its hidden state (B, hidden_dim) at pixel (i, j) and the updated cache, given that
  `step` ran at every earlier pixel in raster order.
  """

  # The `config.model` keys these models take besides those every model takes, with
  # their defaults (the schema takes them from here, `defaults.base_config`):
  config_defaults = {
    # Add each layer's 1x1 (h -> 2h) output to its input.
    "residual": True,
    # Feed the sum of every layer's output to the head.
    "skip": False,
    # Run each layer's LSTM recurrence as one Pallas kernel per pass (layers/lstm_kernel.py;
    # Triton on a GPU, interpret mode elsewhere, which is slow). Same parameters and, up
    # to float rounding, the same values as the default path.
    "pallas_lstm": False,
  }

  def __init__(
    self,
    layer_factory: Callable[..., nnx.Module],
    *,
    num_channels: int,
    num_levels: int,
    hidden_dim: int,
    num_layers: int,
    output_dim: int,
    residual: bool,
    skip: bool,
    rngs: nnx.Rngs,
    conditioning_dim: int = 0,
    pallas_lstm: bool = False,
    distribution=None,
  ):
    self.num_levels = num_levels
    self.distribution = distribution or distributions.Softmax(num_levels)
    groups = self.distribution.mask_groups(num_channels)
    self.conditioning_dim = conditioning_dim
    self.residual = residual
    self.skip = skip
    self.layout = tuple(int(axis) for axis in layer_factory.layout)
    features = 2 * hidden_dim
    self.input_conv = MaskedConv(
      num_channels, features, (7, 7), num_channels=groups, mask_type="A", rngs=rngs
    )
    self.input_conditioning = conditioning_lib.projection(conditioning_dim, features, rngs)
    self.layers = nnx.List(
      [
        layer_factory(
          features,
          hidden_dim,
          num_channels=groups,
          conditioning_dim=conditioning_dim,
          pallas_lstm=pallas_lstm,
          rngs=rngs,
        )
        for _ in range(num_layers)
      ]
    )
    self.projections = nnx.List(
      [
        MaskedConv(hidden_dim, features, (1, 1), num_channels=groups, mask_type="B", rngs=rngs)
        for _ in range(num_layers)
      ]
    )
    self.head = output_head.OutputHead(
      features, output_dim, num_channels=num_channels, distribution=self.distribution, rngs=rngs
    )

  def __call__(self, images: jax.Array, conditioning: jax.Array | None = None) -> jax.Array:
    """images (B, H, W, C) levels, conditioning (B, H, W, c) or None -> logits."""
    conditioning_lib.check_map(conditioning, images.shape, self.conditioning_dim)
    x = self.input_conv(likelihood.to_model_input(images, self.num_levels, self.input_conv.dtype))
    x = conditioning_lib.add_bias(x, self.input_conditioning, conditioning)
    x = jnp.transpose(x, self.layout)
    if conditioning is not None:
      conditioning = jnp.transpose(conditioning, self.layout)
    skip_sum = jnp.zeros_like(x)
    for layer, projection in zip(self.layers, self.projections):
      out = projection(layer(x, conditioning))
      x = x + out if self.residual else out
      skip_sum = skip_sum + x
    return self.head(jnp.transpose(skip_sum if self.skip else x, np.argsort(self.layout)))

  def init_cache(self, batch_size: int, image_shape: tuple[int, int, int]) -> list:
    """The state of `step` before the first pixel: every recurrent layer's cache."""
    return [layer.init_cache(batch_size, image_shape) for layer in self.layers]

  def step(
    self, cache: list, images: jax.Array, i, j, conditioning: jax.Array | None = None
  ) -> tuple[jax.Array, list]:
    """The logits (B, C, K) of pixel (i, j): the 7x7 layer at (i, j), then each
    layer's `step`, its projection, the residual and skip sums and the head, as
    `__call__` computes them at (i, j). Arguments, call order and the cache's
    contract: `sampling.sample_cached`."""
    x = conditioning_lib.add_bias(
      likelihood.input_layer_at(self.input_conv, images, i, j, self.num_levels),
      self.input_conditioning,
      conditioning_lib.pixel(conditioning, i, j),
    )
    skip_sum = jnp.zeros_like(x)
    layers = []
    for layer, projection, layer_cache in zip(self.layers, self.projections, cache):
      hidden, layer_cache = layer.step(layer_cache, x, i, j, conditioning)
      out = projection.at_pixel(hidden)
      x = x + out if self.residual else out
      skip_sum = skip_sum + x
      layers.append(layer_cache)
    return self.head((skip_sum if self.skip else x)[:, None, None])[:, 0, 0], layers
