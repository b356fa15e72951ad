"""Runs of launch.py for the comparison scripts, recorded one JSON line each."""

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(name: str, config: str, workdir: str, overrides: list[str]) -> dict:
  """Trains `config` in `workdir` with launch.py; returns launch.py's final JSON line
  with the run's name, wall time, date and command."""
  command = [sys.executable, "launch.py", f"--config={config}", f"--workdir={workdir}", *overrides]
  start = time.perf_counter()
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  if done.returncode:
    raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
  return {
    "run": name,
    "config": config,
    "overrides": overrides,
    "wall_s": round(time.perf_counter() - start, 1),
    **json.loads(done.stdout.strip().splitlines()[-1]),
    "date": time.strftime("%Y-%m-%d"),
    "command": " ".join(command[1:]),
  }


def record(path: str, row: dict) -> None:
  """Prints `row` and appends it to the JSON-lines file `path`."""
  print(json.dumps(row), flush=True)
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")
