"""A training run's progress: a tqdm bar, or plain lines for a run whose output goes
to a log file; warnings printed above either, on process 0.

`ProgressLines` stands in for the tqdm bar of the training loop (the same `update`,
`set_postfix`, `write` and `close`) and prints one line per `every` steps instead of
redrawing a bar with carriage returns:

  step 12,000/200,000 (6.0%) | 9.84 steps/s | ETA 5 h 18 min | loss 0.1097 | train nll 86.02
    | validation nll 84.910 (step 10,000)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

import tqdm

from pixelrnn.training import distributed


def format_duration(seconds: float) -> str:
  """`seconds` as "7 min" or "3 h 05 min"."""
  minutes = round(seconds / 60)
  return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


class ProgressLines:
  """One line per `every` steps: step, steps/s over the interval, the ETA of the whole run
  at this piece's mean rate, and the latest train and eval NLL given to `set_postfix`."""

  def __init__(
    self,
    total: int,
    initial: int,
    every: int,
    *,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
  ):
    if every < 1:
      raise ValueError(f"every={every}: expected at least 1 step per line.")
    self.total, self.every, self.step = total, every, initial
    self._out = out
    self._clock = clock
    self._start = self._last = (initial, clock())
    self._postfix: dict[str, str] = {}

  def set_postfix(self, values: dict | None = None, **more) -> None:
    """Names and values shown at the end of each line (`train_nll` as "train nll")."""
    self._postfix.update(
      {k.replace("_", " "): str(v) for k, v in {**(values or {}), **more}.items()}
    )

  def update(self, count: int) -> None:
    before, self.step = self.step, self.step + count
    if self.step // self.every > before // self.every or self.step == self.total:
      self._print_line()

  def _print_line(self) -> None:
    now = self._clock()
    (last_step, last_time), (first_step, first_time) = self._last, self._start
    self._last = (self.step, now)
    rate = (self.step - last_step) / max(now - last_time, 1e-9)
    mean_rate = (self.step - first_step) / max(now - first_time, 1e-9)
    parts = [
      f"step {self.step:,}/{self.total:,} ({100 * self.step / self.total:.1f}%)",
      f"{rate:.2f} steps/s",
      f"ETA {format_duration((self.total - self.step) / max(mean_rate, 1e-9))}",
    ]
    parts += [f"{name} {value}" for name, value in self._postfix.items()]
    self.write(" | ".join(parts))

  def write(self, text: str, file: TextIO | None = None) -> None:
    print(text, file=file or self._out or sys.stdout, flush=True)

  def close(self) -> None:
    pass


Display = ProgressLines | tqdm.tqdm


def display(total: int, initial: int, shown: bool, lines_every: int | None) -> Display:
  """The progress of a run of `total` steps from `initial`, on process 0: a tqdm bar, or
  with `lines_every` = N one plain line per N steps (for log files); with `shown` False,
  or on other processes, a bar that prints nothing."""
  shown = shown and distributed.is_primary()
  if shown and lines_every is not None:
    return ProgressLines(total, initial, lines_every)
  return tqdm.tqdm(total=total, initial=initial, unit="step", disable=not shown, dynamic_ncols=True)


def warn(text: str) -> None:
  """Prints "Warning: text" on process 0, above a progress bar if one is shown."""
  if distributed.is_primary():
    tqdm.tqdm.write(f"Warning: {text}", file=sys.stderr)
