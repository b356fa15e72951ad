import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, tiny_config_file

from pixelrnn.training import cpu_devices


@pytest.mark.parametrize(
  "batch_sizes, cores, expected",
  [
    ((16, 1000), 2, 2),
    ((16, 1000), 3, 2),
    ((16, 1000), 16, 8),
    ((16, 64), 4, 4),
    ((7, 1000), 2, 1),
    ((16,), 1, 1),
  ],
)
def test_the_device_count_is_the_most_cores_that_divide_every_batch(batch_sizes, cores, expected):
  assert cpu_devices.device_count(batch_sizes, cores) == expected


def test_a_count_set_in_xla_flags_is_left_alone(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
  assert cpu_devices.user_set_count()
  assert cpu_devices.configure([16, 1000]) is None


def test_a_requested_count_that_does_not_divide_a_batch_is_refused_in_one_line():
  with pytest.raises(
    cpu_devices.CpuDevicesError,
    match=r"^--cpu_devices=3: expected a count >= 1 that divides every batch size \[16, 1000\]\.$",
  ):
    cpu_devices.configure([16, 1000, 16], requested=3)


def devices_after_configure(requested: str) -> int:
  """jax.device_count() in a fresh process (no XLA_FLAGS) after `configure`."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  code = (
    "import jax; from pixelrnn.training import cpu_devices; "
    f"count = cpu_devices.configure([12, 36], {requested}); "
    "assert count == jax.device_count(), (count, jax.devices()); print(count)"
  )
  result = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0, result.stderr
  return int(result.stdout.split()[-1])


def test_a_fresh_process_gets_one_device_per_core_or_the_count_asked_for():
  assert devices_after_configure("None") == cpu_devices.device_count(
    [12, 36], cpu_devices.usable_cores()
  )
  assert devices_after_configure("3") == 3


def test_launch_refuses_a_device_count_that_does_not_divide_the_batch(tmp_path):
  config = tiny_config_file(tmp_path / "tiny.py", num_steps=1, checkpoint_every=1, eval_every=1)
  result = subprocess.run(
    [
      sys.executable,
      str(REPO_ROOT / "launch.py"),
      f"--config={config}",
      f"--workdir={tmp_path / 'run'}",
      "--cpu_devices=3",
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
    "Error: --cpu_devices=3: expected a count >= 1 that divides every batch size [8, 1000]."
  ]
