import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pixelrnn.layers.lstm import lstm_cell, lstm_scan
from pixelrnn.layers.shifts import skewed_validity
from pixelrnn.models.diagonal_bilstm import column_state_to_state
from pixelrnn.models.row_lstm import row_state_to_state


def textbook_lstm_cell(gates, cell):
  i, f, o, g = jnp.split(gates, 4, axis=-1)
  cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i) * jnp.tanh(g)
  return cell, jax.nn.sigmoid(o) * jnp.tanh(cell)


@pytest.mark.parametrize("scale", [0.5, 4.0])  # 4.0 drives the gates into saturation.
def test_lstm_cell_and_its_gradients_match_the_textbook_cell(scale):
  k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
  gates = scale * jax.random.normal(k1, (3, 5, 4 * 6))
  cell = jax.random.normal(k2, (3, 5, 6))
  w_c, w_h = jax.random.normal(k3, (3, 5, 6)), jax.random.normal(k4, (3, 5, 6))

  def loss(fn, g, c):  # Weighted so both outputs' cotangents are non-trivial.
    new_c, new_h = fn(g, c)
    return jnp.sum(w_c * new_c) + jnp.sum(w_h * jnp.sin(new_h))

  for ours, ref in zip(lstm_cell(gates, cell), textbook_lstm_cell(gates, cell)):
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
  ours = jax.grad(lambda g, c: loss(lstm_cell, g, c), argnums=(0, 1))(gates, cell)
  ref = jax.grad(lambda g, c: loss(textbook_lstm_cell, g, c), argnums=(0, 1))(gates, cell)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_lstm_cell_gradients_through_a_recurrence_match_the_textbook_cell():
  gates = jax.random.normal(jax.random.key(1), (7, 2, 4 * 3))

  def run(cell_fn, g):
    def step(carry, x):
      c, h = carry
      c, h = cell_fn(x + jnp.tile(h, 4), c)
      return (c, h), h

    zeros = jnp.zeros((2, 3))
    return jnp.sum(jax.lax.scan(step, (zeros, zeros), g)[1] ** 2)

  np.testing.assert_allclose(
    jax.grad(lambda g: run(lstm_cell, g))(gates),
    jax.grad(lambda g: run(textbook_lstm_cell, g))(gates),
    rtol=1e-4,
    atol=1e-6,
  )


def reference_scan(gates_in, kernel, recurrent_input, valid):
  def step(carry, inputs):
    c, h = carry
    g, v = inputs
    c, h = textbook_lstm_cell(g + recurrent_input(h, kernel), c)
    return (c * v, h * v), h * v

  zeros = jnp.zeros(gates_in.shape[1:-1] + (gates_in.shape[-1] // 4,))
  return jax.lax.scan(step, (zeros, zeros), (gates_in, valid))[1]


@pytest.mark.parametrize("layer", ["row", "column"])
def test_lstm_scan_and_its_gradients_match_autodiff_of_the_textbook_recurrence(layer):
  keys = jax.random.split(jax.random.key(2), 4)
  if layer == "row":
    fn, shape, kernel_shape = row_state_to_state, (6, 2, 5, 4 * 3), (9, 12)
    valid = jnp.ones((6, 1, 1, 1))
  else:
    fn, shape, kernel_shape = column_state_to_state, (8, 2, 2, 4, 4 * 3), (2, 6, 12)
    valid = jnp.asarray(skewed_validity(4, 5))[:, None, None, :, None]
  gates_in = jax.random.normal(keys[0], shape)
  kernel = 0.5 * jax.random.normal(keys[1], kernel_shape)
  weights = jax.random.normal(keys[2], shape[:-1] + (3,))

  def loss(scan_fn, g, k):
    return jnp.sum(weights * jnp.tanh(scan_fn(g, k, fn, valid)))

  np.testing.assert_allclose(
    lstm_scan(gates_in, kernel, fn, valid),
    reference_scan(gates_in, kernel, fn, valid),
    rtol=1e-5,
    atol=1e-6,
  )
  ours = jax.grad(lambda g, k: loss(lstm_scan, g, k), argnums=(0, 1))(gates_in, kernel)
  ref = jax.grad(lambda g, k: loss(reference_scan, g, k), argnums=(0, 1))(gates_in, kernel)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_scan_split_in_two_through_its_final_state_equals_one_scan_with_gradients():
  keys = jax.random.split(jax.random.key(5), 3)
  gates_in = jax.random.normal(keys[0], (7, 2, 5, 12))
  kernel = 0.5 * jax.random.normal(keys[1], (9, 12))
  weights = jax.random.normal(keys[2], (7, 2, 5, 3))

  def split(g, k):
    first, carry = lstm_scan(g[:3], k, row_state_to_state, return_final=True)
    return jnp.concatenate([first, lstm_scan(g[3:], k, row_state_to_state, initial=carry)])

  whole = lambda g, k: lstm_scan(g, k, row_state_to_state)
  np.testing.assert_allclose(split(gates_in, kernel), whole(gates_in, kernel), rtol=1e-6, atol=1e-7)
  loss = lambda fn: lambda g, k: jnp.sum(weights * jnp.tanh(fn(g, k)))
  for a, b in zip(
    jax.grad(loss(split), (0, 1))(gates_in, kernel), jax.grad(loss(whole), (0, 1))(gates_in, kernel)
  ):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The final state is the last step's.
  hidden, (cell, last) = lstm_scan(gates_in, kernel, row_state_to_state, return_final=True)
  np.testing.assert_array_equal(last, hidden[-1])
