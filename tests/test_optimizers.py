"""optimizers.py: every optimizer and schedule trains; unknown names are refused."""

import numpy as np
import pytest

from pixelrnn import defaults
from pixelrnn.training import optimizers
from pixelrnn.training import trainer as trainer_lib


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
@pytest.mark.parametrize("schedule", optimizers.SCHEDULES)
def test_every_optimizer_and_schedule_takes_a_finite_step(name, schedule):
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 4, 1, 8
  config.training.batch_size = 8
  config.optimizer.update(name=name, schedule=schedule, warmup_steps=2, decay_steps=2)
  trainer = trainer_lib.Trainer(config, (6, 6, 1), 2, trainer_lib.make_mesh())
  state = trainer.initial_state()
  images = np.random.default_rng(0).integers(0, 2, (8, 6, 6, 1), dtype=np.uint8)
  for _ in range(3):
    new_state, metrics = trainer.train_step(trainer.model, state, trainer.shard_batch(images))
    assert np.isfinite(float(metrics["loss"]))
    state = new_state
  assert int(state.step) == 3


def test_an_unknown_schedule_or_optimizer_is_named():
  config = defaults.base_config()
  config.optimizer.schedule = "linear"
  with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
    optimizers.make(config)
  config = defaults.base_config()
  config.optimizer.name = "sgd"
  with pytest.raises(ValueError, match="Unknown optimizer 'sgd'"):
    optimizers.make(config)


def adam_step_sizes(config, num_updates):
  """The rate of each of `num_updates` Adam steps on a constant gradient, where Adam's
  normalised step is the rate itself."""
  config.optimizer.update(name="adam", eps=1e-12, grad_clip_norm=0.0)
  tx = optimizers.make(config)
  params = {"w": np.zeros(3, np.float32)}
  state = tx.init(params)
  steps = []
  for _ in range(num_updates):
    updates, state = tx.update({"w": np.full(3, 0.5, np.float32)}, state, params)
    steps.append(float(-updates["w"][0]))
  return steps


def test_the_exponential_schedule_multiplies_the_rate_by_its_decay_every_step():
  config = defaults.base_config()
  config.optimizer.update(schedule="exponential", decay_per_step=0.9)
  np.testing.assert_allclose(
    adam_step_sizes(config, 4), [1e-3 * 0.9**t for t in range(4)], rtol=1e-4
  )


def test_constant_then_linear_keeps_the_rate_then_falls_to_zero_over_the_last_decay_steps():
  config = defaults.base_config()
  config.training.num_steps = 6
  config.optimizer.update(schedule="constant_then_linear", decay_steps=4)
  np.testing.assert_allclose(
    adam_step_sizes(config, 7), [1e-3, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0], rtol=1e-4, atol=1e-9
  )


def test_a_constant_then_linear_run_continues_a_constant_one_until_its_decay_starts():
  constant, decayed = defaults.base_config(), defaults.base_config()
  decayed.training.num_steps = 10
  decayed.optimizer.update(schedule="constant_then_linear", decay_steps=5)
  np.testing.assert_array_equal(adam_step_sizes(constant, 5), adam_step_sizes(decayed, 5))


@pytest.mark.parametrize("decay_steps", [0, 7])
def test_constant_then_linear_needs_decay_steps_within_the_run(decay_steps):
  config = defaults.base_config()
  config.training.num_steps = 6
  config.optimizer.update(schedule="constant_then_linear", decay_steps=decay_steps)
  with pytest.raises(defaults.ConfigError, match=f"optimizer.decay_steps={decay_steps} must be in"):
    defaults.validate(config)
