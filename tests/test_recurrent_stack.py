import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pixelrnn.recurrent_stack import lstm_cell


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

  np.testing.assert_allclose(jax.grad(lambda g: run(lstm_cell, g))(gates),
                             jax.grad(lambda g: run(textbook_lstm_cell, g))(gates), rtol=1e-4, atol=1e-6)
