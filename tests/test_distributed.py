"""distributed.py: processes on localhost, joined by jax.distributed, train as one.

Each test starts real `launch.py` processes (CPU collectives over gloo), bounds their
run time, and kills every process it started, whatever happens.
"""

import json
import os
import pathlib
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
from pixelrnn.training import train
from pixelrnn.workdir import checkpoints

FLAGS = [
  "--config=configs/quickstart.py",
  "--config.model.num_layers=1",
  "--config.model.hidden_dim=4",
  "--config.training.batch_size=8",
  "--config.training.num_steps=6",
  "--config.training.checkpoint_every_steps=3",
  "--config.training.log_every_steps=2",
  "--config.data.eval_split=validation",
  # The evaluation at step 4 keeps a run busy for seconds after its first checkpoint.
  "--config.training.eval_every_steps=4",
  "--config.training.eval_batch_size=100",
  "--samples_after_training=0",
]
DEVICES_PER_PROCESS = 2
TIMEOUT_S = 300


def config_of(flags):
  config = cli.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  for flag in flags:
    if flag.startswith("--config."):
      key, value = flag.removeprefix("--config.").split("=")
      group, name = key.rsplit(".", 1)
      section = config
      for part in group.split("."):
        section = section[part]
      section[name] = type(section[name])(value)
  return config


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


class Processes:
  """`launch.py` started as processes 0 .. n-1 of one run, output to files in `logdir`."""

  def __init__(
    self,
    logdir: pathlib.Path,
    flags_per_process: list[list[str]],
    devices_per_process: int = DEVICES_PER_PROCESS,
    port: int | None = None,
  ):
    address = f"localhost:{port or free_port()}"
    env = {
      **os.environ,
      "JAX_PLATFORMS": "cpu",
      "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}",
    }
    logdir.mkdir(parents=True, exist_ok=True)
    self.logs = [
      (logdir / f"stdout{i}.txt", logdir / f"stderr{i}.txt") for i in range(len(flags_per_process))
    ]
    self.procs = []
    for i, flags in enumerate(flags_per_process):
      with open(self.logs[i][0], "w") as out, open(self.logs[i][1], "w") as err:
        self.procs.append(
          subprocess.Popen(
            [
              sys.executable,
              "launch.py",
              *flags,
              f"--coordinator_address={address}",
              f"--num_processes={len(flags_per_process)}",
              f"--process_id={i}",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
          )
        )

  def wait(self, timeout_s: float = TIMEOUT_S) -> list[tuple[int, str, str]]:
    """Every process's (exit status, stdout, stderr); all are killed after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    try:
      for proc in self.procs:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
      self.kill()
    return [
      (proc.returncode, out.read_text(), err.read_text())
      for proc, (out, err) in zip(self.procs, self.logs)
    ]

  def kill(self) -> None:
    for proc in self.procs:
      if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def run_processes(logdir, flags_per_process, **kwargs):
  results = Processes(logdir, flags_per_process, **kwargs).wait()
  for i, (returncode, _, stderr) in enumerate(results):
    assert returncode == 0, f"process {i}: {stderr[-3000:]}"
  return results


def final_eval(stdout: str) -> dict:
  return json.loads(stdout.strip().splitlines()[-1])


def restored(workdir, flags=FLAGS):
  """The latest checkpoint of `workdir`, restored by this (single) process."""
  _, state = train.restore_latest(config_of(flags), str(workdir), devices=jax.devices()[:1])
  return state


def assert_states_equal(a, b, **tolerance):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if tolerance:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)
    else:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
  """An uninterrupted run of two processes with two devices each: (workdir, results)."""
  root = tmp_path_factory.mktemp("two_processes")
  workdir = root / "workdir"
  results = run_processes(root / "logs", [FLAGS + [f"--workdir={workdir}"]] * 2)
  return workdir, results


def test_two_processes_train_and_evaluate_like_one_with_the_same_global_batch(
  two_process_run, tmp_path
):
  workdir, results = two_process_run
  config = config_of(FLAGS)
  single = tmp_path / "single"
  metrics = train.train_and_evaluate(config, str(single), devices=jax.devices()[:4], progress=False)
  assert_states_equal(restored(workdir), restored(single), rtol=1e-5, atol=1e-6)
  # Evaluation split over the processes counts every image once (10,000 = 100 batches).
  primary = final_eval(results[0][1])
  np.testing.assert_allclose(primary["nll_nats"], metrics["nll_nats"], rtol=1e-6)
  # Process 0 alone reports: the other prints no result and writes no metrics.
  assert "nll_nats" not in results[1][1]
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["split"]) for r in rows] == [
    (1, "train"),
    (2, "train"),
    (4, "train"),
    (4, "eval"),
    (6, "train"),
    (6, "eval"),
  ]


def test_both_processes_killed_after_a_checkpoint_resume_to_the_uninterrupted_run(
  two_process_run, tmp_path
):
  workdir = tmp_path / "workdir"
  flags = FLAGS + [f"--workdir={workdir}"]
  processes = Processes(tmp_path / "killed", [flags] * 2)
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while not (workdir / "checkpoints" / "3").exists():
      assert all(p.poll() is None for p in processes.procs), "a process ended early"
      assert time.monotonic() < deadline, "no checkpoint at step 3 in time"
      time.sleep(0.05)
  finally:
    processes.kill()
  assert checkpoints.manager(str(workdir), config_of(FLAGS)).latest_step() == 3
  results = run_processes(tmp_path / "resumed", [flags] * 2)
  assert "Resuming from step 3" in results[0][1]
  assert_states_equal(restored(workdir), restored(two_process_run[0]))


def test_a_process_that_cannot_reach_the_coordinator_fails_in_time_naming_the_address(tmp_path):
  port = free_port()  # Nobody listens there: process 0 is never started.
  start = time.monotonic()
  proc = subprocess.run(
    [
      sys.executable,
      "launch.py",
      *FLAGS,
      f"--workdir={tmp_path}",
      f"--coordinator_address=localhost:{port}",
      "--num_processes=2",
      "--process_id=1",
      "--distributed_timeout_s=5",
    ],
    cwd=REPO_ROOT,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert f"Error: Could not join the cluster: coordinator address localhost:{port}" in proc.stderr
  assert "within 5 s" in proc.stderr and "Traceback" not in proc.stderr
  assert time.monotonic() - start < 60


def test_processes_given_different_configs_are_refused_by_all_of_them(tmp_path):
  flags = FLAGS + [f"--workdir={tmp_path / 'workdir'}"]
  results = Processes(
    tmp_path, [flags, flags + ["--config.model.hidden_dim=6"]], devices_per_process=1
  ).wait()
  for returncode, _, stderr in results:
    assert returncode == 2, stderr[-3000:]
    assert "Error: The processes were given different configs: process(es) [1] differ" in stderr
  assert not (tmp_path / "workdir" / "checkpoints").exists()
