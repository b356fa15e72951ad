"""Writes scalar metrics as JSON lines (`metrics.jsonl`) and TensorBoard events.

The events are TensorBoard's protos in its record format, written without TensorFlow
(TensorBoard's own writer imports it when installed, which takes seconds).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time


class MetricWriter:
  """Appends {'step': s, 'split': ..., **scalars} rows to workdir/metrics.jsonl and
  writes the same scalars to TensorBoard under workdir/tensorboard/<split>."""

  def __init__(self, workdir: str, tensorboard: bool = True, active: bool = True):
    """With `active` False (processes other than 0 of a multi-process run), writes
    nothing."""
    self.active = active
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb_dir = os.path.join(workdir, "tensorboard") if tensorboard else None
    self._tb_writers = {}

  def truncate_after(self, step: int) -> None:
    """Drops rows logged after `step`: a resumed run re-logs those steps."""
    if not self.active or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(rows)
    os.replace(tmp, self.path)

  def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
    if not self.active:
      return
    # Strict JSON: a NaN or infinite value is written as null.
    values = {k: float(v) if math.isfinite(float(v)) else None for k, v in scalars.items()}
    row = {"step": int(step), "split": split, **values}
    with open(self.path, "a") as f:
      f.write(json.dumps(row, allow_nan=False) + "\n")
    if self._tb_dir is not None:
      self._tensorboard_writer(split).add(_scalars_event(step, scalars))

  def _tensorboard_writer(self, split: str) -> "EventFile":
    if split not in self._tb_writers:
      self._tb_writers[split] = EventFile(os.path.join(self._tb_dir, split))
    return self._tb_writers[split]

  def close(self) -> None:
    for writer in self._tb_writers.values():
      writer.close()
    self._tb_writers = {}


class EventFile:
  """A new TensorBoard event file in `logdir`; each event is written and flushed at once."""

  def __init__(self, logdir: str):
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    os.makedirs(logdir, exist_ok=True)
    now = time.time_ns()
    name = f"events.out.tfevents.{now // 10**9:010d}.{socket.gethostname()}.{os.getpid()}.{now}"
    self._records = RecordWriter(open(os.path.join(logdir, name), "wb"))
    self.add(event_pb2.Event(wall_time=now / 1e9, file_version="brain.Event:2"))

  def add(self, event) -> None:
    self._records.write(event.SerializeToString())
    self._records.flush()

  def close(self) -> None:
    self._records.close()


def _scalars_event(step: int, scalars: dict[str, float]):
  """One TensorBoard event holding `scalars` at `step` (non-finite values kept as they are)."""
  from tensorboard.compat.proto import event_pb2, summary_pb2

  values = [
    summary_pb2.Summary.Value(tag=key, simple_value=float(value)) for key, value in scalars.items()
  ]
  return event_pb2.Event(
    wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values)
  )


def read_metrics(workdir: str) -> list[dict]:
  """All rows of workdir/metrics.jsonl, in order; a non-finite value reads as None."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]
