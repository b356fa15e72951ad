"""MetricWriter: strict JSON lines, and TensorBoard events that TensorBoard reads back."""

import math

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pixelrnn.workdir import metric_writers


def test_rows_and_tensorboard_scalars_round_trip(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path))
  writer.write(1, "train", {"loss": 0.5, "nll_nats": 100.25})
  writer.write(2, "train", {"loss": float("nan"), "nll_nats": 99.0})
  writer.write(2, "eval", {"nll_nats": 98.5})
  writer.close()
  assert metric_writers.read_metrics(str(tmp_path)) == [
    {"step": 1, "split": "train", "loss": 0.5, "nll_nats": 100.25},
    {"step": 2, "split": "train", "loss": None, "nll_nats": 99.0},
    {"step": 2, "split": "eval", "nll_nats": 98.5},
  ]
  train = EventAccumulator(str(tmp_path / "tensorboard" / "train")).Reload()
  assert [(e.step, e.value) for e in train.Scalars("nll_nats")] == [(1, 100.25), (2, 99.0)]
  assert math.isnan(train.Scalars("loss")[1].value)
  evaluation = EventAccumulator(str(tmp_path / "tensorboard" / "eval")).Reload()
  assert [(e.step, e.value) for e in evaluation.Scalars("nll_nats")] == [(2, 98.5)]


def test_a_resumed_run_drops_the_rows_after_its_checkpoint(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path), tensorboard=False)
  for step in (1, 2, 3):
    writer.write(step, "train", {"loss": float(step)})
  writer.truncate_after(2)
  assert [r["step"] for r in metric_writers.read_metrics(str(tmp_path))] == [1, 2]
