"""Writes scalar metrics as JSON lines (`metrics.jsonl`) and TensorBoard events."""

from __future__ import annotations

import json
import math
import os


class MetricWriter:
  """Appends {'step': s, 'split': ..., **scalars} rows to workdir/metrics.jsonl and
  writes the same scalars to TensorBoard under workdir/tensorboard/<split>."""

  def __init__(self, workdir: str, tensorboard: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb_dir = os.path.join(workdir, "tensorboard") if tensorboard else None
    self._tb_writers = {}

  def truncate_after(self, step: int) -> None:
    """Drops rows logged after `step`: a resumed run re-logs those steps."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(rows)
    os.replace(tmp, self.path)

  def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
    # Strict JSON: a NaN or infinite value is written as null.
    values = {k: float(v) if math.isfinite(float(v)) else None for k, v in scalars.items()}
    row = {"step": int(step), "split": split, **values}
    with open(self.path, "a") as f:
      f.write(json.dumps(row, allow_nan=False) + "\n")
    if self._tb_dir is not None:
      import tensorflow as tf  # Imported on first use: it is slow to import.
      if split not in self._tb_writers:
        self._tb_writers[split] = tf.summary.create_file_writer(os.path.join(self._tb_dir, split))
      with self._tb_writers[split].as_default():
        for key, value in scalars.items():
          tf.summary.scalar(key, float(value), step=int(step))
      self._tb_writers[split].flush()

  def close(self) -> None:
    for writer in self._tb_writers.values():
      writer.close()
    self._tb_writers = {}


def read_metrics(workdir: str) -> list[dict]:
  """All rows of workdir/metrics.jsonl, in order; a non-finite value reads as None."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]
