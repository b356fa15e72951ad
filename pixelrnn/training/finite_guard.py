"""Stopping a diverging run before it writes anything non-finite.

Every train step reports `finite`: whether its loss and gradient norm are finite (one
flag computed inside the compiled step; a NaN or inf in any gradient makes the norm
non-finite). The training loop hands each step's metrics to `FiniteGuard.check`.

By default the first non-finite step ends the run with `NonFiniteError`, before any
checkpoint, evaluation or sample is made from its parameters. With
`training.skip_nonfinite_updates = N > 0` the train step leaves parameters, optimizer
state and EMA unchanged on a non-finite step (the batch is still consumed, so the data
order stays that of the step count) and up to N such steps in a row are skipped; the
N+1-th ends the run. Skipping rides through a rare bad batch or spike, but it also
hides a learning rate that is too high for longer, and a skipped batch is never seen.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from pixelrnn import errors


class NonFiniteError(errors.UserError, RuntimeError):
  """A train step produced a NaN or infinite loss or gradient."""

  def __init__(self, step: int, last_checkpoint: int | None, allowed_in_a_row: int):
    last = (
      f"the last good checkpoint is step {last_checkpoint}"
      if last_checkpoint is not None
      else "there is no checkpoint yet"
    )
    skipped = f" after {allowed_in_a_row} skipped in a row" if allowed_in_a_row else ""
    super().__init__(
      f"Step {step}: the loss or the gradients are not finite (NaN or inf){skipped}; "
      f"stopped without saving, {last}. Lower optimizer.learning_rate, or set "
      f"training.skip_nonfinite_updates=N to skip up to N such steps in a row."
    )
    self.step = step
    self.last_checkpoint = last_checkpoint


class FiniteGuard:
  """Checks the `finite` flag of each step, in step order.

  `last_checkpoint()` names the newest checkpoint for the error message; `warn(text)`
  reports a skipped step.
  """

  def __init__(
    self,
    allowed_in_a_row: int,
    last_checkpoint: Callable[[], int | None],
    warn: Callable[[str], None],
  ):
    self.allowed_in_a_row = allowed_in_a_row
    self.last_checkpoint = last_checkpoint
    self.warn = warn
    self.in_a_row = 0
    self.skipped_steps: list[int] = []

  def check(self, step: int, metrics: dict) -> None:
    """Waits for `step` to finish; raises NonFiniteError when it may not be kept."""
    if bool(jax.device_get(metrics["finite"])):
      self.in_a_row = 0
      return
    self.in_a_row += 1
    if self.in_a_row > self.allowed_in_a_row:
      raise NonFiniteError(step, self.last_checkpoint(), self.allowed_in_a_row)
    self.skipped_steps.append(step)
    self.warn(
      f"step {step}: loss or gradients not finite; update skipped ({self.in_a_row} in a "
      f"row, {self.allowed_in_a_row} allowed)."
    )
