"""Training and evaluating a workdir: `train_and_evaluate` (the lock, the restore, the
loop of `loop.py`, interrupts) and the entry points that restore a workdir's newest
intact checkpoint to evaluate or sample it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import jax
import ml_collections
from flax import nnx

from pixelrnn import defaults
from pixelrnn.data import batching, datasets
from pixelrnn.data import loading as data_lib
from pixelrnn.training import distributed, loop, steps, stopping
from pixelrnn.training import progress as progress_lib
from pixelrnn.training.trainer import Trainer, load_data, make_mesh
from pixelrnn.workdir import checkpoints
from pixelrnn.workdir import lock as lock_lib
from pixelrnn.workdir.metric_writers import MetricWriter


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  devices=None,
  progress: bool = True,
  progress_lines_every: int | None = None,
  should_stop: Callable[[int], str | None] | None = None,
  on_checkpoint: Callable[[int], None] | None = None,
) -> dict:
  """Trains until `config.training.num_steps`, resuming from workdir's latest checkpoint.

  Writes checkpoints to workdir/checkpoints, metrics to workdir/metrics.jsonl and
  workdir/tensorboard. Returns the final evaluation metrics (EMA parameters).

  Progress is a tqdm bar, or with `progress_lines_every` = N one plain line per N steps
  (`progress.ProgressLines`, for log files); `progress` False shows neither.
  `on_checkpoint(step)` is called after every checkpoint is written.

  `should_stop(step)` is asked after every step (see `stopping.StopRequests`); when it
  returns a reason, a checkpoint is saved at that step and `stopping.TrainingStopped`
  is raised. A KeyboardInterrupt (Ctrl-C outside `StopRequests`) saves a checkpoint before it
  propagates when the state is intact, except for `stopping.QuitNow`.
  """
  defaults.validate(config)
  distributed.check_same_config(config.to_json(sort_keys=True))
  checkpoints.check_workdir(workdir)
  os.makedirs(workdir, exist_ok=True)
  # Process 0 holds the lock for all processes of the run.
  lock = lock_lib.WorkdirLock(workdir, warn=progress_lib.warn)
  with contextlib.ExitStack() as stack:
    distributed.on_primary(lambda: stack.enter_context(lock), "lock the workdir")
    run = open_run(config, workdir, devices, progress, progress_lines_every, on_checkpoint)
    try:
      loop.run_steps(run, should_stop)
    except stopping.QuitNow:
      raise
    except KeyboardInterrupt:
      run.save_on_interrupt()
      raise
    finally:
      run.display.close()
      run.writer.close()
    return run.final_metrics()


def open_run(
  config, workdir: str, devices, progress: bool, progress_lines_every: int | None, on_checkpoint
) -> loop.TrainingRun:
  """The run of `config` in `workdir`, at its newest intact checkpoint (or step 0), its
  data on the devices and its metrics truncated to the restored step."""
  checkpoints.record_or_check_config(workdir, config, write=distributed.is_primary())
  train_data, test_data = load_data(config)
  trainer = Trainer(config, train_data.image_shape, train_data.num_levels, make_mesh(devices))
  data_lib.check_images(train_data.images[:1000], trainer.image_shape, trainer.num_levels)
  manager = checkpoints.manager(workdir, config)
  if manager.latest_step() is not None:
    state = checkpoints.restore_newest_intact(
      manager, trainer.abstract_state(), warn=progress_lib.warn, set_aside=distributed.is_primary()
    )
  else:
    state = trainer.initial_state()
  start_step, training = int(state.step), config.training
  writer = MetricWriter(workdir, active=distributed.is_primary())
  writer.truncate_after(start_step)
  display = progress_lib.display(training.num_steps, start_step, progress, progress_lines_every)
  if 0 < start_step < training.num_steps and distributed.is_primary():
    display.write(f"Resuming from step {start_step} (checkpoint in {manager.directory}).")
  return loop.TrainingRun(
    trainer=trainer,
    manager=manager,
    writer=writer,
    display=display,
    state=state,
    device_data=trainer.device_data(train_data.images, trainer.labels(train_data)),
    indices=batching.train_batch_indices(
      train_data.images.shape[0], training.batch_size, config.seed, start_step
    ),
    test_data=test_data,
    test_labels=trainer.labels(test_data),  # Checked once, for every evaluation.
    on_checkpoint=on_checkpoint,
  )


def restore_latest(
  config: ml_collections.ConfigDict, workdir: str, *, devices=None, validated: bool = False
) -> tuple[Trainer, steps.TrainState]:
  """A Trainer for `config` and workdir's latest checkpoint, checked against the config
  (validated first unless `validated` says an earlier entry point of the same command
  did, as training does before the samples drawn at its end).

  Needs no dataset: the image shape and levels come from `datasets.IMAGE_SPECS`.
  """
  if not validated:
    defaults.validate(config)
  distributed.check_same_config(config.to_json(sort_keys=True))
  checkpoints.check_workdir(workdir)
  checkpoints.require_checkpoints(workdir)
  checkpoints.record_or_check_config(workdir, config)
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = Trainer(config, image_shape, num_levels, make_mesh(devices))
  manager = checkpoints.manager(workdir, config)
  return trainer, checkpoints.restore_newest_intact(
    manager, trainer.abstract_state(), warn=progress_lib.warn
  )


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, *, devices=None) -> dict:
  """Evaluates the EMA parameters of workdir's latest checkpoint on the eval split."""
  trainer, state = restore_latest(config, workdir, devices=devices)
  return {**_evaluate_on_split(trainer, state.ema_params), "step": int(state.step)}


def evaluate_params(
  config: ml_collections.ConfigDict, params: nnx.State, *, devices=None, validated: bool = False
) -> dict:
  """Evaluates `params` (unplaced, e.g. a pretrained model's) on the eval split; the
  config is validated first unless `validated` (e.g. by `pretrained.load`)."""
  if not validated:
    defaults.validate(config)
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = Trainer(config, image_shape, num_levels, make_mesh(devices))
  return _evaluate_on_split(trainer, trainer.replicate(params))


def _evaluate_on_split(trainer: Trainer, params: nnx.State) -> dict:
  data = data_lib.load_dataset(trainer.config.data, trainer.config.data.eval_split)
  return trainer.evaluate(params, data.images, trainer.labels(data))


def load_ema_params(config: ml_collections.ConfigDict, workdir: str, *, validated: bool = False):
  """The model and EMA parameters of workdir's latest checkpoint, for sampling
  (`validated` as for `restore_latest`).

  Returns (FunctionalModel, ema_params, step, (H, W, C), K).
  """
  trainer, state = restore_latest(
    config, workdir, devices=jax.local_devices()[:1], validated=validated
  )
  return (trainer.model, state.ema_params, int(state.step), trainer.image_shape, trainer.num_levels)
