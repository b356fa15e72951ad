"""experiments/profile_step.py and its pieces (experiments/profiling.py): where a train
step's time goes, per device of a split CPU."""

import json
import subprocess
import sys

from conftest import REPO_ROOT, experiment

profiling = experiment("profiling")


def test_an_operation_counts_its_time_per_device_and_per_step():
  durations = {"dot.1": 4000.0, "fusion.2": 12000.0}  # Microseconds, summed over 2 devices.
  contents = {"dot.1": "dot", "fusion.2": "fusion: add, maximum"}
  rows = profiling.op_rows(durations, contents, devices=2, steps=2, wall_us=10000.0)
  assert [row["op"] for row in rows] == ["fusion.2", "dot.1"]
  assert [row["ms_per_step"] for row in rows] == [3.0, 1.0]
  assert [row["share"] for row in rows] == [0.6, 0.2]
  assert rows[1]["computes"] == "dot"


def test_waits_for_the_other_devices_are_their_own_kind():
  kind = profiling.kind
  assert kind("Rendezvous", "?") == "waiting"
  assert kind("Wait: pending_threads=1/2", "?") == "waiting"
  assert kind("SlinkyThreadPool::Await", "?") == "waiting"
  assert kind("all-reduce.7", "all-reduce") == "all-reduce"
  assert kind("fusion.3", "fusion: convolution, add") == "convolution"
  assert kind("fusion.4", "fusion: add, maximum") == "elementwise"


def test_the_profile_of_a_split_cpu_step_names_its_devices_and_operations(tmp_path):
  output = tmp_path / "profile.jsonl"
  done = subprocess.run(
    [
      sys.executable,
      "experiments/profile_step.py",
      "--config=configs/quickstart.py",
      "--batch_size=8",
      "--calls=1",
      f"--output={output}",
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  (result,) = [json.loads(line) for line in output.read_text().splitlines()]
  assert result["devices"] == 4  # conftest's forced count, which the split leaves alone.
  ops_ms = sum(op["ms_per_step"] for op in result["ops"])
  kinds_ms = sum(kind["ms_per_step"] for kind in result["kinds"])
  assert abs(ops_ms - kinds_ms) < 0.01 * ops_ms + 0.1
  assert {"all-reduce", "waiting", "dot"} <= {kind["kind"] for kind in result["kinds"]}
