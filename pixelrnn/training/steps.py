"""The pure computations of training: the state, one optimisation step, k steps per
dispatch on device-resident data, and the evaluation step.

Every function here is pure and jitted by `train.Trainer`, which places their
arguments on the devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import NamedSharding

from pixelrnn import likelihood
from pixelrnn.models import multiscale, registry
from pixelrnn.training import precision


@struct.dataclass
class TrainState:
  """Everything a resumed run needs. `ema_params` are used for eval and sampling."""

  step: jax.Array
  params: nnx.State
  ema_params: nnx.State
  opt_state: optax.OptState


def is_multiscale(config) -> bool:
  return config.model.multiscale.factor > 1


def loss_weights(config, image_shape: tuple[int, int, int]) -> dict[str, float]:
  """The loss as weights on the mean per-image NLL terms (see `train_step`).

  The whole image's NLL per sub-pixel, or for a multi-scale model trained
  "separate"ly each part's NLL per sub-pixel it scores.
  """
  dims = multiscale.part_dims(image_shape, config.model.multiscale.factor)
  if is_multiscale(config) and config.training.multiscale_objective == "separate":
    return {"small_nll": 1.0 / dims["small_nll"], "large_nll": 1.0 / dims["large_nll"]}
  return {"nll": 1.0 / dims["nll"]}


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
  """EMA decay with warm-up, min(decay, (1 + step) / (10 + step)), so that a short
  run's EMA is not dominated by the random initialisation."""
  step = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def train_step(
  model: registry.FunctionalModel,
  state: TrainState,
  batch: dict[str, jax.Array],
  *,
  tx: optax.GradientTransformation,
  ema_decay: float,
  weights: dict[str, float] | None = None,
  compute_dtype=jnp.float32,
  skip_nonfinite: bool = False,
  dropout_seed: int = 0,
):
  """One optimisation step on a batch: "images" (B, H, W, C) integer levels, and for a
  class-conditional model "labels" (B,).

  The loss is sum_k weights[k] * mean over the batch of NLL term k (nats); by default
  the mean NLL per sub-pixel. The network runs with its parameters and masks cast to
  `compute_dtype`; gradients, optimizer state, EMA and loss are float32 (see
  `precision.py`). Returns the new state and scalar metrics (nats per image,
  bits/dim, gradient norm, each part of a multi-scale model's NLL, and `finite`:
  whether the loss and gradients are finite). With `skip_nonfinite`, a non-finite
  step only advances the step counter (see `finite_guard.py`).
  """
  images = batch["images"]
  num_dims = math.prod(images.shape[1:])
  weights = {"nll": 1.0 / num_dims} if weights is None else weights
  compute_model = model.cast(compute_dtype)
  # A function of (seed, step) alone, so resuming and steps_per_dispatch keep the masks.
  dropout_key = jax.random.fold_in(jax.random.key(dropout_seed), state.step)

  def loss_fn(params):
    terms = compute_model.nll_terms(
      precision.cast_floating(params, compute_dtype), images, batch.get("labels"), dropout_key
    )
    return sum(w * jnp.mean(terms[k]) for k, w in weights.items()), terms

  (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  nll = terms["nll"]
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  d = ema_decay_at(state.step, ema_decay)
  ema_params = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema_params, params)
  new_state = state.replace(
    step=state.step + 1, params=params, ema_params=ema_params, opt_state=opt_state
  )
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  if skip_nonfinite:
    kept = state.replace(step=state.step + 1)
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, kept)
  metrics = {
    "loss": loss,
    "nll_nats": jnp.mean(nll),
    "bits_per_dim": likelihood.bits_per_dim(jnp.mean(nll), num_dims),
    "grad_norm": grad_norm,
    "finite": finite,
    **{f"{k}_nats": jnp.mean(v) for k, v in terms.items() if k != "nll"},
  }
  return new_state, metrics


def train_steps(
  model: registry.FunctionalModel,
  state: TrainState,
  data: dict[str, jax.Array],
  indices: jax.Array,
  count: jax.Array,
  *,
  step_fn: Callable,
  batch_sharding: NamedSharding | None = None,
):
  """Up to k train steps in one call, on batches gathered from device-resident data.

  data: the training set, "images" (N, H, W, C) integer levels and, for a
  class-conditional model, "labels" (N,); indices: (k, B) int32, step i's batch being
  the rows indices[i] of each; count: int32 scalar <= k, the steps to run (the rest of
  `indices` is ignored). `step_fn(model, state, batch)` is one step (`train_step`,
  bound to its settings). Returns the state after `count` steps and every step's metrics stacked on
  a leading axis of k (rows >= count are zero).

  The result does not depend on k, bit for bit: optimization barriers around each step
  keep XLA from fusing across steps, so every step compiles to the same code whatever
  k is. (A step compiled on its own, outside a loop, may round its gradients
  differently; `Trainer.train_step` is therefore this function with k = 1.)
  """

  def gather(i):
    batch = jax.tree.map(lambda rows: jnp.take(rows, indices[i], axis=0), data)
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return batch

  shapes = jax.eval_shape(lambda s, b: step_fn(model, s, b)[1], state, gather(0))
  stacked = jax.tree.map(lambda m: jnp.zeros((indices.shape[0],) + m.shape, m.dtype), shapes)

  def body(i, carry):
    state, stacked = carry
    state, batch = jax.lax.optimization_barrier((state, gather(i)))
    state, metrics = jax.lax.optimization_barrier(step_fn(model, state, batch))
    return state, jax.tree.map(lambda rows, m: rows.at[i].set(m), stacked, metrics)

  return jax.lax.fori_loop(0, count, body, (state, stacked))


def eval_step(
  model: registry.FunctionalModel, params: nnx.State, batch: dict[str, jax.Array], valid: jax.Array
) -> dict[str, jax.Array]:
  """Sums of the per-image NLL terms (nats) over the rows where `valid` is True.

  batch: "images" (B, H, W, C) and, for a class-conditional model, "labels" (B,); then
  also "class_nll" and "class_count", (num_classes,): the NLL summed per class and the
  number of images of each class.
  """
  terms = model.nll_terms(params, batch["images"], batch.get("labels"))
  sums = {k: jnp.sum(jnp.where(valid, v, 0.0)) for k, v in terms.items()}
  if model.num_classes:
    per_class = jnp.zeros(model.num_classes, jnp.float32)
    sums["class_nll"] = per_class.at[batch["labels"]].add(jnp.where(valid, terms["nll"], 0.0))
    sums["class_count"] = per_class.at[batch["labels"]].add(valid.astype(jnp.float32))
  return sums
