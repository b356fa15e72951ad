"""experiments/benchmark.py: the loops side by side, with what a reader needs to compare them."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_the_benchmark_times_both_loops_and_records_device_precision_and_dispatch():
  done = subprocess.run(
      [sys.executable, "experiments/benchmark.py", "--config=configs/quickstart.py",
       "--batch_size=4", "--steps_per_dispatch=0,3", "--warmup_steps=1", "--timed_steps=3",
       "--precision=float32", "--torch"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = [json.loads(line) for line in done.stdout.splitlines()]
  host, device = (line for line in lines if "steps_per_dispatch" in line)
  assert (host["loop"], host["steps_per_dispatch"]) == ("host batches", 0)
  assert (device["loop"], device["steps_per_dispatch"], device["timed_steps"]) == (
      "device-resident data", 3, 3)
  head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                        capture_output=True, text=True).stdout.strip()
  for line in (host, device):
    assert line["commit"].startswith(head or "unknown")
    assert line["precision"] == "float32" and line["batch_size"] == 4
    assert line["platform"] == "cpu" and line["device_kind"]
    assert line["train_step_s"] > 0 and line["train_images_per_s"] == round(4 / line["train_step_s"], 2)
  # The PyTorch peer is timed where torch is installed, and says why not elsewhere.
  torch_lines = [line for line in lines if "torch" in line or "torch_mode" in line]
  assert torch_lines and all("torch_mode" in line or line["torch"].startswith("not run")
                             for line in torch_lines)
