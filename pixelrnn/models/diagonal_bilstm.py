"""Diagonal BiLSTM (van den Oord et al. 2016, Section 3.2).

The input map is skewed: row i is shifted right by i, so (B, H, W, F) becomes
(B, H, W + H - 1, F) (2W - 1 columns for square images) and each diagonal of the
image becomes a column. A column-by-column LSTM then runs over the skewed map:
  [i, f, o, g] at (row i, column t) = K_is * x(i, t) + K_ss * [h(i - 1, t - 1), h(i, t - 1)],
with K_is a 1x1 mask-B convolution (R, G, B groups per gate) and K_ss a 2x1 column
convolution. In image coordinates the state at (i, j) reads the states at (i - 1, j)
and (i, j - 1), so the left-to-right direction sees the whole quadrant above and to
the left of each pixel.

The right-to-left direction is the same computation on the left-right flipped input,
flipped back; it sees the quadrant above and to the right, including pixels to the
right in the current row. Its output map is therefore shifted down by one row (row 0
becomes zero) before it is added to the left-to-right output, so that together they
see every pixel of the rows above and the pixels to the left: the complete context
of the layer's input map.

In the whole network one boundary case remains, caused by the 7x7 mask-A first layer
rather than by this layer: the last sub-pixel of row r, (r, W - 1, C - 1), reaches the
first layer's features only at row r + 1 within 3 columns of it, so pixels
(r + 1, j < W - 4) do not see it; every later row does. The paper's "complete
context" is otherwise exact (both shown in tests/test_diagonal_bilstm.py).

Both directions run in one `lax.scan` over the columns, stacked on a leading axis,
with the input-to-state terms precomputed outside the scan. States at skewed
positions outside the image are kept at zero. About half of the skewed map lies
outside the image, so the scan is split into `num_phases` consecutive scans (the
state carried from one to the next), each over only the rows its columns can reach
(`scan_phases`); the result is the same as one scan over all rows. More phases skip
more of the outside cells, and each adds to the compile time.
With `pallas_lstm`, one kernel (`lstm_kernel.py`) runs all columns of both directions
instead, each in a single launch per pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.layers import lstm_kernel, masks
from pixelrnn.layers.lstm import lstm_cell, lstm_scan
from pixelrnn.layers.shifts import shift_down, skew, skewed_validity, unskew
from pixelrnn.models.recurrent_stack import RecurrentStack


def scan_phases(height: int, width: int, num_phases: int) -> list[tuple[int, int, int, int]]:
  """Splits the column scan into `num_phases` consecutive scans over row windows.

  Returns (t0, t1, lo, hi): columns [t0, t1) of the skewed map need only rows
  [lo, hi). Column t holds image rows max(0, t - W + 1) .. min(H - 1, t); the
  window adds the row above the first column's top row, whose state (the pixel
  (t0 - W, W - 1)) that column reads. Every other row is outside the image, and so
  zero, throughout the phase: leaving it out changes no value, and skips most of the
  ~half of the skewed map that lies outside the image.
  """
  length = width + height - 1
  bounds = np.linspace(0, length, min(num_phases, length) + 1).round().astype(int)
  return [
    (int(t0), int(t1), max(0, int(t0) - width), min(height, int(t1)))
    for t0, t1 in zip(bounds[:-1], bounds[1:])
  ]


def phased_lstm_scan(
  gates_in: jax.Array, kernel: jax.Array, valid: jax.Array, num_phases: int
) -> jax.Array:
  """`lstm_scan` with `column_state_to_state` over the skewed columns, in phases.

  gates_in: (L, 2, B, H, 4h); valid: (L, 1, 1, H, 1). Returns (L, 2, B, H, h), the same
  hidden states as one scan over all rows (see `scan_phases`).
  """
  height = gates_in.shape[3]
  width = gates_in.shape[0] - height + 1
  state_shape = gates_in.shape[1:-1] + (gates_in.shape[-1] // 4,)
  cell = hidden = jnp.zeros(state_shape, gates_in.dtype)
  outputs = []
  for t0, t1, lo, hi in scan_phases(height, width, num_phases):
    seq, (cell, hidden) = lstm_scan(
      gates_in[t0:t1, :, :, lo:hi],
      kernel,
      column_state_to_state,
      valid[t0:t1, :, :, lo:hi],
      initial=(cell[:, :, lo:hi], hidden[:, :, lo:hi]),
      return_final=True,
    )
    rows = ((0, 0), (0, 0), (lo, height - hi), (0, 0))
    cell, hidden = jnp.pad(cell, rows), jnp.pad(hidden, rows)
    outputs.append(jnp.pad(seq, ((0, 0),) + rows))
  return jnp.concatenate(outputs)


def column_state_to_state(hidden: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 2x1 column convolution of each direction over the previous skewed column.

  hidden: (..., 2, B, H, h), the directions stacked on axis -4; kernel: (2, 2h, 4h)
  over [h(i - 1), h(i)]. Returns (..., 2, B, H, 4h).
  """
  above = jnp.pad(hidden, [(0, 0)] * (hidden.ndim - 2) + [(1, 0), (0, 0)])[..., :-1, :]
  return jnp.einsum("...dbhk,dkn->...dbhn", jnp.concatenate([above, hidden], -1), kernel)


class DiagonalBiLSTMLayer(nnx.Module):
  """(B, H, W, in_features) -> (B, H, W, hidden_dim): both directions, summed.

  The output at (i, j), group g, sees the layer input at every pixel of rows < i, at
  pixels (i, j' < j), and at (i, j) the groups <= g.
  """

  layout = (0, 1, 2, 3)  # Maps batch first, as given: see `RecurrentStack`.
  # The state-to-state kernel's taps [h(i - 1), h(i)] along a skewed column.
  taps = (-1, 0)

  def __init__(
    self,
    in_features: int,
    hidden_dim: int,
    *,
    num_channels: int,
    rngs: nnx.Rngs,
    conditioning_dim: int = 0,
    num_phases: int = 4,
    pallas_lstm: bool = False,
  ):
    self.hidden_dim = hidden_dim
    self.num_phases = num_phases
    self.pallas_lstm = pallas_lstm
    self.conditioning_lr = conditioning_lib.projection(conditioning_dim, 4 * hidden_dim, rngs)
    self.conditioning_rl = conditioning_lib.projection(conditioning_dim, 4 * hidden_dim, rngs)
    gate_groups = masks.gate_groups(hidden_dim, num_channels, 4)
    conv = lambda: masks.MaskedConv(
      in_features,
      4 * hidden_dim,
      (1, 1),
      num_channels=num_channels,
      mask_type="B",
      out_groups=gate_groups,
      rngs=rngs,
    )
    self.input_to_state_lr = conv()
    self.input_to_state_rl = conv()
    # Per direction, the 2x1 column kernel as one matrix over [h(i - 1), h(i)].
    init = nnx.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
    self.state_to_state = nnx.Param(init(rngs.params(), (2, 2 * hidden_dim, 4 * hidden_dim)))

  def directions(
    self, x: jax.Array, conditioning: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """The two directions' hidden maps (B, H, W, h), the right-to-left one unshifted.

    x: (B, H, W, F); conditioning: (B, H, W, c) for a conditional layer.
    """
    batch, height, width, _ = x.shape
    # Both directions' 1x1 input-to-state convolutions as one batched matmul over the
    # input and its mirror image, stacked on a leading axis: cheaper than two
    # convolutions whose outputs are then stacked, mostly in the backward pass.
    kernels, biases = zip(
      *(conv.weights() for conv in (self.input_to_state_lr, self.input_to_state_rl))
    )
    inputs = jnp.stack([x, x[:, :, ::-1]])  # (2, B, H, W, F)
    gates = (
      jnp.einsum("dbhwf,dfn->dbhwn", inputs, jnp.stack(kernels)[:, 0, 0])
      + jnp.stack(biases)[:, None, None, None]
    )
    if conditioning is not None or self.conditioning_lr is not None:
      flipped = None if conditioning is None else conditioning[:, :, ::-1]
      gates = gates + jnp.stack(
        [
          conditioning_lib.add_bias(0.0, self.conditioning_lr, conditioning),
          conditioning_lib.add_bias(0.0, self.conditioning_rl, flipped),
        ]
      )
    gates_in = skew(gates)  # (2, B, H, L, 4h)
    gates_in = jnp.moveaxis(gates_in, 3, 0)  # (L, 2, B, H, 4h)
    valid = jnp.asarray(skewed_validity(height, width))[:, None, None, :, None]
    if self.pallas_lstm:  # One kernel over all columns; sequences (direction, batch).
      hidden = lstm_kernel.lstm_taps_scan(
        gates_in.reshape(gates_in.shape[:1] + (2 * batch,) + gates_in.shape[3:]),
        self.state_to_state[...],
        self.taps,
        valid[:, 0, 0, :, 0],
      )
      hidden = hidden.reshape(hidden.shape[:1] + (2, batch) + hidden.shape[2:])
    else:
      hidden = phased_lstm_scan(gates_in, self.state_to_state[...], valid, self.num_phases)
    hidden = jnp.moveaxis(hidden, 0, 3)  # (2, B, H, L, h)
    hidden = unskew(hidden, width)
    return hidden[0], hidden[1][:, :, ::-1]

  def __call__(self, x: jax.Array, conditioning: jax.Array | None = None) -> jax.Array:
    lr, rl = self.directions(x, conditioning)
    return lr + shift_down(rl)

  def init_cache(self, batch_size: int, image_shape: tuple[int, int, int]) -> dict:
    """`step`'s state before the first pixel, all zero.

    "rows": (2, B, W, F), the layer's input on the current and the previous row, by
    row parity. "lr_cell", "lr_hidden", "rl_cell", "rl_hidden": (B, H + 1, W + 1, h),
    each direction's states; image row r is state row r + 1 (row 0 is the zero state
    above the image). Left-to-right columns are shifted by one (column 0 is the zero
    state left of the image); right-to-left columns are not, and column W is the zero
    state right of the image.
    """
    height, width, _ = image_shape
    dtype = self.input_to_state_lr.dtype
    states = jnp.zeros((batch_size, height + 1, width + 1, self.hidden_dim), dtype)
    rows = jnp.zeros((2, batch_size, width, self.input_to_state_lr.conv.in_features), dtype)
    return {
      "rows": rows,
      "lr_cell": states,
      "lr_hidden": states,
      "rl_cell": states,
      "rl_hidden": states,
    }

  def step(
    self, cache: dict, x: jax.Array, i, j, conditioning: jax.Array | None
  ) -> tuple[jax.Array, dict]:
    """The output (B, h) at (i, j) from the input x (B, F) at (i, j).

    The left-to-right state at (i, j) reads the states at (i - 1, j) and (i, j - 1).
    The right-to-left direction, after its one-row shift, reads only completed rows:
    at the start of row i it runs once over row i - 1, from that row's stored inputs
    (the same values at every channel of pixel (i, 0): the rows are kept by parity).
    """
    # Only what the right-to-left pass reads and writes goes through the branch: a
    # branch's operands are copied at every step.
    right_to_left = {k: cache[k] for k in ("rows", "rl_cell", "rl_hidden")}
    cache = {
      **cache,
      **jax.lax.cond(
        (j == 0) & (i > 0),
        lambda c: self._right_to_left_row(c, i - 1, conditioning),
        lambda c: c,
        right_to_left,
      ),
    }
    lr_cell, lr_hidden = cache["lr_cell"], cache["lr_hidden"]
    neighbours = jnp.concatenate([lr_hidden[:, i, j + 1], lr_hidden[:, i + 1, j]], axis=-1)
    gates = (
      conditioning_lib.add_bias(
        self.input_to_state_lr.at_pixel(x),
        self.conditioning_lr,
        conditioning_lib.pixel(conditioning, i, j),
      )
      + neighbours @ self.state_to_state[...][0]
    )
    cell, hidden = lstm_cell(gates, lr_cell[:, i + 1, j])
    cache = {
      **cache,
      "rows": cache["rows"].at[i % 2, :, j].set(x),
      "lr_cell": lr_cell.at[:, i + 1, j + 1].set(cell),
      "lr_hidden": lr_hidden.at[:, i + 1, j + 1].set(hidden),
    }
    # Plus the right-to-left state of the row above (the one-row shift).
    return hidden + cache["rl_hidden"][:, i, j], cache

  def _right_to_left_row(self, cache: dict, r, conditioning: jax.Array | None) -> dict:
    """The cache with the right-to-left states of image row r, from its stored inputs."""
    gates_in = conditioning_lib.add_bias(
      self.input_to_state_rl.at_pixel(cache["rows"][r % 2]),
      self.conditioning_rl,
      conditioning_lib.row(conditioning, r),
    )
    kernel = self.state_to_state[...][1]
    width = gates_in.shape[1]

    def column(k, carry):
      cell, hidden = carry
      j = width - 1 - k
      neighbours = jnp.concatenate([hidden[:, r, j], hidden[:, r + 1, j + 1]], axis=-1)
      new_cell, new_hidden = lstm_cell(
        jnp.take(gates_in, j, axis=1) + neighbours @ kernel, cell[:, r + 1, j + 1]
      )
      return cell.at[:, r + 1, j].set(new_cell), hidden.at[:, r + 1, j].set(new_hidden)

    cell, hidden = jax.lax.fori_loop(0, width, column, (cache["rl_cell"], cache["rl_hidden"]))
    return {**cache, "rl_cell": cell, "rl_hidden": hidden}


class DiagonalBiLSTM(RecurrentStack):
  """Images (B, H, W, C) as float levels in [0, K) -> logits (B, H, W, C, K)."""

  def __init__(self, **kwargs):
    super().__init__(DiagonalBiLSTMLayer, **kwargs)
