"""A diverging run stops before saving anything non-finite; skipping is opt-in and bounded."""

import dataclasses
import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT

from pixelrnn import cli, defaults
from pixelrnn.data import batching
from pixelrnn.data import loading as data_lib
from pixelrnn.training import finite_guard, train
from pixelrnn.training import trainer as trainer_lib
from pixelrnn.workdir import checkpoints


def tiny_config(num_steps=8, skip=0):
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 4, 1, 8
  config.data.eval_split = "validation"
  training = config.training
  training.batch_size, training.num_steps, training.log_every_steps = 8, num_steps, 1
  training.eval_every_steps, training.eval_batch_size = 1000, 1000
  training.checkpoint_every_steps, training.skip_nonfinite_updates = 2, skip
  config.optimizer.name = "adam"
  return config


def poison_steps(monkeypatch, first_bad: int, last_bad: int):
  """The training images of steps first_bad..last_bad (0-based) become a level (255) a
  binary model cannot score: their log-probability, hence the loss, is NaN."""
  real_load = trainer_lib.load_data

  def load(config):
    train_set, test_set = real_load(config)
    images = train_set.images.copy()
    steps = batching.train_batch_indices(images.shape[0], config.training.batch_size, config.seed)
    for step, indices in zip(range(last_bad + 1), steps):
      if step >= first_bad:
        images[indices] = 255
    return dataclasses.replace(train_set, images=images), test_set

  monkeypatch.setattr(train, "load_data", load)
  # The loader's sample check would refuse the poisoned images before training starts.
  monkeypatch.setattr(data_lib, "check_images", lambda *args: None)


def strict_rows(workdir):
  def refuse(constant):
    raise ValueError(f"non-JSON constant {constant}")

  with open(f"{workdir}/metrics.jsonl") as f:
    return [json.loads(line, parse_constant=refuse) for line in f]


def test_the_first_nonfinite_step_stops_the_run_before_anything_is_saved(tmp_path, monkeypatch):
  poison_steps(monkeypatch, 4, 4)
  with pytest.raises(
    finite_guard.NonFiniteError,
    match=r"Step 5: the loss or the gradients are not finite.*last good checkpoint is step 4",
  ):
    train.train_and_evaluate(tiny_config(), str(tmp_path), progress=False)
  assert checkpoints.manager(str(tmp_path), tiny_config()).all_steps() == [2, 4]
  rows = strict_rows(tmp_path)
  assert rows[-1]["step"] == 5 and rows[-1]["loss"] is None and rows[-1]["finite"] == 0.0


def test_skipping_rides_through_one_bad_batch_leaving_the_parameters_unchanged(
  tmp_path, monkeypatch
):
  poison_steps(monkeypatch, 4, 4)
  metrics = train.train_and_evaluate(tiny_config(skip=1), str(tmp_path), progress=False)
  assert math.isfinite(metrics["nll_nats"])
  rows = {r["step"]: r for r in strict_rows(tmp_path) if r["split"] == "train"}
  assert rows[5]["finite"] == 0.0 and rows[5]["loss"] is None
  assert all(rows[s]["finite"] == 1.0 for s in (1, 2, 3, 4, 6, 7, 8))
  # Step 5 only advanced the step counter, so step 6 trained from the state of step 4.
  trainer = trainer_lib.Trainer(tiny_config(skip=1), (28, 28, 1), 2, trainer_lib.make_mesh())
  manager = checkpoints.manager(str(tmp_path), tiny_config())
  four = checkpoints.restore(manager, trainer.abstract_state(), 4)
  batch6 = next(batching.train_batches(data_lib.load_binarized_mnist("train").images, 8, 0, 5))
  expected, _ = trainer.train_step(
    trainer.model, four.replace(step=four.step + 1), trainer.shard_batch(batch6)
  )
  jax.tree.map(
    np.testing.assert_array_equal,
    jax.device_get(checkpoints.restore(manager, trainer.abstract_state(), 6)),
    jax.device_get(expected),
  )


def test_more_bad_steps_in_a_row_than_allowed_stop_the_run(tmp_path, monkeypatch):
  poison_steps(monkeypatch, 2, 7)
  with pytest.raises(finite_guard.NonFiniteError, match=r"Step 5: .* after 2 skipped in a row"):
    train.train_and_evaluate(tiny_config(skip=2), str(tmp_path), progress=False)


def test_a_diverging_launch_exits_nonzero_naming_the_step_and_keeps_a_finite_checkpoint(tmp_path):
  workdir = tmp_path / "diverged"
  done = subprocess.run(
    [
      sys.executable,
      "launch.py",
      "--config=configs/quickstart.py",
      f"--workdir={workdir}",
      "--config.model.num_layers=1",
      "--config.optimizer.learning_rate=1e30",
      "--config.optimizer.schedule=constant",
      "--config.optimizer.grad_clip_norm=0",
      "--config.training.checkpoint_every_steps=1",
      "--config.training.num_steps=50",
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 2, done.stderr[-2000:]
  error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
  assert len(error) == 1 and "Traceback" not in done.stderr
  step = int(error[0].split("Step ")[1].split(":")[0])
  assert f"the last good checkpoint is step {step - 1}" in error[0]
  config = cli.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  config.model.num_layers, config.optimizer.grad_clip_norm = 1, 0.0
  manager = checkpoints.manager(str(workdir), config)
  assert manager.latest_step() == step - 1
  trainer = trainer_lib.Trainer(config, (28, 28, 1), 2, trainer_lib.make_mesh())
  state = checkpoints.restore(manager, trainer.abstract_state())
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state)))
  strict_rows(workdir)  # Parses as strict JSON.
