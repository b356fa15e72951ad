"""The training run: the `Trainer` (model, optimizer, mesh and compiled steps), the
training loop with evaluation, checkpoints, metrics and stop requests, and the entry
points that restore a workdir's latest checkpoint.

The steps themselves are pure functions (`steps.py`). Parameters are replicated and
the batch is sharded across all devices of a 1-D `data` mesh: every process's devices
when several processes train together (see `distributed.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pixelrnn import (
  checkpoints,
  datasets,
  defaults,
  distributed,
  finite_guard,
  likelihood,
  models,
  multiscale,
  optimizers,
  precision,
  steps,
  stopping,
  workdir_lock,
)
from pixelrnn import data as data_lib
from pixelrnn import progress as progress_lib
from pixelrnn.metric_writers import MetricWriter


def make_mesh(devices=None) -> Mesh:
  """A 1-D `data` mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.array(devices), ("data",))


def check_divisible(name: str, batch_size: int, mesh: Mesh) -> None:
  if batch_size % mesh.size:
    processes = len({d.process_index for d in mesh.devices.flat})
    over = f" over {processes} processes" if processes > 1 else ""
    raise defaults.ConfigError(
      f"{name}={batch_size} must be divisible by the number of devices ({mesh.size}{over}) "
      f"to shard the batch; it is the global batch, split evenly over all devices."
    )


@dataclasses.dataclass
class Trainer:
  """Holds the model, optimizer, mesh and compiled steps for one configuration."""

  config: ml_collections.ConfigDict
  image_shape: tuple[int, int, int]
  num_levels: int
  mesh: Mesh

  def __post_init__(self):
    defaults.validate(self.config)
    training = self.config.training
    check_divisible("training.batch_size", training.batch_size, self.mesh)
    check_divisible("training.eval_batch_size", training.eval_batch_size, self.mesh)
    self.model, params = models.build(
      self.config.model,
      image_shape=self.image_shape,
      num_levels=self.num_levels,
      seed=self.config.seed,
    )
    self.tx = optimizers.make(self.config)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    self.model = self.replicate(self.model)
    self._initial_params = params
    policy = precision.policy(training.precision)
    step_fn = precision.traced_with(
      policy.matmul_precision,
      functools.partial(
        steps.train_step,
        tx=self.tx,
        ema_decay=training.ema_decay,
        weights=steps.loss_weights(self.config, self.image_shape),
        compute_dtype=policy.compute_dtype,
        skip_nonfinite=training.skip_nonfinite_updates > 0,
      ),
    )
    # Up to `steps_per_dispatch` steps on batches gathered from `device_data`.
    self.train_steps = jax.jit(
      functools.partial(steps.train_steps, step_fn=step_fn, batch_sharding=self.batch_sharding),
      in_shardings=(
        self.replicated,
        self.replicated,
        self.replicated,
        self.replicated,
        self.replicated,
      ),
      out_shardings=(self.replicated, self.replicated),
      donate_argnums=(1,),
    )
    # Whatever training.precision says: reported likelihoods are full float32.
    self.eval_step = jax.jit(
      precision.full_precision(steps.eval_step),
      in_shardings=(self.replicated, self.replicated, self.batch_sharding, self.batch_sharding),
      out_shardings=self.replicated,
    )

  def initial_state(self) -> steps.TrainState:
    """The state before step 1, replicated; fresh buffers on every call (the train step
    donates the state's buffers)."""
    return self.replicate(self._unplaced_initial_state())

  def _unplaced_initial_state(self) -> steps.TrainState:
    params = self._initial_params
    return steps.TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      ema_params=params,
      opt_state=self.tx.init(params),
    )

  def replicate(self, tree):
    """`tree` with every array leaf copied to all devices of the mesh."""
    return jax.tree.map(lambda x: distributed.global_array(np.asarray(x), self.replicated), tree)

  def abstract_state(self) -> steps.TrainState:
    return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated),
      jax.eval_shape(self._unplaced_initial_state),
    )

  def shard_batch(self, batch):
    """A batch (arrays (B, ...), or a dict of them) split over the devices; each process
    places only its part."""
    return jax.tree.map(lambda rows: distributed.global_array(rows, self.batch_sharding), batch)

  def labels(self, dataset: data_lib.Dataset) -> np.ndarray | None:
    """The dataset's labels (N,) for a class-conditional model, checked; else None."""
    num_classes = self.config.model.num_classes
    if not num_classes:
      return None
    if dataset.labels is None:
      raise data_lib.DataError(f"model.num_classes={num_classes}, but these images have no labels.")
    data_lib.check_labels(dataset.labels, dataset.images.shape[0], num_classes)
    return dataset.labels

  def _batch(self, images, labels) -> dict:
    batch = {"images": images}
    if self.config.model.num_classes:
      if labels is None:
        raise data_lib.DataError(
          f"model.num_classes={self.config.model.num_classes}: the images need their labels."
        )
      batch["labels"] = np.asarray(labels, np.int32)
    return batch

  def train_step(
    self,
    model: models.FunctionalModel,
    state: steps.TrainState,
    images: jax.Array,
    labels: jax.Array | None = None,
  ) -> tuple[steps.TrainState, dict[str, jax.Array]]:
    """One step on a batch (B, H, W, C) (and its labels (B,) for a class-conditional
    model), the training loop's computation bit for bit: `train_steps` with k = 1.
    Returns the new state and the step's scalar metrics."""
    indices = np.arange(images.shape[0], dtype=np.int32)[None]
    state, stacked = self.train_steps(
      model, state, self.device_data(images, labels), indices, np.int32(1)
    )
    return state, jax.tree.map(lambda rows: rows[0], stacked)

  def device_data(self, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """The training set, "images" (N, H, W, C) and for a class-conditional model
    "labels" (N,), copied once to every device for `train_steps`."""
    return jax.tree.map(
      lambda rows: distributed.global_array(rows, self.replicated), self._batch(images, labels)
    )

  def evaluate(
    self, params: nnx.State, images: np.ndarray, labels: np.ndarray | None = None
  ) -> dict[str, float]:
    """NLL over every image of `images` (N, H, W, C): nats per image and bits/dim.

    For a multi-scale model also each part: "small_nll_nats" (the subsample) and
    "large_nll_nats" (the other sub-pixels), which sum to "nll_nats", and their
    bits per sub-pixel they score. A class-conditional model needs the images' labels
    (N,), and also reports each class's mean NLL, "class_<k>_nll_nats".
    """
    data_lib.check_images(images, self.image_shape, self.num_levels)
    batch_size = self.config.training.eval_batch_size
    label_batches = (
      data_lib.eval_batches(labels, batch_size)
      if labels is not None
      else itertools.repeat((None, None))
    )
    totals = {}
    for (batch, valid), (batch_labels, _) in zip(
      data_lib.eval_batches(images, batch_size), label_batches
    ):
      sums = self.eval_step(
        self.model,
        params,
        self.shard_batch(self._batch(batch, batch_labels)),
        self.shard_batch(valid),
      )
      for k, v in jax.device_get(sums).items():
        totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    class_nll, class_count = totals.pop("class_nll", None), totals.pop("class_count", None)
    dims = multiscale.part_dims(self.image_shape, self.config.model.multiscale.factor)
    metrics = {}
    for k in sorted(totals, key=lambda k: (k != "nll", k)):  # The whole image's NLL first.
      nats = float(totals[k]) / images.shape[0]
      prefix = "" if k == "nll" else k.removesuffix("_nll") + "_"
      metrics[f"{k}_nats"] = nats
      metrics[f"{prefix}bits_per_dim"] = likelihood.bits_per_dim(nats, dims[k])
    if class_nll is not None:
      for k in range(class_nll.shape[0]):
        if class_count[k]:
          metrics[f"class_{k}_nll_nats"] = float(class_nll[k] / class_count[k])
    return metrics


def load_data(config) -> tuple[data_lib.Dataset, data_lib.Dataset]:
  train = data_lib.load_dataset(config.data, config.data.train_split)
  test = data_lib.load_dataset(config.data, config.data.eval_split)
  return train, test


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
  lock = workdir_lock.WorkdirLock(workdir, warn=_warn)
  with contextlib.ExitStack() as stack:
    distributed.on_primary(lambda: stack.enter_context(lock), "lock the workdir")
    return _train_and_evaluate(
      config,
      workdir,
      devices=devices,
      progress=progress,
      progress_lines_every=progress_lines_every,
      should_stop=should_stop,
      on_checkpoint=on_checkpoint,
    )


def _progress_display(total: int, initial: int, progress: bool, lines_every: int | None):
  shown = progress and distributed.is_primary()
  if shown and lines_every is not None:
    return progress_lib.ProgressLines(total, initial, lines_every)
  return tqdm.tqdm(total=total, initial=initial, unit="step", disable=not shown, dynamic_ncols=True)


def _train_and_evaluate(
  config, workdir, *, devices, progress, progress_lines_every, should_stop, on_checkpoint
) -> dict:
  checkpoints.record_or_check_config(workdir, config, write=distributed.is_primary())
  train_data, test_data = load_data(config)
  trainer = Trainer(config, train_data.image_shape, train_data.num_levels, make_mesh(devices))
  data_lib.check_images(train_data.images[:1000], trainer.image_shape, trainer.num_levels)
  training = config.training
  manager = checkpoints.manager(workdir, config)
  writer = MetricWriter(workdir, active=distributed.is_primary())
  if manager.latest_step() is not None:
    state = checkpoints.restore_newest_intact(
      manager, trainer.abstract_state(), warn=_warn, set_aside=distributed.is_primary()
    )
  else:
    state = trainer.initial_state()
  start_step = int(state.step)
  writer.truncate_after(start_step)

  indices = data_lib.train_batch_indices(
    train_data.images.shape[0], training.batch_size, config.seed, start_step
  )
  device_data = trainer.device_data(train_data.images, trainer.labels(train_data))
  test_labels = trainer.labels(test_data)  # Checked once, for every evaluation.
  per_dispatch = training.steps_per_dispatch
  bar = _progress_display(training.num_steps, start_step, progress, progress_lines_every)
  say = distributed.primary_only(bar.write)
  if 0 < start_step < training.num_steps:
    say(f"Resuming from step {start_step} (checkpoint in {manager.directory}).")
  guard = finite_guard.FiniteGuard(
    training.skip_nonfinite_updates,
    manager.latest_step,
    warn=lambda text: say(f"Warning: {text}", file=sys.stderr),
  )
  eval_metrics = None
  postfix = {}  # The latest train and eval NLL, shown beside the progress.
  step = start_step
  # The newest dispatch whose `finite` flags are not checked yet, as (its first step,
  # stacked metrics, step count). Checking waits for it, so at most two dispatches are
  # in flight: unbounded asynchronous dispatch lets XLA's CPU all-reduce deadlock when
  # several host-platform devices share few cores.
  unchecked = None

  def check_finished_steps():
    nonlocal unchecked
    if unchecked is not None:
      first, stacked, count = unchecked
      unchecked = None
      finite = jax.device_get(stacked["finite"])
      for i in range(count):
        guard.check(first + i, {"finite": finite[i]})

  saving = False

  def save(force: bool = False):
    nonlocal saving
    saving = True
    checkpoints.save(manager, step, state, force=force)
    saving = False
    if on_checkpoint is not None:
      on_checkpoint(step)

  def save_unless_saved():  # When stopping between the regular checkpoints.
    if manager.latest_step() != step:
      save(force=True)

  def is_boundary(s: int, every: int) -> bool:
    return s % every == 0 or s == training.num_steps

  try:
    while step < training.num_steps:
      # A dispatch ends at the next evaluation or checkpoint, so those see its last step.
      count = 1
      while (
        count < per_dispatch
        and step + count < training.num_steps
        and not is_boundary(step + count, training.eval_every_steps)
        and not is_boundary(step + count, training.checkpoint_every_steps)
      ):
        count += 1
      batch_indices = np.zeros((per_dispatch, training.batch_size), np.int32)
      for i in range(count):
        batch_indices[i] = next(indices)
      state, stacked = trainer.train_steps(
        trainer.model, state, device_data, batch_indices, np.int32(count)
      )
      first, step = step + 1, step + count
      check_finished_steps()  # The previous dispatch.
      unchecked = (first, stacked, count)
      logged = [
        s
        for s in range(first, step + 1)
        if s % training.log_every_steps == 0 or s in (1, training.num_steps)
      ]
      evaluate = is_boundary(step, training.eval_every_steps)
      save_now = is_boundary(step, training.checkpoint_every_steps)
      reason = None if should_stop is None or step == training.num_steps else should_stop(step)
      if jax.process_count() > 1:
        # Every process must stop at the same step. They agree where they wait for the
        # device anyway (logs, evaluations, checkpoints); elsewhere a request waits.
        synced = logged or evaluate or save_now
        reason = distributed.any_process(reason) if synced else None
      if logged:
        rows = jax.device_get(stacked)
        for s in logged:
          writer.write(s, "train", {k: v[s - first] for k, v in rows.items()})
      if logged or evaluate or save_now or reason is not None:
        check_finished_steps()  # Nothing is evaluated or saved from a non-finite step.
      if logged:
        last = {k: v[logged[-1] - first] for k, v in rows.items()}
        postfix.update(loss=f"{last['loss']:.4f}", train_nll=f"{last['nll_nats']:.2f}")
        bar.set_postfix(postfix)
      if evaluate:
        eval_metrics = trainer.evaluate(state.ema_params, test_data.images, test_labels)
        writer.write(step, "eval", eval_metrics)
        parts = "".join(
          f", {k} {eval_metrics[k]:.3f}"
          for k in ("small_nll_nats", "large_nll_nats")
          if k in eval_metrics
        )
        say(
          f"step {step}: eval {config.data.eval_split} "
          f"NLL {eval_metrics['nll_nats']:.3f} nats/image, "
          f"{eval_metrics['bits_per_dim']:.4f} bits/dim{parts}"
        )
        postfix[f"{config.data.eval_split}_nll"] = f"{eval_metrics['nll_nats']:.3f} (step {step:,})"
        bar.set_postfix(postfix)
      bar.update(count)  # After the postfix, so a progress line shows this step's values.
      if save_now:
        save()
      if reason is not None:
        save_unless_saved()
        raise stopping.TrainingStopped(step, reason)
    check_finished_steps()
  except stopping.QuitNow:
    raise
  except KeyboardInterrupt:
    # Raised wherever the process was: a save cut short is not repeated, and a state
    # whose buffers a train step had already taken cannot be saved.
    intact = not saving and not any(
      isinstance(leaf, jax.Array) and leaf.is_deleted() for leaf in jax.tree.leaves(state)
    )
    if intact:
      step = int(jax.device_get(state.step))  # The interrupt may precede the count's update.
      check_finished_steps()
      save_unless_saved()
      say(f"Interrupted: saved a checkpoint at step {step}; rerun to resume.")
    else:
      say(
        f"Interrupted: the last complete checkpoint is step {manager.latest_step()}; "
        "rerun to resume from it."
      )
    raise
  finally:
    bar.close()
    writer.close()
  if eval_metrics is None:  # Already trained: evaluate what was restored.
    eval_metrics = trainer.evaluate(state.ema_params, test_data.images, test_labels)
  return eval_metrics


def restore_latest(
  config: ml_collections.ConfigDict, workdir: str, *, devices=None
) -> tuple[Trainer, steps.TrainState]:
  """A Trainer for `config` and workdir's latest checkpoint, checked against the config.

  Needs no dataset: the image shape and levels come from `datasets.IMAGE_SPECS`.
  """
  defaults.validate(config)
  distributed.check_same_config(config.to_json(sort_keys=True))
  checkpoints.check_workdir(workdir)
  checkpoints.require_checkpoints(workdir)
  checkpoints.record_or_check_config(workdir, config)
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = Trainer(config, image_shape, num_levels, make_mesh(devices))
  manager = checkpoints.manager(workdir, config)
  return trainer, checkpoints.restore_newest_intact(manager, trainer.abstract_state(), warn=_warn)


def _warn(text: str) -> None:
  """Prints "Warning: text" on process 0, above a progress bar if one is shown."""
  if distributed.is_primary():
    tqdm.tqdm.write(f"Warning: {text}", file=sys.stderr)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, *, devices=None) -> dict:
  """Evaluates the EMA parameters of workdir's latest checkpoint on the eval split."""
  trainer, state = restore_latest(config, workdir, devices=devices)
  return {**_evaluate_on_split(trainer, state.ema_params), "step": int(state.step)}


def evaluate_params(config: ml_collections.ConfigDict, params: nnx.State, *, devices=None) -> dict:
  """Evaluates `params` (unplaced, e.g. a pretrained model's) on the eval split."""
  defaults.validate(config)
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = Trainer(config, image_shape, num_levels, make_mesh(devices))
  return _evaluate_on_split(trainer, trainer.replicate(params))


def _evaluate_on_split(trainer: Trainer, params: nnx.State) -> dict:
  data = data_lib.load_dataset(trainer.config.data, trainer.config.data.eval_split)
  return trainer.evaluate(params, data.images, trainer.labels(data))


def load_ema_params(config: ml_collections.ConfigDict, workdir: str):
  """The model and EMA parameters of workdir's latest checkpoint, for sampling.

  Returns (FunctionalModel, ema_params, step, (H, W, C), K).
  """
  trainer, state = restore_latest(config, workdir, devices=jax.local_devices()[:1])
  return (trainer.model, state.ema_params, int(state.step), trainer.image_shape, trainer.num_levels)
