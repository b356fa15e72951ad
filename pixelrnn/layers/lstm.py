"""The LSTM cell and its scan over a sequence of positions, with hand-written
gradients: the recurrence the Row LSTM and Diagonal BiLSTM layers share."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


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


def _lstm_step(gates, prev_cell, valid):
  """Cell update kept at zero where `valid` is 0; also returns the backward residuals."""
  (cell, hidden), (t, _, tanh_cell) = _lstm_cell_fwd(gates, prev_cell)
  return cell * valid, hidden * valid, t, tanh_cell


def lstm_scan(
  gates_in: jax.Array,
  kernel: jax.Array,
  recurrent_input: Callable,
  valid: jax.Array | None = None,
  initial: tuple[jax.Array, jax.Array] | None = None,
  return_final: bool = False,
):
  """An LSTM recurrence over the leading axis, with a hand-written backward pass.

  For t = 0..T-1 (the states before t = 0 are `initial`, by default zero):
    c_t, h_t = lstm_cell(gates_in[t] + recurrent_input(h_{t-1}, kernel), c_{t-1}),
  then c_t and h_t are multiplied by valid[t] (1 inside the image, 0 outside).

  Args:
    gates_in: (T, *S, 4h) input-to-state pre-activations, computed before the scan.
    kernel: the state-to-state weights.
    recurrent_input: (h (..., *S, h), kernel) -> (..., *S, 4h), linear in each
      argument and accepting extra leading axes (it is also applied to all T steps
      at once in the backward pass).
    valid: optional 0/1 array broadcastable to (T, *S, 1).
    initial: optional (cell, hidden) states before t = 0, each (*S, h).
    return_final: also return the (cell, hidden) states after t = T - 1, so that a
      recurrence can be split into consecutive scans.

  Returns:
    (T, *S, h) hidden states; with `return_final`, (hidden states, (cell, hidden)).

  The backward pass is a reverse scan that carries only the state cotangents; the
  kernel's gradient is one contraction over all steps afterwards, instead of an
  accumulation inside the loop as autodiff would do.
  """
  if valid is None:
    valid = jnp.ones((gates_in.shape[0],) + (1,) * (gates_in.ndim - 1), gates_in.dtype)
  valid = jnp.asarray(valid, gates_in.dtype)  # The states keep the gates' dtype.
  if initial is None:
    zeros = jnp.zeros(gates_in.shape[1:-1] + (gates_in.shape[-1] // 4,), gates_in.dtype)
    initial = (zeros, zeros)
  hidden, final = _lstm_scan(recurrent_input, gates_in, kernel, valid, *initial)
  return (hidden, final) if return_final else hidden


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm_scan(recurrent_input, gates_in, kernel, valid, initial_cell, initial_hidden):
  def step(carry, inputs):
    cell, hidden = carry
    gates, v = inputs
    cell, hidden, _, _ = _lstm_step(gates + recurrent_input(hidden, kernel), cell, v)
    return (cell, hidden), hidden

  final, hidden = jax.lax.scan(step, (initial_cell, initial_hidden), (gates_in, valid))
  return hidden, final


def _lstm_scan_fwd(recurrent_input, gates_in, kernel, valid, initial_cell, initial_hidden):
  def step(carry, inputs):
    prev_cell, hidden = carry
    gates, v = inputs
    cell, hidden, t, tanh_cell = _lstm_step(gates + recurrent_input(hidden, kernel), prev_cell, v)
    return (cell, hidden), (hidden, t, prev_cell, tanh_cell)

  final, (hidden, t, prev_cell, tanh_cell) = jax.lax.scan(
    step, (initial_cell, initial_hidden), (gates_in, valid)
  )
  return (hidden, final), (hidden, t, prev_cell, tanh_cell, kernel, valid, initial_hidden)


def _lstm_scan_bwd(recurrent_input, residuals, cotangents):
  hidden, t, prev_cell, tanh_cell, kernel, valid, initial_hidden = residuals
  d_hidden_out, (d_final_cell, d_final_hidden) = cotangents
  zeros = jnp.zeros_like(hidden[0])
  transpose_state = jax.linear_transpose(lambda h: recurrent_input(h, kernel), zeros)

  def step(carry, inputs):
    d_cell_next, d_hidden_recurrent = carry
    d_out, t_, prev_cell_, tanh_cell_, v = inputs
    d_gates, d_prev_cell = _lstm_cell_bwd(
      (t_, prev_cell_, tanh_cell_), (d_cell_next * v, (d_out + d_hidden_recurrent) * v)
    )
    (d_prev_hidden,) = transpose_state(d_gates)
    return (d_prev_cell, d_prev_hidden), d_gates

  # The final states' cotangents enter as those of the states after the last step.
  (d_initial_cell, d_initial_hidden), d_gates = jax.lax.scan(
    step,
    (d_final_cell, d_final_hidden),
    (d_hidden_out, t, prev_cell, tanh_cell, valid),
    reverse=True,
  )
  prev_hidden = jnp.concatenate([initial_hidden[None], hidden[:-1]])
  (d_kernel,) = jax.linear_transpose(lambda k: recurrent_input(prev_hidden, k), kernel)(d_gates)
  return d_gates, d_kernel, jnp.zeros_like(valid), d_initial_cell, d_initial_hidden


_lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)
