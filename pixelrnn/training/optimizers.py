"""The optimizer of a config: the paper's RMSProp or Adam, with a learning-rate schedule
and optional gradient clipping, and one independent copy per network for a multi-scale
model trained "separate"ly; and the config keys they take."""

from __future__ import annotations

import jax
import ml_collections
import optax

OPTIMIZERS = ("rmsprop", "adam")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "constant_then_linear", "exponential")


def config_group() -> ml_collections.ConfigDict:
  """The optimizer and its learning-rate schedule."""
  optimizer = ml_collections.ConfigDict()
  optimizer.name = "rmsprop"
  optimizer.learning_rate = 1e-3
  optimizer.schedule = "constant"
  optimizer.warmup_steps = 0
  optimizer.decay_per_step = 1.0  # "exponential": the rate is multiplied by it every step.
  # "constant_then_linear": the rate falls linearly to 0 over the last decay_steps.
  optimizer.decay_steps = 0
  optimizer.grad_clip_norm = 1.0  # 0 disables clipping.
  optimizer.rmsprop_decay = 0.95
  optimizer.adam_b1 = 0.9
  optimizer.adam_b2 = 0.999
  optimizer.eps = 1e-8
  return optimizer


def base_optimizer(opt_config, num_steps: int) -> optax.GradientTransformation:
  """RMSProp (the paper's choice) or Adam, with optional clipping and schedule."""
  lr = opt_config.learning_rate
  if opt_config.schedule == "constant":
    schedule = optax.constant_schedule(lr)
  elif opt_config.schedule == "cosine":
    schedule = optax.cosine_decay_schedule(lr, decay_steps=num_steps)
  elif opt_config.schedule == "warmup_cosine":
    schedule = optax.warmup_cosine_decay_schedule(
      0.0, lr, warmup_steps=opt_config.warmup_steps, decay_steps=num_steps
    )
  elif opt_config.schedule == "constant_then_linear":
    # Constant, then a linear fall to zero over the last decay_steps: a run that ends
    # later keeps the same rates until its decay starts, so it can continue a constant one.
    schedule = optax.linear_schedule(
      lr, 0.0, opt_config.decay_steps, transition_begin=num_steps - opt_config.decay_steps
    )
  elif opt_config.schedule == "exponential":
    schedule = optax.exponential_decay(lr, transition_steps=1, decay_rate=opt_config.decay_per_step)
  else:
    raise ValueError(f"Unknown schedule {opt_config.schedule!r}; valid: {SCHEDULES}.")
  if opt_config.name == "rmsprop":
    base = optax.rmsprop(schedule, decay=opt_config.rmsprop_decay, eps=opt_config.eps)
  elif opt_config.name == "adam":
    base = optax.adam(schedule, b1=opt_config.adam_b1, b2=opt_config.adam_b2, eps=opt_config.eps)
  else:
    raise ValueError(f"Unknown optimizer {opt_config.name!r}; valid: {OPTIMIZERS}.")
  if opt_config.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), base)
  return base


def make(config) -> optax.GradientTransformation:
  """The optimizer of `config`; for a multi-scale model trained "separate"ly, one
  independent copy for the small network and one for the rest (see defaults.py)."""
  tx = base_optimizer(config.optimizer, config.training.num_steps)
  if config.model.multiscale.factor == 1 or config.training.multiscale_objective == "joint":
    return tx

  def labels(params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: "small" if path[0].key == "small" else "large", params
    )

  # multi_transform keeps a separate state for each label's parameters.
  return optax.multi_transform({"small": tx, "large": tx}, labels)
