"""One writer per workdir: a live holder is named and refused; a dead one is taken over."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT

from pixelrnn import cli
from pixelrnn.training import trainer as trainer_lib
from pixelrnn.workdir import checkpoints
from pixelrnn.workdir import lock as lock_lib


def dead_pid() -> int:
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  return process.pid


def write_lock(workdir, pid, host):
  (workdir / "lock").write_text(json.dumps({"pid": pid, "host": host, "started": "earlier"}))


def test_a_second_holder_is_refused_naming_the_first_and_the_lock_is_released(tmp_path):
  with lock_lib.WorkdirLock(str(tmp_path)):
    holder = json.loads((tmp_path / "lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(
      lock_lib.WorkdirLockedError,
      match=rf"in use by pid {os.getpid()} on host '{socket.gethostname()}'",
    ):
      with lock_lib.WorkdirLock(str(tmp_path)):
        pass
    assert (tmp_path / "lock").exists(), "the refused run must not remove the holder's lock"
  assert not (tmp_path / "lock").exists()


def test_a_dead_holders_lock_on_this_host_is_taken_over_with_a_warning(tmp_path):
  pid = dead_pid()
  write_lock(tmp_path, pid, socket.gethostname())
  warnings = []
  with lock_lib.WorkdirLock(str(tmp_path), warn=warnings.append):
    assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
  assert len(warnings) == 1 and f"from pid {pid}, which no longer runs" in warnings[0]


def test_a_lock_held_on_another_host_is_refused(tmp_path):
  write_lock(tmp_path, dead_pid(), "another-host")
  with pytest.raises(lock_lib.WorkdirLockedError, match="on host 'another-host'"):
    with lock_lib.WorkdirLock(str(tmp_path)):
      pass


SETTINGS = [
  "--config=configs/quickstart.py",
  "--config.model.num_layers=1",
  "--config.optimizer.schedule=constant",
  "--config.training.log_every_steps=1",
  "--config.training.checkpoint_every_steps=3",
  "--config.training.eval_every_steps=100000",
  "--config.data.eval_split=validation",
  "--samples_after_training=0",
]


def launch(*args):
  return subprocess.run(
    [sys.executable, "launch.py", *SETTINGS, *args],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )


def test_two_runs_on_one_workdir_then_sigkill_and_a_resume_that_takes_the_lock_over(tmp_path):
  workdir = tmp_path / "shared"
  first = subprocess.Popen(
    [
      sys.executable,
      "launch.py",
      *SETTINGS,
      f"--workdir={workdir}",
      "--config.training.num_steps=100000",
    ],
    cwd=REPO_ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  try:
    saved = workdir / "checkpoints"
    deadline = time.monotonic() + 300
    while not (saved.is_dir() and any(p.name.isdigit() for p in saved.iterdir())):
      assert first.poll() is None and time.monotonic() < deadline, "training did not start"
      time.sleep(0.2)
    start = time.monotonic()
    second = launch(f"--workdir={workdir}", "--config.training.num_steps=100000")
    assert time.monotonic() - start < 60
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"is in use by pid {first.pid} on host '{socket.gethostname()}'" in second.stderr
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
  finally:
    first.kill()
  config = cli.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  config.model.num_layers = 1
  step = checkpoints.manager(str(workdir), config).latest_step()
  final = f"--config.training.num_steps={step + 4}"
  resumed = launch(f"--workdir={workdir}", final)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"Took over the lock of workdir {str(workdir)!r} from pid {first.pid}" in resumed.stderr
  assert f"Resuming from step {step}" in resumed.stderr + resumed.stdout
  assert not (workdir / "lock").exists()
  straight = launch(f"--workdir={tmp_path / 'straight'}", final)
  assert straight.returncode == 0, straight.stderr[-3000:]
  trainer = trainer_lib.Trainer(config, (28, 28, 1), 2, trainer_lib.make_mesh())
  states = [
    jax.device_get(
      checkpoints.restore(checkpoints.manager(str(d), config), trainer.abstract_state())
    )
    for d in (workdir, tmp_path / "straight")
  ]
  assert int(states[0].step) == step + 4
  jax.tree.map(np.testing.assert_array_equal, *states)
