"""StopRequests: SIGTERM, Ctrl-C, a deadline and a step budget each name a reason to stop."""

import os
import signal
import time

import pytest

from pixelrnn.training import stopping


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
    assert [requests(step) for step in (101, 102, 103)] == [None, None, "step budget of 3 spent"]


def test_the_stop_message_names_the_step_and_the_reason():
  stopped = stopping.TrainingStopped(7, "SIGTERM")
  assert str(stopped) == "Stopped (SIGTERM): saved a checkpoint at step 7; rerun to resume."


def test_a_first_ctrl_c_is_recorded_with_a_notice_and_a_second_quits_at_once():
  notices = []
  # As in an interactive shell, whatever the test runner inherited (a background job of a
  # script starts with SIGINT ignored, which StopRequests leaves alone).
  inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with stopping.StopRequests(notify=notices.append) as requests:
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
      assert requests(1) == "SIGINT" and notices == [stopping.CTRL_C_NOTICE]
      with pytest.raises(stopping.QuitNow):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, inherited)


def test_an_ignored_sigint_stays_ignored():
  before = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    with stopping.StopRequests() as requests:
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
      assert requests(1) is None
  finally:
    signal.signal(signal.SIGINT, before)


def test_the_interrupt_message_names_the_step():
  assert str(stopping.TrainingStopped(7, "SIGINT")) == (
    "Interrupted (Ctrl-C): saved a checkpoint at step 7; rerun to resume."
  )
