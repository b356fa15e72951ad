"""The precision policy: how training computes, and full float32 for everything reported.

`training.precision` chooses how the train step computes:

- "float32": full float32 matrix products and convolutions (precision HIGHEST).
- "tf32": float32 values with TensorFloat-32 matrix units (precision HIGH), which is
  what JAX does by default on recent NVIDIA GPUs: a 10-bit mantissa in the products,
  float32 accumulation. Ignored on CPU, which always computes float32.
- "bfloat16": parameters, masks and activations are cast to bfloat16 for the forward
  and backward pass; the parameters, their gradients, the optimizer state, the EMA,
  the log-softmax and the loss stay float32.

Evaluation, every reported likelihood and the samplers ignore it: they always run
`full_precision` (float32 values, precision HIGHEST), so a reported NLL and "same key,
same samples" do not depend on the hardware's default precision.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Policy:
  """`matmul_precision`: the value given to `jax.default_matmul_precision` while
  tracing; `compute_dtype`: the dtype floating parameters and activations take."""

  matmul_precision: str
  compute_dtype: jnp.dtype


POLICIES = {
  "float32": Policy("highest", jnp.float32),
  "tf32": Policy("tensorfloat32", jnp.float32),
  "bfloat16": Policy("default", jnp.bfloat16),
}
PRECISIONS = tuple(POLICIES)
FULL = POLICIES["float32"]


def policy(name: str) -> Policy:
  if name not in POLICIES:
    raise ValueError(f"Unknown training.precision {name!r}; valid: {list(PRECISIONS)}.")
  return POLICIES[name]


def traced_with(matmul_precision: str, fn: Callable) -> Callable:
  """`fn`, with every matrix product and convolution it traces at `matmul_precision`.

  The setting is read while tracing, so it holds whether `fn` is jitted afterwards or
  called inside another jitted function.
  """

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.default_matmul_precision(matmul_precision):
      return fn(*args, **kwargs)

  return wrapped


def full_precision(fn: Callable) -> Callable:
  """Decorator: `fn` traces its products and convolutions at full float32 (HIGHEST)."""
  return traced_with(FULL.matmul_precision, fn)


def cast_floating(tree, dtype):
  """`tree` with every floating-point leaf cast to `dtype` (integer leaves unchanged)."""

  def cast(x):
    return x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x

  return jax.tree.map(cast, tree)
