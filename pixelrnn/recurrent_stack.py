"""The network around the recurrent layers of PixelRNN (van den Oord et al. 2016, Sec. 3).

images -> 7x7 mask-A conv (2h features) -> L recurrent layers -> masked output head.
Each recurrent layer maps its (B, H, W, 2h) input to (B, H, W, h) hidden states; a
1x1 mask-B convolution takes them back to 2h features. With `residual`, that is added
to the layer's input; with `skip`, every layer's output is summed into the head's
input (the connections ablated in the paper's Table 2).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from pixelrnn import likelihood
from pixelrnn.masks import MaskedConv


def _gate_scale(gates: jax.Array) -> jax.Array:
  """(4h,) = [1/2] * 3h + [1] * h: sigmoid(x) = tanh(x / 2) / 2 + 1/2 for i, f, o."""
  h = gates.shape[-1] // 4
  return jnp.concatenate([jnp.full((3 * h,), 0.5, gates.dtype), jnp.ones((h,), gates.dtype)])


def _activations(t: jax.Array, scale: jax.Array) -> list[jax.Array]:
  """[sigmoid(i), sigmoid(f), sigmoid(o), tanh(g)] from t = tanh(gates * scale)."""
  return jnp.split(t * scale + (1.0 - scale), 4, axis=-1)


def _lstm_cell_fwd(gates, prev_cell):
  scale = _gate_scale(gates)
  t = jnp.tanh(gates * scale)  # One transcendental pass over all four gates.
  i, f, o, g = _activations(t, scale)
  cell = f * prev_cell + i * g
  tanh_cell = jnp.tanh(cell)
  return (cell, o * tanh_cell), (t, prev_cell, tanh_cell)


def _lstm_cell_bwd(residuals, cotangents):
  t, prev_cell, tanh_cell = residuals
  d_cell_out, d_hidden = cotangents
  scale = _gate_scale(t)
  i, f, o, g = _activations(t, scale)
  d_cell = d_cell_out + d_hidden * o * (1.0 - tanh_cell * tanh_cell)
  d_act = jnp.concatenate([d_cell * g, d_cell * prev_cell, d_hidden * tanh_cell, d_cell * i], -1)
  # d act / d gates = scale^2 (1 - t^2) for the sigmoid and the tanh gates alike.
  return d_act * (scale * scale) * (1.0 - t * t), d_cell * f


@jax.custom_vjp
def lstm_cell(gates: jax.Array, cell: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One LSTM update from pre-activations (..., 4h) laid out as [i, f, o, g] blocks.

  Returns (new cell, new hidden), each (..., h): c = f * c + i * g, h = o * tanh(c),
  with sigmoid i, f, o and tanh g. Written with one tanh over all gates and a
  hand-derived backward pass: the transcendentals dominate the recurrent layers' cost
  on CPU. tests/test_recurrent_stack.py checks it against the textbook cell.
  """
  return _lstm_cell_fwd(gates, cell)[0]


lstm_cell.defvjp(_lstm_cell_fwd, _lstm_cell_bwd)


class RecurrentStack(nnx.Module):
  """Images (B, H, W, C) as float levels in [0, K) -> logits (B, H, W, C, K).

  `layer_factory(in_features, hidden_dim, num_channels=..., rngs=...)` builds one
  recurrent layer mapping (B, H, W, in_features) -> (B, H, W, hidden_dim), whose group-g
  hidden units at pixel p see only sub-pixels before (p, g).
  """

  def __init__(self, layer_factory: Callable[..., nnx.Module], *, num_channels: int,
               num_levels: int, hidden_dim: int, num_layers: int, output_dim: int,
               residual: bool, skip: bool, rngs: nnx.Rngs):
    self.num_levels = num_levels
    self.residual = residual
    self.skip = skip
    features = 2 * hidden_dim
    self.input_conv = MaskedConv(num_channels, features, (7, 7), num_channels=num_channels,
                                 mask_type="A", rngs=rngs)
    self.layers = nnx.List([
        layer_factory(features, hidden_dim, num_channels=num_channels, rngs=rngs)
        for _ in range(num_layers)])
    self.projections = nnx.List([
        MaskedConv(hidden_dim, features, (1, 1), num_channels=num_channels, mask_type="B",
                   rngs=rngs)
        for _ in range(num_layers)])
    self.head = likelihood.OutputHead(features, output_dim, num_channels=num_channels,
                                      num_levels=num_levels, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = self.input_conv(likelihood.to_model_input(images, self.num_levels))
    skip_sum = jnp.zeros_like(x)
    for layer, projection in zip(self.layers, self.projections):
      out = projection(layer(x))
      x = x + out if self.residual else out
      skip_sum = skip_sum + x
    return self.head(skip_sum if self.skip else x)
