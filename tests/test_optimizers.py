"""optimizers.py: every optimizer and schedule trains; unknown names are refused."""

import numpy as np
import pytest

from pixelrnn import defaults
from pixelrnn.training import optimizers
from pixelrnn.training import trainer as trainer_lib


@pytest.mark.parametrize("name", defaults.OPTIMIZERS)
@pytest.mark.parametrize("schedule", defaults.SCHEDULES)
def test_every_optimizer_and_schedule_takes_a_finite_step(name, schedule):
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 4, 1, 8
  config.training.batch_size = 8
  config.optimizer.name, config.optimizer.schedule, config.optimizer.warmup_steps = (
    name,
    schedule,
    2,
  )
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


def test_the_exponential_schedule_multiplies_the_rate_by_its_decay_every_step():
  config = defaults.base_config()
  config.optimizer.update(name="adam", schedule="exponential", decay_per_step=0.9, eps=1e-12)
  config.optimizer.grad_clip_norm = 0.0
  tx = optimizers.make(config)
  params = {"w": np.zeros(3, np.float32)}
  state = tx.init(params)
  steps = []
  for _ in range(4):
    # A constant gradient: Adam's normalised step is the rate itself.
    updates, state = tx.update({"w": np.full(3, 0.5, np.float32)}, state, params)
    steps.append(float(-updates["w"][0]))
  np.testing.assert_allclose(steps, [1e-3 * 0.9**t for t in range(4)], rtol=1e-4)
