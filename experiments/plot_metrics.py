"""Draws a run's learning curves (train and eval NLL against step) as a PNG.

  python experiments/plot_metrics.py --workdir=workdirs/quickstart --out=curve.png

Reads workdir/metrics.jsonl; plots `nll_nats` (or --metric) for the train rows as a
line and the eval rows as dots, on a log-scaled y axis. Uses Pillow only.
"""

import math

from absl import app, flags
from PIL import Image, ImageDraw

from pixelrnn.metric_writers import read_metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run directory holding metrics.jsonl.")
flags.DEFINE_string("out", None, "Output PNG path.")
flags.DEFINE_string("metric", "nll_nats", "Metric to plot.")
flags.mark_flags_as_required(["workdir", "out"])

WIDTH, HEIGHT, MARGIN = 720, 440, 70


def draw_curves(rows: list[dict], metric: str, title: str) -> Image.Image:
  # A non-finite value is stored as null (None): it is not plotted.
  train = [(r["step"], r[metric]) for r in rows if r["split"] == "train" and r.get(metric) is not None]
  evals = [(r["step"], r[metric]) for r in rows if r["split"] == "eval" and r.get(metric) is not None]
  points = train + evals
  if not points:
    raise ValueError(f"No rows with metric {metric!r} to plot.")
  max_step = max(s for s, _ in points)
  lo = math.log(min(v for _, v in points))
  hi = math.log(max(v for _, v in points))
  hi = hi if hi > lo else lo + 1.0

  def xy(step, value):
    x = MARGIN + (WIDTH - 2 * MARGIN) * step / max(max_step, 1)
    y = HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * (math.log(value) - lo) / (hi - lo)
    return x, y

  image = Image.new("RGB", (WIDTH, HEIGHT), "white")
  draw = ImageDraw.Draw(image)
  draw.rectangle([MARGIN, MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN], outline="black")
  for k in range(5):
    value = math.exp(lo + (hi - lo) * k / 4)
    _, y = xy(0, value)
    draw.line([MARGIN - 4, y, MARGIN, y], fill="black")
    draw.text((8, y - 6), f"{value:.1f}", fill="black")
    step = round(max_step * k / 4)
    x, _ = xy(step, math.exp(lo))
    draw.line([x, HEIGHT - MARGIN, x, HEIGHT - MARGIN + 4], fill="black")
    draw.text((x - 12, HEIGHT - MARGIN + 8), str(step), fill="black")
  if len(train) > 1:
    draw.line([xy(s, v) for s, v in train], fill=(40, 90, 200), width=2)
  for s, v in evals:
    x, y = xy(s, v)
    draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(210, 60, 40))
    draw.text((x - 30, y - 18), f"{v:.2f}", fill=(210, 60, 40))
  draw.text((MARGIN, 20), title, fill="black")
  draw.text((MARGIN, 38), f"{metric} (log scale): train (blue line), eval (red dots)", fill="black")
  draw.text((WIDTH // 2 - 15, HEIGHT - 25), "step", fill="black")
  return image


def main(argv):
  del argv
  draw_curves(read_metrics(FLAGS.workdir), FLAGS.metric, FLAGS.workdir).save(FLAGS.out)


if __name__ == "__main__":
  app.run(main)
