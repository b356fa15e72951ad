import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn.layers.lstm import lstm_scan
from pixelrnn.layers.shifts import shift_down, skew, skewed_validity, unskew
from pixelrnn.models.diagonal_bilstm import (
  DiagonalBiLSTM,
  DiagonalBiLSTMLayer,
  column_state_to_state,
  phased_lstm_scan,
  scan_phases,
)
from pixelrnn.models.recurrent_stack import RecurrentStack


def test_skew_shifts_each_row_right_by_its_index():
  x = jnp.arange(1, 13, dtype=jnp.float32).reshape(1, 3, 4, 1)
  expected = np.array([[1, 2, 3, 4, 0, 0], [0, 5, 6, 7, 8, 0], [0, 0, 9, 10, 11, 12]])
  np.testing.assert_array_equal(skew(x)[0, :, :, 0], expected)


def test_skew_and_unskew_round_trip_exactly_for_random_shapes():
  rng = np.random.default_rng(0)
  for _ in range(10):
    b, h, w, c = rng.integers(1, 9, size=4)
    x = jnp.asarray(rng.normal(size=(b, h, w, c)), jnp.float32)
    s = skew(x)
    assert s.shape == (b, h, w + h - 1, c)
    np.testing.assert_array_equal(unskew(s, int(w)), x)
    i, j = rng.integers(0, h), rng.integers(0, w)
    np.testing.assert_array_equal(s[:, i, i + j], x[:, i, j])
    assert float(jnp.abs(s).sum()) == pytest.approx(float(jnp.abs(x).sum()), rel=1e-5), (
      "zeros elsewhere"
    )


def test_skew_and_unskew_map_every_leading_axis_alike():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 5, 4, 2)), jnp.float32)
  skewed = skew(x)
  for d in range(2):
    np.testing.assert_array_equal(skewed[d], skew(x[d]))
  np.testing.assert_array_equal(unskew(skewed, 4), x)


def test_unskew_refuses_a_map_of_the_wrong_width():
  with pytest.raises(ValueError, match="height 3 and width 4 has 6 columns, got 7"):
    unskew(jnp.zeros((1, 3, 7, 1)), 4)


def diagonal_layer_field(h, w, c):
  """Exact set on the layer's input: every pixel of earlier rows, the pixels to the left
  in the same row, and the own pixel's groups <= g (mask B)."""
  before = causality.strictly_before(h, w, c)
  own = np.zeros_like(before)
  for i in range(h):
    for j in range(w):
      for g in range(c):
        own[i, j, g, i, j, : g + 1] = True
  pixel_order = causality.raster_order(h, w, 1)[..., 0]
  earlier_pixel = (
    pixel_order[:, :, None, None, None, None] > pixel_order[None, None, None, :, :, None]
  )
  return np.broadcast_to(earlier_pixel, before.shape) | own


@pytest.mark.parametrize("num_channels", [1, 3])
def test_diagonal_bilstm_layer_sees_the_complete_context_on_its_input(num_channels):
  h, w = 5, 6
  layer = DiagonalBiLSTMLayer(
    num_channels, 2 * num_channels, num_channels=num_channels, rngs=nnx.Rngs(0)
  )

  def as_logits(x):
    out = layer(x)
    return out.reshape(*out.shape[:3], num_channels, 2)

  x = jax.random.normal(jax.random.key(1), (3, h, w, num_channels))
  pattern = causality.dependency_pattern(as_logits, x)
  causality.assert_receptive_field(pattern, diagonal_layer_field(h, w, num_channels))


def complete_context_after_mask_a(h, w, c):
  """The exact context of one Diagonal BiLSTM layer after the 7x7 mask-A conv:
  every strictly earlier sub-pixel, except one boundary case. The last sub-pixel of a
  row, (r, W - 1, C - 1), is hidden from the mask-A features at its own and earlier
  positions, and only the features of row r + 1 within 3 columns of it carry it; so
  the pixels (r + 1, j) with j < W - 4 cannot see it (all later rows do)."""
  field = causality.strictly_before(h, w, c).copy()
  for i in range(1, h):
    field[i, : max(0, w - 4), :, i - 1, w - 1, c - 1] = False
  return field


@pytest.mark.parametrize("h, w, c", [(5, 6, 3), (4, 4, 1), (6, 9, 1)])
def test_one_layer_after_mask_a_sees_every_earlier_sub_pixel_but_the_row_end_case(h, w, c):
  model = DiagonalBiLSTM(
    num_channels=c,
    num_levels=4,
    hidden_dim=6,
    num_layers=1,
    output_dim=12,
    residual=True,
    skip=False,
    rngs=nnx.Rngs(0),
  )
  x = jax.random.uniform(jax.random.key(2), (6, h, w, c), maxval=3)
  pattern = causality.dependency_pattern(model, x)
  causality.assert_causal(pattern)
  expected = complete_context_after_mask_a(h, w, c)
  causality.assert_receptive_field(pattern, expected)
  # The same set follows from composing the layers' exact fields.
  np.testing.assert_array_equal(
    causality.recurrent_model_field(diagonal_layer_field(h, w, c), 1), expected
  )
  if w <= 4:  # The 7x7 conv reaches the whole previous row: the context is complete.
    np.testing.assert_array_equal(expected, causality.strictly_before(h, w, c))


@pytest.mark.parametrize("num_channels, num_levels", [(1, 2), (3, 4)])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_diagonal_bilstm_is_causal(num_channels, num_levels, num_layers):
  h, w = 5, 7
  model = DiagonalBiLSTM(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=6,
    num_layers=num_layers,
    output_dim=12,
    residual=True,
    skip=False,
    rngs=nnx.Rngs(0),
  )
  x = jax.random.uniform(jax.random.key(3), (6, h, w, num_channels), maxval=num_levels - 1)
  pattern = causality.dependency_pattern(model, x)
  causality.assert_causal(pattern)
  causality.assert_receptive_field(pattern, complete_context_after_mask_a(h, w, num_channels))


class UnshiftedDiagonalBiLSTMLayer(DiagonalBiLSTMLayer):
  """The common bug: the right-to-left output added without the one-row shift."""

  def __call__(self, x, conditioning=None):
    lr, rl = self.directions(x, conditioning)
    return lr + rl


def test_without_the_right_to_left_shift_the_model_sees_the_future():
  model = RecurrentStack(
    UnshiftedDiagonalBiLSTMLayer,
    num_channels=1,
    num_levels=2,
    hidden_dim=4,
    num_layers=1,
    output_dim=8,
    residual=True,
    skip=False,
    rngs=nnx.Rngs(0),
  )
  x = jax.random.uniform(jax.random.key(4), (2, 4, 5, 1))
  with pytest.raises(AssertionError, match="forbidden dependencies"):
    causality.assert_causal(causality.dependency_pattern(model, x))


def test_shift_down_moves_rows_and_zeroes_the_first():
  x = jnp.arange(6.0).reshape(1, 3, 2, 1)
  np.testing.assert_array_equal(shift_down(x)[0, :, :, 0], [[0, 0], [0, 1], [2, 3]])


@pytest.mark.parametrize("h, w", [(28, 28), (5, 8), (8, 5), (1, 6), (6, 1)])
@pytest.mark.parametrize("num_phases", [2, 4, 7])
def test_scan_phases_cover_every_in_image_state_and_the_row_each_phase_reads_first(
  h, w, num_phases
):
  valid = skewed_validity(h, w)  # (W + H - 1, H)
  phases = scan_phases(h, w, num_phases)
  assert phases[0][0] == 0 and phases[-1][1] == w + h - 1
  assert all(a[1] == b[0] for a, b in zip(phases, phases[1:])), "consecutive columns"
  for t0, t1, lo, hi in phases:
    rows = np.nonzero(valid[t0:t1].any(axis=0))[0]
    assert lo <= rows.min() and rows.max() < hi
    top = np.nonzero(valid[t0])[0].min()
    if top > 0 and t0 > 0:  # The first column's top state reads the one above it, from t0 - 1.
      assert valid[t0 - 1, top - 1] and lo <= top - 1
  cells = sum((t1 - t0) * (hi - lo) for t0, t1, lo, hi in scan_phases(28, 28, 4))
  assert cells < 0.76 * 55 * 28, "the phases skip about a quarter of the skewed map"


@pytest.mark.parametrize("h, w, num_phases", [(6, 6, 5), (4, 7, 3), (7, 4, 4)])
def test_the_phased_scan_equals_one_scan_and_so_do_its_gradients(h, w, num_phases):
  keys = jax.random.split(jax.random.key(0), 3)
  gates = jax.random.normal(keys[0], (w + h - 1, 2, 3, h, 4 * 5))
  kernel = 0.5 * jax.random.normal(keys[1], (2, 10, 20))
  weights = jax.random.normal(keys[2], (w + h - 1, 2, 3, h, 5))
  valid = jnp.asarray(skewed_validity(h, w))[:, None, None, :, None]
  one = lambda g, k: lstm_scan(g, k, column_state_to_state, valid)
  loss = lambda fn: lambda g, k: jnp.sum(weights * jnp.tanh(fn(g, k)))
  # Compiled, since eager the scans' backward passes dispatch op by op (several times slower).
  value_and_grads = lambda fn: jax.jit(lambda g, k: (fn(g, k), jax.grad(loss(fn), (0, 1))(g, k)))
  phased = lambda g, k: phased_lstm_scan(g, k, valid, num_phases)
  one_value, one_grads = value_and_grads(one)(gates, kernel)
  phased_value, phased_grads = value_and_grads(phased)(gates, kernel)
  np.testing.assert_allclose(phased_value, one_value, rtol=1e-5, atol=1e-6)
  for a, b in zip(phased_grads, one_grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
