"""Draws a run's learning curves (train and eval NLL against step) as a PNG.

  python experiments/plot_metrics.py --workdir=workdirs/quickstart --out=curve.png
  python experiments/plot_metrics.py --workdir=experiments/rows/bmnist_pixelcnn --out=c.png --paper=81.30

Reads workdir/metrics.jsonl; plots `nll_nats` (or --metric) of the train rows and of the
eval rows on a linear axis. The first steps of a run (hundreds of nats) are clipped at
--y_max, by default the first evaluation's value, so that the axis shows the end of the
curve; --paper draws a reference line. Uses Pillow only (`pixelrnn/reproduction/curves.py`).
"""

import os

from absl import flags

from pixelrnn import cli, errors
from pixelrnn.reproduction import curves
from pixelrnn.workdir.metric_writers import read_metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run directory holding metrics.jsonl.")
flags.DEFINE_string("out", None, "Output PNG path.")
flags.DEFINE_string("metric", "nll_nats", "Metric to plot.")
flags.DEFINE_float("y_max", None, "Clip values above this (default: the first evaluation's).")
flags.DEFINE_float("paper", None, "Draw the paper's number as a dashed line.")
flags.mark_flags_as_required(["workdir", "out"])


class NoMetricsError(errors.UserError, ValueError):
  """The workdir has no rows of the metric asked for."""


def chart_series(rows: list[dict], metric: str) -> list[curves.Series]:
  # A non-finite value is stored as null (None): it is not plotted.
  points = {
    split: tuple(
      (r["step"], r[metric]) for r in rows if r["split"] == split and r.get(metric) is not None
    )
    for split in ("train", "eval")
  }
  if not points["train"] and not points["eval"]:
    raise NoMetricsError(f"No rows with metric {metric!r} to plot in {FLAGS.workdir!r}.")
  points["train"] = curves.binned_means(points["train"], bins=40)
  return [
    curves.Series(
      f"{split} {metric}" + (" (binned means)" if split == "train" else ""), points[split], color
    )
    for split, color in (("train", curves.COLORS[0]), ("eval", curves.COLORS[1]))
    if points[split]
  ]


def main(argv):
  del argv
  series = chart_series(read_metrics(FLAGS.workdir), FLAGS.metric)
  evals = [s for s in series if s.label.startswith("eval")]
  y_max = FLAGS.y_max if FLAGS.y_max is not None else (evals[0].points[0][1] if evals else None)
  references = (
    []
    if FLAGS.paper is None
    else [curves.Reference(f"paper: {FLAGS.paper:.2f}", FLAGS.paper, "black")]
  )
  curves.save_chart(
    FLAGS.out,
    series,
    references,
    title=os.path.basename(os.path.normpath(FLAGS.workdir)),
    y_label=FLAGS.metric,
    y_max=y_max,
  )
  print(f"Wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
