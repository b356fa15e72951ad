"""The training loop, as named steps: dispatch up to k steps, log, check the steps were
finite, evaluate, save, stop.

`TrainingRun` holds what the loop moves (the state, the step, the dispatch whose
finiteness is not checked yet) and what it writes to (the checkpoint manager, the metric
writer, the progress display); `run_steps` is the loop itself. `train.train_and_evaluate`
opens a run, runs it, and handles interrupts.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import jax
import numpy as np

from pixelrnn.data import loading as data_lib
from pixelrnn.training import distributed, finite_guard, steps, stopping
from pixelrnn.training import progress as progress_lib
from pixelrnn.training.trainer import Trainer
from pixelrnn.workdir import checkpoints
from pixelrnn.workdir.metric_writers import MetricWriter


@dataclasses.dataclass
class Boundaries:
  """What the steps of one dispatch reach: the steps to log, and whether its last step
  is evaluated or saved."""

  logged: list[int]
  evaluate: bool
  save: bool

  def any(self) -> bool:
    return bool(self.logged) or self.evaluate or self.save


@dataclasses.dataclass
class TrainingRun:
  """One training run between its restore and its last step (see the module docstring)."""

  trainer: Trainer
  manager: checkpoints.ocp.CheckpointManager
  writer: MetricWriter
  display: progress_lib.Display
  state: steps.TrainState
  device_data: dict
  indices: object  # The iterator of training batch indices, from the restored step on.
  test_data: data_lib.Dataset
  test_labels: np.ndarray | None
  on_checkpoint: Callable[[int], None] | None = None
  eval_metrics: dict | None = None
  # The newest dispatch whose `finite` flags are not checked yet, as (its first step,
  # stacked metrics, step count). Checking waits for it, so at most two dispatches are
  # in flight: unbounded asynchronous dispatch lets XLA's CPU all-reduce deadlock when
  # several host-platform devices share few cores.
  unchecked: tuple | None = None
  saving: bool = False
  postfix: dict = dataclasses.field(default_factory=dict)  # Shown beside the progress.

  def __post_init__(self):
    self.step = int(self.state.step)
    self.training = self.trainer.config.training
    self.say = distributed.primary_only(self.display.write)
    self.guard = finite_guard.FiniteGuard(
      self.training.skip_nonfinite_updates,
      self.manager.latest_step,
      warn=lambda text: self.say(f"Warning: {text}", file=sys.stderr),
    )

  def is_boundary(self, step: int, every: int) -> bool:
    return step % every == 0 or step == self.training.num_steps

  def dispatch_size(self) -> int:
    """Steps in the next dispatch: up to steps_per_dispatch, ending at the next
    evaluation or checkpoint, so those see its last step."""
    count, training = 1, self.training
    while (
      count < training.steps_per_dispatch
      and self.step + count < training.num_steps
      and not self.is_boundary(self.step + count, training.eval_every_steps)
      and not self.is_boundary(self.step + count, training.checkpoint_every_steps)
    ):
      count += 1
    return count

  def dispatch(self, count: int) -> tuple[int, dict]:
    """Runs `count` steps in one call; returns the first step's number and the steps'
    stacked metrics. The previous dispatch's steps are checked meanwhile."""
    batch_indices = np.zeros((self.training.steps_per_dispatch, self.training.batch_size), np.int32)
    for i in range(count):
      batch_indices[i] = next(self.indices)
    self.state, stacked = self.trainer.train_steps(
      self.trainer.model, self.state, self.device_data, batch_indices, np.int32(count)
    )
    first, self.step = self.step + 1, self.step + count
    self.check_finished_steps()
    self.unchecked = (first, stacked, count)
    return first, stacked

  def boundaries(self, first: int) -> Boundaries:
    logged = [
      s
      for s in range(first, self.step + 1)
      if s % self.training.log_every_steps == 0 or s in (1, self.training.num_steps)
    ]
    return Boundaries(
      logged,
      self.is_boundary(self.step, self.training.eval_every_steps),
      self.is_boundary(self.step, self.training.checkpoint_every_steps),
    )

  def stop_reason(self, should_stop, reached: Boundaries) -> str | None:
    """Why to stop after this dispatch (None: go on). Every process stops at the same
    step: they agree where they wait for the device anyway (logs, evaluations,
    checkpoints); elsewhere a request waits for the next such step."""
    if should_stop is None or self.step == self.training.num_steps:
      reason = None
    else:
      reason = should_stop(self.step)
    if jax.process_count() > 1:
      reason = distributed.any_process(reason) if reached.any() else None
    return reason

  def check_finished_steps(self) -> None:
    """Raises (via the finite guard) if a step of the unchecked dispatch was not finite."""
    if self.unchecked is not None:
      first, stacked, count = self.unchecked
      self.unchecked = None
      finite = jax.device_get(stacked["finite"])
      for i in range(count):
        self.guard.check(first + i, {"finite": finite[i]})

  def write_train_metrics(self, first: int, stacked: dict, logged: list[int]) -> None:
    if not logged:
      return
    rows = jax.device_get(stacked)
    for s in logged:
      self.writer.write(s, "train", {k: v[s - first] for k, v in rows.items()})
    last = {k: v[logged[-1] - first] for k, v in rows.items()}
    self.postfix.update(loss=f"{last['loss']:.4f}", train_nll=f"{last['nll_nats']:.2f}")

  def evaluate(self) -> None:
    """Evaluates the EMA parameters on the eval split; writes and shows the result."""
    metrics = self.trainer.evaluate(self.state.ema_params, self.test_data.images, self.test_labels)
    self.eval_metrics = metrics
    self.writer.write(self.step, "eval", metrics)
    split = self.trainer.config.data.eval_split
    parts = "".join(
      f", {k} {metrics[k]:.3f}" for k in ("small_nll_nats", "large_nll_nats") if k in metrics
    )
    self.say(
      f"step {self.step}: eval {split} NLL {metrics['nll_nats']:.3f} nats/image, "
      f"{metrics['bits_per_dim']:.4f} bits/dim{parts}"
    )
    self.postfix[f"{split}_nll"] = f"{metrics['nll_nats']:.3f} (step {self.step:,})"

  def save(self, force: bool = False) -> None:
    self.saving = True
    checkpoints.save(self.manager, self.step, self.state, force=force)
    self.saving = False
    if self.on_checkpoint is not None:
      self.on_checkpoint(self.step)

  def save_unless_saved(self) -> None:
    """Saves the current step unless it is the latest checkpoint (when stopping between
    the regular checkpoints)."""
    if self.manager.latest_step() != self.step:
      self.save(force=True)

  def save_on_interrupt(self) -> None:
    """After a KeyboardInterrupt, raised wherever the process was: saves the state if it
    is intact. A save cut short is not repeated, and a state whose buffers a train step
    had already taken cannot be saved."""
    intact = not self.saving and not any(
      isinstance(leaf, jax.Array) and leaf.is_deleted() for leaf in jax.tree.leaves(self.state)
    )
    if intact:
      self.step = int(jax.device_get(self.state.step))  # The interrupt may precede the count.
      self.check_finished_steps()
      self.save_unless_saved()
      self.say(f"Interrupted: saved a checkpoint at step {self.step}; rerun to resume.")
    else:
      self.say(
        f"Interrupted: the last complete checkpoint is step {self.manager.latest_step()}; "
        "rerun to resume from it."
      )

  def final_metrics(self) -> dict:
    """The last evaluation, or for a run that was already trained, one of what was restored."""
    if self.eval_metrics is None:
      self.eval_metrics = self.trainer.evaluate(
        self.state.ema_params, self.test_data.images, self.test_labels
      )
    return self.eval_metrics


def run_steps(run: TrainingRun, should_stop: Callable[[int], str | None] | None) -> None:
  """Trains `run` to its last step; raises stopping.TrainingStopped (after saving) when
  `should_stop` gives a reason."""
  while run.step < run.training.num_steps:
    count = run.dispatch_size()
    first, stacked = run.dispatch(count)
    reached = run.boundaries(first)
    reason = run.stop_reason(should_stop, reached)
    run.write_train_metrics(first, stacked, reached.logged)
    if reached.any() or reason is not None:
      run.check_finished_steps()  # Nothing is evaluated or saved from a non-finite step.
    if reached.evaluate:
      run.evaluate()
    if reached.logged or reached.evaluate:
      run.display.set_postfix(run.postfix)
    run.display.update(count)  # After the postfix, so a progress line shows this step's values.
    if reached.save:
      run.save()
    if reason is not None:
      run.save_unless_saved()
      raise stopping.TrainingStopped(run.step, reason)
  run.check_finished_steps()
