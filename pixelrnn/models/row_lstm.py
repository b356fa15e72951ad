"""Row LSTM (van den Oord et al. 2016, Section 3.1).

The image is processed one row at a time. For row i the gates are
  [i, f, o, g] = K_is * x_i + K_ss * h_{i-1},
where K_is is a 1x3 mask-B convolution along the row (computed for every row at once,
before the scan) and K_ss a 1x3 convolution over the previous row's hidden states,
spatially unmasked because that whole row is the past. Each gate's hidden units are
split into R, G, B groups, and the input-to-state mask lets a group-g unit see the
input groups <= g at its own pixel.

A layer's hidden state at (i, j) therefore sees its input at (i, j - 1), its own
pixel's groups <= g, and through the recurrence the triangle of rows r < i with
j - 1 - (i - r) <= column <= j + (i - r).

With `pallas_lstm`, the scan over rows is one kernel launch per pass (`lstm_kernel.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.layers import lstm_kernel, masks
from pixelrnn.layers.lstm import lstm_cell, lstm_scan
from pixelrnn.models.recurrent_stack import RecurrentStack


class RowLSTMLayer(nnx.Module):
  """(H, B, W, in_features) -> (H, B, W, hidden_dim) hidden states, rows first.

  The maps are row-major so that the scan over rows reads and writes them without
  transposes; `RecurrentStack` permutes them once for all layers (`layout`).
  """

  layout = (1, 0, 2, 3)
  # The state-to-state kernel's taps [h(j - 1), h(j), h(j + 1)] along the row.
  taps = (-1, 0, 1)

  def __init__(
    self,
    in_features: int,
    hidden_dim: int,
    *,
    num_channels: int,
    rngs: nnx.Rngs,
    conditioning_dim: int = 0,
    pallas_lstm: bool = False,
  ):
    self.hidden_dim = hidden_dim
    self.pallas_lstm = pallas_lstm
    self.conditioning = conditioning_lib.projection(conditioning_dim, 4 * hidden_dim, rngs)
    self.input_to_state = masks.MaskedConv(
      in_features,
      4 * hidden_dim,
      (1, 3),
      num_channels=num_channels,
      mask_type="B",
      out_groups=masks.gate_groups(hidden_dim, num_channels, 4),
      rngs=rngs,
    )
    # The 1x3 state-to-state kernel as one matrix over [h(j-1), h(j), h(j+1)].
    init = nnx.initializers.lecun_normal()
    self.state_to_state = nnx.Param(init(rngs.params(), (3 * hidden_dim, 4 * hidden_dim)))

  def __call__(self, x: jax.Array, conditioning: jax.Array | None = None) -> jax.Array:
    """x (H, B, W, F); conditioning (H, B, W, c) for a conditional layer."""
    gates_in = row_input_to_state(x, *self.input_to_state.weights())  # (H, B, W, 4h)
    gates_in = conditioning_lib.add_bias(gates_in, self.conditioning, conditioning)
    if self.pallas_lstm:  # Rows are the steps, the batch the sequences.
      return lstm_kernel.lstm_taps_scan(gates_in, self.state_to_state[None], self.taps)
    return lstm_scan(gates_in, self.state_to_state[...], row_state_to_state)

  def init_cache(self, batch_size: int, image_shape: tuple[int, int, int]) -> dict:
    """`step`'s state before the first pixel, all zero.

    "row": the current row of the layer's input, padded for the 1x3 input-to-state
    convolution (B, 1, W + 2, F). "cell", "hidden": (B, H + 1, W + 2, h), the states of
    every row so far; image row r is state row r + 1 (row 0 is the zero state above the
    image) and columns are padded by one on each side for the 1x3 state-to-state kernel.
    """
    height, width, _ = image_shape
    states = jnp.zeros(
      (batch_size, height + 1, width + 2, self.hidden_dim), self.input_to_state.dtype
    )
    return {
      "row": self.input_to_state.empty_cache(batch_size, 1, width),
      "cell": states,
      "hidden": states,
    }

  def step(
    self, cache: dict, x: jax.Array, i, j, conditioning: jax.Array | None
  ) -> tuple[jax.Array, dict]:
    """The hidden state (B, h) at (i, j) from the input x (B, F) at (i, j): the 1x3
    input window of row i and the 1x3 window of row i - 1's states around column j."""
    row = self.input_to_state.write(cache["row"], x, 0, j)
    above = jax.lax.dynamic_slice_in_dim(cache["hidden"][:, i], j, 3, axis=1)  # Row i - 1.
    gates = (
      conditioning_lib.add_bias(
        self.input_to_state.at(row, 0, j),
        self.conditioning,
        conditioning_lib.pixel(conditioning, i, j),
      )
      + above.reshape(above.shape[0], -1) @ self.state_to_state[...]
    )
    cell, hidden = lstm_cell(gates, cache["cell"][:, i, j + 1])
    return hidden, {
      "row": row,
      "cell": cache["cell"].at[:, i + 1, j + 1].set(cell),
      "hidden": cache["hidden"].at[:, i + 1, j + 1].set(hidden),
    }


def row_input_to_state(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """The 1x3 mask-B convolution along each row: (..., W, F) -> (..., W, 4h).

  kernel: (1, 3, F, 4h), already masked, so its right tap (the pixel to the right, in
  the future) is zero: the convolution is one matmul over [x(j - 1), x(j)], a third
  fewer multiplications than the 1x3 convolution.
  """
  left = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 0), (0, 0)])[..., :-1, :]
  in_features = x.shape[-1]
  return jnp.concatenate([left, x], -1) @ kernel[0, :2].reshape(2 * in_features, -1) + bias


def row_state_to_state(hidden: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 1x3 convolution over the previous row: (..., W, h) -> (..., W, 4h)."""
  padded = jnp.pad(hidden, [(0, 0)] * (hidden.ndim - 2) + [(1, 1), (0, 0)])
  neighbours = jnp.concatenate([padded[..., :-2, :], hidden, padded[..., 2:, :]], axis=-1)
  return neighbours @ kernel


class RowLSTM(RecurrentStack):
  """Images (B, H, W, C) as float levels in [0, K) -> logits (B, H, W, C, K)."""

  def __init__(self, **kwargs):
    super().__init__(RowLSTMLayer, **kwargs)
