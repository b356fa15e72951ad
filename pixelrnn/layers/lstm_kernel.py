"""The recurrent layers' LSTM recurrence as one Pallas kernel per pass.

Both recurrent layers run `recurrent_stack.lstm_scan` over T steps, and on a GPU each
step costs several small XLA kernels (the state-to-state product, the cell update,
the slicing), so a layer's forward and backward passes are 2T rounds of launches.
Here each pass is one launch: every program of the kernel's grid owns one sequence,
keeps its (S, h) cell and hidden states in registers, and loops over the T steps.

The state-to-state product is written as taps along one spatial axis of S positions:
  recurrent(h)[s] = sum_k h[s + offsets[k]] @ kernel[k],  h[s'] = 0 outside [0, S),
which is the Row LSTM's 1x3 row convolution (offsets (-1, 0, 1) over the W pixels of
the previous row) and the Diagonal BiLSTM's 2x1 column convolution (offsets (-1, 0)
over the H rows of the previous skewed column). Inside the kernel a shift is a product
with a 0/1 matrix at HIGHEST precision, which is exact; the products with the kernel
run at the precision of the surrounding `jax.default_matmul_precision` (the precision
policy, see `precision.py`), as the jnp path's do.

On a GPU the kernel is lowered by Triton (power-of-two sizes: S is padded to one, h
must be one). Elsewhere it runs in Pallas interpret mode: exact but slow, for tests;
`lstm_scan` is the path for CPUs, and the reference the kernel is tested against
(tests/test_lstm_kernel.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pl_triton

_MATMUL_PRECISIONS = {
  "highest": jax.lax.Precision.HIGHEST,
  "float32": jax.lax.Precision.HIGHEST,
  "high": jax.lax.Precision.HIGH,
  "tensorfloat32": jax.lax.Precision.HIGH,
  "bfloat16_3x": jax.lax.Precision.HIGH,
}


def _matmul_precision() -> jax.lax.Precision:
  """The ambient `jax.default_matmul_precision`, made explicit for the kernel (Pallas's
  Triton lowering would otherwise read "default" as TensorFloat-32 whatever the policy)."""
  setting = jax.config.jax_default_matmul_precision
  return _MATMUL_PRECISIONS.get(str(setting).lower(), jax.lax.Precision.DEFAULT)


def _next_power_of_two(n: int) -> int:
  return 1 << max(0, n - 1).bit_length()


def _shift_matrices(size: int, offsets: tuple[int, ...], dtype) -> list[jax.Array | None]:
  """(size, size) 0/1 matrices M_k with (M_k @ h)[s] = h[s + offsets[k]] (zero outside);
  None for offset 0."""
  rows = jax.lax.broadcasted_iota(jnp.int32, (size, size), 0)
  cols = jax.lax.broadcasted_iota(jnp.int32, (size, size), 1)
  return [None if offset == 0 else (cols == rows + offset).astype(dtype) for offset in offsets]


def _dot(a, b, precision):
  return jnp.dot(a, b, precision=precision, preferred_element_type=jnp.float32).astype(a.dtype)


def _shift(matrix, x):
  """matrix @ x for a shift matrix (None: the identity), exactly: x (S, h) -> (S, h)."""
  return x if matrix is None else _dot(matrix, x, jax.lax.Precision.HIGHEST)


def _forward_kernel(
  offsets, precision, gates_ref, kernel_ref, valid_ref, hidden_ref, cell_ref, activation_ref
):
  """One sequence: gates_ref (T, S, 4h), kernel_ref (n_taps, 4, h, h), valid_ref (T, S, 1).

  Writes the hidden and cell states (T, S, h), zero where valid is 0, and
  activation_ref (T, S, 4h): tanh(pre / 2) for the i, f, o gates and tanh(pre) for g
  (sigmoid(x) = tanh(x / 2) / 2 + 1 / 2), which the backward pass reads.
  """
  num_steps, size, _ = gates_ref.shape
  h = hidden_ref.shape[-1]
  shifts = _shift_matrices(size, offsets, gates_ref.dtype)
  gate = lambda q: pl.ds(q * h, h)

  def step(t, carry):
    prev_cell, prev_hidden = carry
    taps = [_shift(m, prev_hidden) for m in shifts]
    pre = [
      gates_ref[t, :, gate(q)]
      + sum(_dot(tap, kernel_ref[k, q], precision) for k, tap in enumerate(taps))
      for q in range(4)
    ]
    act = [jnp.tanh(pre[q] * 0.5) for q in range(3)] + [jnp.tanh(pre[3])]
    input_gate, forget_gate, output_gate = (a * 0.5 + 0.5 for a in act[:3])
    valid = valid_ref[t]
    cell = (forget_gate * prev_cell + input_gate * act[3]) * valid
    hidden = output_gate * jnp.tanh(cell) * valid
    hidden_ref[t] = hidden
    cell_ref[t] = cell
    for q in range(4):
      activation_ref[t, :, gate(q)] = act[q]
    return cell, hidden

  zeros = jnp.zeros((size, h), gates_ref.dtype)
  jax.lax.fori_loop(0, num_steps, step, (zeros, zeros))


def _backward_kernel(
  offsets, precision, d_hidden_ref, activation_ref, cell_ref, kernel_t_ref, valid_ref, d_gates_ref
):
  """One sequence, steps T-1 .. 0: the pre-activations' cotangents (T, S, 4h).

  kernel_t_ref: (n_taps, 4, h, h), each tap and gate's kernel transposed.
  """
  num_steps, size, h = d_hidden_ref.shape
  shifts_t = _shift_matrices(size, tuple(-offset for offset in offsets), d_hidden_ref.dtype)
  gate = lambda q: pl.ds(q * h, h)

  def step(r, carry):
    t = num_steps - 1 - r
    d_cell_next, d_hidden_recurrent = carry
    valid = valid_ref[t]
    d_hidden = (d_hidden_ref[t] + d_hidden_recurrent) * valid
    act_i, act_f, act_o, act_g = (activation_ref[t, :, gate(q)] for q in range(4))
    # The stored cell is zero where valid is 0, and there every cotangent is zero too.
    tanh_cell = jnp.tanh(cell_ref[t])
    prev_cell = cell_ref[jnp.maximum(t - 1, 0)] * (t > 0).astype(tanh_cell.dtype)
    d_cell = d_cell_next * valid + d_hidden * (act_o * 0.5 + 0.5) * (1 - tanh_cell * tanh_cell)
    # d sigmoid(x) / dx = (1 - tanh(x / 2)^2) / 4.
    d_pre = [
      d_cell * act_g * 0.25 * (1 - act_i * act_i),
      d_cell * prev_cell * 0.25 * (1 - act_f * act_f),
      d_hidden * tanh_cell * 0.25 * (1 - act_o * act_o),
      d_cell * (act_i * 0.5 + 0.5) * (1 - act_g * act_g),
    ]
    for q in range(4):
      d_gates_ref[t, :, gate(q)] = d_pre[q]
    d_taps = [
      sum(_dot(d_pre[q], kernel_t_ref[k, q], precision) for q in range(4))
      for k in range(len(offsets))
    ]
    d_prev_hidden = sum(_shift(m, d_tap) for m, d_tap in zip(shifts_t, d_taps))
    return d_cell * (act_f * 0.5 + 0.5), d_prev_hidden

  zeros = jnp.zeros((size, h), d_hidden_ref.dtype)
  jax.lax.fori_loop(0, num_steps, step, (zeros, zeros))


def _call(kernel_fn, inputs, in_blocks, out_shapes, out_blocks, groups, interpret):
  """Runs `kernel_fn` with one program per sequence g = 0..G-1 (axis 1 of the maps).

  A block given as "map" is one sequence's (T, S, F) slice of a (T, G, S, F) array;
  "weights" is the direction's (n_taps, 4, h, h) of a (D, n_taps, 4, h, h) array, with
  sequence g in direction g // (G / D); anything else is a whole array.
  """

  def spec(kind, shape):
    if kind == "map":
      return pl.BlockSpec((shape[0], None) + shape[2:], lambda g: (0, g, 0, 0))
    if kind == "weights":
      per_direction = groups // shape[0]
      return pl.BlockSpec((None,) + shape[1:], lambda g: (g // per_direction, 0, 0, 0, 0))
    return pl.BlockSpec(shape, lambda g: (0,) * len(shape))

  return pl.pallas_call(
    kernel_fn,
    grid=(groups,),
    in_specs=[spec(kind, x.shape) for kind, x in zip(in_blocks, inputs)],
    out_specs=[spec(kind, s.shape) for kind, s in zip(out_blocks, out_shapes)],
    out_shape=out_shapes,
    interpret=interpret,
    compiler_params=None if interpret else pl_triton.CompilerParams(num_warps=4),
  )(*inputs)


def _forward(offsets, interpret, gates_in, kernel, valid):
  t, groups, size, four_h = gates_in.shape
  state = jax.ShapeDtypeStruct((t, groups, size, four_h // 4), gates_in.dtype)
  activation = jax.ShapeDtypeStruct(gates_in.shape, gates_in.dtype)
  kernel_fn = functools.partial(_forward_kernel, offsets, _matmul_precision())
  return _call(
    kernel_fn,
    (gates_in, kernel, valid),
    ("map", "weights", "whole"),
    (state, state, activation),
    ("map", "map", "map"),
    groups,
    interpret,
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _taps_scan(offsets, interpret, gates_in, kernel, valid):
  return _forward(offsets, interpret, gates_in, kernel, valid)[0]


def _taps_scan_fwd(offsets, interpret, gates_in, kernel, valid):
  hidden, cell, activation = _forward(offsets, interpret, gates_in, kernel, valid)
  return hidden, (hidden, cell, activation, kernel, valid)


def _taps_scan_bwd(offsets, interpret, residuals, d_hidden):
  hidden, cell, activation, kernel, valid = residuals
  groups = hidden.shape[1]
  kernel_fn = functools.partial(_backward_kernel, offsets, _matmul_precision())
  (d_gates,) = _call(
    kernel_fn,
    (d_hidden, activation, cell, jnp.swapaxes(kernel, -1, -2), valid),
    ("map", "map", "map", "weights", "whole"),
    (jax.ShapeDtypeStruct(activation.shape, activation.dtype),),
    ("map",),
    groups,
    interpret,
  )
  # The kernel's gradient is one contraction over all steps: the taps of the previous
  # step's hidden states against the pre-activations' cotangents.
  prev_hidden = jnp.pad(hidden, ((1, 0), (0, 0), (0, 0), (0, 0)))[:-1]
  taps = jnp.stack(shift_taps(prev_hidden, offsets), axis=-2)  # (T, G, S, n_taps, h)
  directions, num_taps, _, h, _ = kernel.shape
  taps = taps.reshape((taps.shape[0], directions, -1) + taps.shape[2:])
  d_pre = d_gates.reshape(d_gates.shape[:1] + (directions, -1) + d_gates.shape[2:-1] + (4, h))
  d_kernel = jnp.einsum("tdnski,tdnsqj->dkqij", taps, d_pre)
  return d_gates, d_kernel, jnp.zeros_like(valid)


_taps_scan.defvjp(_taps_scan_fwd, _taps_scan_bwd)


def shift_taps(x: jax.Array, offsets: tuple[int, ...]) -> list[jax.Array]:
  """x (..., S, h) -> [x shifted by each offset along S]: out[k][..., s, :] is
  x[..., s + offsets[k], :], zero where that is outside [0, S)."""
  size = x.shape[-2]
  pad = [(0, 0)] * (x.ndim - 2)
  return [
    jnp.pad(x, pad + [(max(0, -o), max(0, o)), (0, 0)])[..., max(0, o) : max(0, o) + size, :]
    for o in offsets
  ]


def lstm_taps_scan(
  gates_in: jax.Array,
  kernel: jax.Array,
  offsets: tuple[int, ...],
  valid: jax.Array | None = None,
  *,
  interpret: bool | None = None,
) -> jax.Array:
  """`recurrent_stack.lstm_scan` with zero initial states, for a tap recurrence.

  Args:
    gates_in: (T, G, S, 4h) input-to-state pre-activations of G independent sequences,
      gates laid out as [i, f, o, g] blocks of h.
    kernel: (D, n_taps * h, 4h), the state-to-state weights over the taps
      [h(s + offsets[0]), h(s + offsets[1]), ...]; G = D * N and sequence g uses
      kernel[g // N] (D = 2 for the Diagonal BiLSTM's two directions).
    offsets: the taps' offsets along S.
    valid: optional (T, S) 0/1 array: states where it is 0 are kept at zero.
    interpret: Pallas interpret mode; by default, everywhere but on a GPU.

  Returns:
    (T, G, S, h) hidden states.
  """
  steps, groups, size, four_h = gates_in.shape
  h = four_h // 4
  directions = kernel.shape[0]
  if kernel.shape != (directions, len(offsets) * h, four_h) or groups % directions:
    raise ValueError(
      f"kernel of shape {kernel.shape} does not fit gates_in {gates_in.shape} "
      f"and {len(offsets)} taps: expected ({directions}, {len(offsets) * h}, "
      f"{four_h}) with {directions} dividing {groups} sequences."
    )
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  if not interpret and h != _next_power_of_two(h):
    raise ValueError(f"The Pallas LSTM kernel needs a power-of-two hidden_dim on a GPU, got {h}.")
  valid = jnp.ones((steps, size), gates_in.dtype) if valid is None else valid
  # Padded positions are invalid, so their states stay zero and no tap reads garbage.
  padded = _next_power_of_two(size)
  valid = jnp.pad(jnp.asarray(valid, gates_in.dtype), ((0, 0), (0, padded - size)))[..., None]
  gates_in = jnp.pad(gates_in, ((0, 0), (0, 0), (0, padded - size), (0, 0)))
  # (D, n_taps, 4, h, h): tap k, gate q's (h, h) block.
  kernel = kernel.reshape(directions, len(offsets), h, 4, h).transpose(0, 1, 3, 2, 4)
  hidden = _taps_scan(tuple(offsets), interpret, gates_in, kernel.astype(gates_in.dtype), valid)
  return hidden[:, :, :size]
