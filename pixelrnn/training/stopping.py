"""Stopping a training run cleanly at a step boundary: on a signal, a deadline or a step limit.

`train.train_and_evaluate(..., should_stop=requests)` asks `requests(step)` after every
step; when it names a reason, training saves a checkpoint at that step and raises
`TrainingStopped`, and rerunning the same command resumes from it, bit for bit.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Callable

# What a first Ctrl-C prints at once: the stop itself waits for the step in flight.
CTRL_C_NOTICE = (
  "Ctrl-C: stopping after the current step and saving a checkpoint "
  "(press Ctrl-C again to quit at once without saving)."
)


class TrainingStopped(Exception):
  """Training stopped before `config.training.num_steps`, after saving a checkpoint."""

  def __init__(self, step: int, reason: str):
    what = "Interrupted (Ctrl-C)" if reason == "SIGINT" else f"Stopped ({reason})"
    super().__init__(f"{what}: saved a checkpoint at step {step}; rerun to resume.")
    self.step = step
    self.reason = reason


class QuitNow(KeyboardInterrupt):
  """A second Ctrl-C: leave at once, saving nothing."""


class StopRequests:
  """Reasons to stop at the next step boundary, as a context manager.

  Inside the `with` block SIGTERM (a cluster's preemption, `kill`) and a first SIGINT
  (Ctrl-C) are recorded instead of interrupting the process wherever it is (for
  example between a train step consuming the state's buffers and returning new ones);
  a second SIGINT raises KeyboardInterrupt at once. The handlers they replaced are
  restored on exit. `deadline_s` (a `time.monotonic()` value) and `max_steps` (steps
  this run may take, counted from the first call) stop a run in pieces. Calling the
  object with the current step returns the reason to stop, or None.
  """

  def __init__(
    self,
    *,
    deadline_s: float | None = None,
    max_steps: int | None = None,
    notify: Callable[[str], None] | None = None,
  ):
    self.deadline_s = deadline_s
    self.max_steps = max_steps
    self._notify = notify or (lambda text: print(text, file=sys.stderr, flush=True))
    self._first_step = None
    self._signal = None
    self._previous_handlers = {}

  def _on_signal(self, signum, frame):
    del frame
    if signum == signal.SIGINT:
      if self._signal == "SIGINT":
        raise QuitNow
      self._notify(CTRL_C_NOTICE)
    if self._signal is None:
      self._signal = signal.Signals(signum).name

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if signum == signal.SIGINT and previous is signal.SIG_IGN:
          continue  # A background job of a non-interactive shell: leave SIGINT ignored.
        self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous_handlers.items():
      signal.signal(signum, handler)
    self._previous_handlers = {}

  @property
  def signal_name(self) -> str | None:
    """ "SIGTERM" or "SIGINT", the first of them received, else None."""
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
