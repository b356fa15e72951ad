"""StopRequests: SIGTERM, a deadline and a step budget each name a reason to stop."""

import os
import signal
import time

from pixelrnn import stopping


def test_sigterm_is_recorded_instead_of_killing_and_the_old_handler_comes_back():
  before = signal.getsignal(signal.SIGTERM)
  with stopping.StopRequests() as requests:
    assert requests(1) is None
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # Python runs the handler between bytecodes.
    assert requests(2) == "SIGTERM" and requests.signal_name == "SIGTERM"
  assert signal.getsignal(signal.SIGTERM) is before


def test_a_spent_deadline_stops_and_a_future_one_does_not():
  with stopping.StopRequests(deadline_s=time.monotonic() + 3600) as requests:
    assert requests(10) is None
  with stopping.StopRequests(deadline_s=time.monotonic() - 1) as requests:
    assert requests(10) == "time budget spent"


def test_the_step_budget_counts_from_the_first_step_of_this_run():
  with stopping.StopRequests(max_steps=3) as requests:
    # A run resumed at step 100: its steps are 101, 102, 103.
    assert [requests(step) for step in (101, 102, 103)] == [
        None, None, "step budget of 3 spent"]


def test_the_stop_message_names_the_step_and_the_reason():
  stopped = stopping.TrainingStopped(7, "SIGTERM")
  assert str(stopped) == "Stopped (SIGTERM): saved a checkpoint at step 7; rerun to resume."
