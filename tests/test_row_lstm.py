import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn.models.row_lstm import RowLSTM, RowLSTMLayer, row_input_to_state


def row_lstm_layer_field(h, w, c):
  """The paper's triangle, as an exact set on the layer's input map: the hidden state
  at (i, j), group g, sees (i, j - 1), its own pixel's groups <= g, and the rows r < i
  at columns j - 1 - (i - r) .. j + (i - r)."""
  field = np.zeros((h, w, c, h, w, c), bool)
  for i in range(h):
    for j in range(w):
      for g in range(c):
        for r in range(i):
          lo, hi = max(0, j - 1 - (i - r)), min(w - 1, j + (i - r))
          field[i, j, g, r, lo : hi + 1, :] = True
        if j > 0:
          field[i, j, g, i, j - 1, :] = True
        field[i, j, g, i, j, : g + 1] = True
  return field


@pytest.mark.parametrize("num_channels", [1, 3])
def test_input_to_state_matmul_equals_the_masked_1x3_convolution(num_channels):
  layer = RowLSTMLayer(6, 4, num_channels=num_channels, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 4, 5, 6))
  np.testing.assert_allclose(
    row_input_to_state(x, *layer.input_to_state.weights()),
    layer.input_to_state(x),
    rtol=1e-5,
    atol=1e-5,
  )


@pytest.mark.parametrize("num_channels", [1, 3])
def test_row_lstm_layer_sees_exactly_the_triangle(num_channels):
  h, w = 6, 7
  layer = RowLSTMLayer(num_channels, 2 * num_channels, num_channels=num_channels, rngs=nnx.Rngs(0))

  def as_logits(x):  # Hidden group g read as the 2 "logits" of channel g.
    out = jnp.moveaxis(layer(jnp.moveaxis(x, 1, 0)), 0, 1)  # The layer takes rows first.
    return out.reshape(*out.shape[:3], num_channels, 2)

  x = jax.random.normal(jax.random.key(1), (3, h, w, num_channels))
  pattern = causality.dependency_pattern(as_logits, x)
  causality.assert_receptive_field(pattern, row_lstm_layer_field(h, w, num_channels))
  assert not pattern[0, :, :, :, 1:].any() and not pattern[1:, :, :, :, 0].any(), (
    "leak across the batch"
  )


@pytest.mark.parametrize("num_channels, num_levels", [(1, 2), (3, 4)])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_row_lstm_is_causal_with_the_exact_receptive_field(num_channels, num_levels, num_layers):
  h, w = 7, 9
  model = RowLSTM(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=6,
    num_layers=num_layers,
    output_dim=12,
    residual=True,
    skip=False,
    rngs=nnx.Rngs(0),
  )
  x = jax.random.uniform(jax.random.key(2), (6, h, w, num_channels), maxval=num_levels - 1)
  pattern = causality.dependency_pattern(model, x)
  causality.assert_causal(pattern)
  expected = causality.recurrent_model_field(row_lstm_layer_field(h, w, num_channels), num_layers)
  causality.assert_receptive_field(pattern, expected)


def test_row_lstm_misses_part_of_the_context():
  # The triangle (widened by the 7x7 first layer) cannot reach far up-right pixels:
  # unlike the Diagonal BiLSTM, the Row LSTM does not see the complete context.
  h, w = 8, 16
  expected = causality.recurrent_model_field(row_lstm_layer_field(h, w, 1), 1)
  complete = causality.strictly_before(h, w, 1)
  assert not (expected & ~complete).any()
  assert not expected[7, 0, 0, 6, 15, 0] and complete[7, 0, 0, 6, 15, 0]


@pytest.mark.parametrize(
  "residual, skip", [(False, False), (True, False), (False, True), (True, True)]
)
def test_every_connection_variant_is_causal(residual, skip):
  model = RowLSTM(
    num_channels=3,
    num_levels=2,
    hidden_dim=6,
    num_layers=2,
    output_dim=12,
    residual=residual,
    skip=skip,
    rngs=nnx.Rngs(0),
  )
  x = jax.random.uniform(jax.random.key(3), (2, 4, 5, 3))
  causality.assert_causal(causality.dependency_pattern(model, x))
