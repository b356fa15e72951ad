import re

import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import export

from pixelrnn.layers import lstm, lstm_kernel
from pixelrnn.layers.shifts import skewed_validity
from pixelrnn.models.diagonal_bilstm import (
  DiagonalBiLSTM,
  DiagonalBiLSTMLayer,
  column_state_to_state,
)
from pixelrnn.models.row_lstm import RowLSTM, RowLSTMLayer, row_state_to_state


def sin_sum(fn):
  """A scalar loss whose cotangents differ per element (a plain sum would not)."""
  return lambda *args: jnp.sum(jnp.sin(fn(*args)))


def assert_values_and_gradients_close(reference, kernel, args):
  argnums = tuple(range(len(args)))
  want, got = (
    jax.jit(lambda *a, fn=fn: (fn(*a), jax.grad(sin_sum(fn), argnums)(*a)))(*args)
    for fn in (reference, kernel)
  )
  np.testing.assert_allclose(got[0], want[0], atol=2e-6)
  for a, b in zip(want[1], got[1]):
    np.testing.assert_allclose(b, a, atol=5e-6)


@pytest.mark.parametrize("rows, width, hidden", [(5, 6, 4)])
def test_the_kernel_equals_the_row_lstm_scan_values_and_gradients(rows, width, hidden):
  keys = jax.random.split(jax.random.key(0), 2)
  gates = jax.random.normal(keys[0], (rows, 3, width, 4 * hidden))
  kernel = 0.5 * jax.random.normal(keys[1], (3 * hidden, 4 * hidden))
  assert_values_and_gradients_close(
    lambda g, k: lstm.lstm_scan(g, k, row_state_to_state),
    lambda g, k: lstm_kernel.lstm_taps_scan(g, k[None], RowLSTMLayer.taps, interpret=True),
    (gates, kernel),
  )


@pytest.mark.parametrize("height, width", [(5, 6), (4, 3)])
def test_the_kernel_equals_the_diagonal_scan_with_validity_values_and_gradients(height, width):
  batch, hidden, length = 2, 4, width + height - 1
  keys = jax.random.split(jax.random.key(1), 2)
  gates = jax.random.normal(keys[0], (length, 2, batch, height, 4 * hidden))
  kernel = 0.5 * jax.random.normal(keys[1], (2, 2 * hidden, 4 * hidden))
  valid = jnp.asarray(skewed_validity(height, width))

  def with_kernel(g, k):
    sequences = g.reshape(length, 2 * batch, height, 4 * hidden)
    hidden_states = lstm_kernel.lstm_taps_scan(
      sequences, k, DiagonalBiLSTMLayer.taps, valid, interpret=True
    )
    return hidden_states.reshape(length, 2, batch, height, hidden)

  assert_values_and_gradients_close(
    lambda g, k: lstm.lstm_scan(g, k, column_state_to_state, valid[:, None, None, :, None]),
    with_kernel,
    (gates, kernel),
  )


def test_shift_taps_reads_the_neighbours_with_zeros_outside():
  x = jnp.arange(1.0, 5.0)[:, None]  # (S=4, h=1)
  left, centre, right = lstm_kernel.shift_taps(x, (-1, 0, 1))
  np.testing.assert_array_equal(left[:, 0], [0, 1, 2, 3])
  np.testing.assert_array_equal(centre[:, 0], [1, 2, 3, 4])
  np.testing.assert_array_equal(right[:, 0], [2, 3, 4, 0])


@pytest.mark.parametrize("model_class", [RowLSTM, DiagonalBiLSTM])
def test_a_model_on_the_kernel_equals_the_scan_path_with_the_same_exact_receptive_field(
  model_class,
):
  def build(pallas_lstm):
    return model_class(
      num_channels=3,
      num_levels=4,
      hidden_dim=4,
      num_layers=2,
      output_dim=8,
      residual=True,
      skip=True,
      pallas_lstm=pallas_lstm,
      rngs=nnx.Rngs(0),
    )

  x = jax.random.uniform(jax.random.key(2), (2, 3, 4, 3), maxval=3)

  @jax.jit
  def outputs(graphdef, state):
    model = nnx.merge(graphdef, state)
    loss = lambda m: jnp.sum(jnp.sin(m(x)))
    # Exact zeros: which sub-pixels each logit depends on.
    return model(x), nnx.grad(loss)(model), causality.dependency_pattern(model, x, as_array=True)

  (want, want_grads, want_pattern), (got, got_grads, pattern) = (
    outputs(*nnx.split(build(pallas_lstm))) for pallas_lstm in (False, True)
  )
  np.testing.assert_allclose(got, want, atol=2e-5)
  for a, b in zip(jax.tree.leaves(want_grads), jax.tree.leaves(got_grads)):
    np.testing.assert_allclose(b, a, atol=5e-5)
  causality.assert_causal(np.asarray(pattern))
  np.testing.assert_array_equal(pattern, want_pattern)


def dot_precisions(matmul_precision):
  gates, kernel = jnp.zeros((3, 2, 4, 64)), jnp.zeros((1, 48, 64))
  with jax.default_matmul_precision(matmul_precision):
    jaxpr = jax.make_jaxpr(
      lambda g, k: lstm_kernel.lstm_taps_scan(g, k, (-1, 0, 1), interpret=False)
    )(gates, kernel)
  return set(re.findall(r"precision=\(Precision\.(\w+)", str(jaxpr)))


def test_the_kernels_products_follow_the_precision_policy_and_its_shifts_are_exact():
  # Pallas's Triton lowering reads DEFAULT as TensorFloat-32: the kernel must not leave
  # the precision implicit, or evaluation would round on a GPU.
  assert dot_precisions("highest") == {"HIGHEST"}
  assert dot_precisions("tensorfloat32") == {"HIGH", "HIGHEST"}
  assert dot_precisions("default") == {"DEFAULT", "HIGHEST"}


@pytest.mark.parametrize(
  "taps, directions, length, size", [((-1, 0, 1), 1, 28, 28), ((-1, 0), 2, 55, 28)]
)
def test_each_pass_lowers_to_one_triton_kernel_for_a_gpu(taps, directions, length, size):
  hidden = 16

  def loss(gates, kernel, valid):
    return jnp.sum(lstm_kernel.lstm_taps_scan(gates, kernel, taps, valid, interpret=False))

  shapes = (
    jax.ShapeDtypeStruct((length, 4 * directions, size, 4 * hidden), jnp.float32),
    jax.ShapeDtypeStruct((directions, len(taps) * hidden, 4 * hidden), jnp.float32),
    jax.ShapeDtypeStruct((length, size), jnp.float32),
  )
  triton = "__gpu$xla.gpu.triton"
  for fn, kernels in ((loss, 1), (jax.grad(loss, (0, 1)), 2)):
    exported = export.export(
      jax.jit(fn),
      platforms=["cuda"],
      disabled_checks=[export.DisabledSafetyCheck.custom_call(triton)],
    )(*shapes)
    module = exported.mlir_module()
    assert module.count(triton) == kernels
    assert "stablehlo.while" not in module  # No per-step loop outside the kernels.


def test_a_kernel_that_does_not_fit_the_gates_is_refused():
  with pytest.raises(ValueError, match=r"kernel of shape \(1, 8, 16\) does not fit"):
    lstm_kernel.lstm_taps_scan(jnp.zeros((3, 2, 5, 16)), jnp.zeros((1, 8, 16)), (-1, 0, 1))


def test_on_a_gpu_the_hidden_dim_must_be_a_power_of_two():
  with pytest.raises(ValueError, match="power-of-two hidden_dim on a GPU, got 6"):
    lstm_kernel.lstm_taps_scan(
      jnp.zeros((3, 2, 5, 24)), jnp.zeros((1, 18, 24)), (-1, 0, 1), interpret=False
    )
