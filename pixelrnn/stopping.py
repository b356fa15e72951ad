"""Stopping a training run cleanly at a step boundary: on SIGTERM, a deadline or a step limit.

`train.train_and_evaluate(..., should_stop=requests)` asks `requests(step)` after every
step; when it names a reason, training saves a checkpoint at that step and raises
`TrainingStopped`, and rerunning the same command resumes from it, bit for bit.
"""

from __future__ import annotations

import signal
import threading
import time


class TrainingStopped(Exception):
  """Training stopped before `config.training.num_steps`, after saving a checkpoint."""

  def __init__(self, step: int, reason: str):
    super().__init__(f"Stopped ({reason}): saved a checkpoint at step {step}; rerun to resume.")
    self.step = step
    self.reason = reason


class StopRequests:
  """Reasons to stop at the next step boundary, as a context manager.

  Inside the `with` block SIGTERM (a cluster's preemption, `kill`) is recorded instead of
  killing the process; the handler it replaced is restored on exit. `deadline_s` (a
  `time.monotonic()` value) and `max_steps` (steps this run may take, counted from the
  first call) stop a run in pieces. Calling the object with the current step returns
  the reason to stop, or None.
  """

  def __init__(self, *, deadline_s: float | None = None, max_steps: int | None = None):
    self.deadline_s = deadline_s
    self.max_steps = max_steps
    self._first_step = None
    self._signal = None
    self._previous_handler = None

  def _on_signal(self, signum, frame):
    del frame
    self._signal = signal.Signals(signum).name

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():
      self._previous_handler = signal.signal(signal.SIGTERM, self._on_signal)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous_handler is not None:
      signal.signal(signal.SIGTERM, self._previous_handler)
      self._previous_handler = None

  @property
  def signal_name(self) -> str | None:
    """"SIGTERM" once it has been received, else None."""
    return self._signal

  def __call__(self, step: int) -> str | None:
    if self._first_step is None:
      self._first_step = step - 1  # Called after the run's first step.
    if self._signal is not None:
      return self._signal
    if self.deadline_s is not None and time.monotonic() >= self.deadline_s:
      return "time budget spent"
    if self.max_steps is not None and step - self._first_step >= self.max_steps:
      return f"step budget of {self.max_steps} spent"
    return None
