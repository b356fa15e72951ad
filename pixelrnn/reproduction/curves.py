"""Line charts of learning curves as PNG, drawn with Pillow (no plotting library needed).

`draw_chart` plots any number of (step, value) series on linear axes with horizontal
reference lines (a paper's number, say) and a legend; `eval_curve` reads a workdir's
evaluation curve from its metrics.jsonl.
"""

from __future__ import annotations

import dataclasses
import math
import os

from PIL import Image, ImageDraw

from pixelrnn.workdir import metric_writers

WIDTH, HEIGHT = 800, 480
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 52, 60
MAX_DOTS = 60  # Longer series are drawn as lines only.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


@dataclasses.dataclass(frozen=True)
class Series:
  label: str
  points: tuple[tuple[float, float], ...]  # (step, value), in step order.
  color: str = COLORS[0]


@dataclasses.dataclass(frozen=True)
class Reference:
  label: str
  value: float
  color: str = COLORS[0]


def eval_curve(workdir: str, metric: str = "nll_nats") -> tuple[tuple[int, float], ...]:
  """The (step, value) points of workdir's evaluation rows; () without metrics.jsonl."""
  if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    return ()
  return tuple(
    (row["step"], row[metric])
    for row in metric_writers.read_metrics(workdir)
    if row["split"] == "eval" and row.get(metric) is not None
  )


def binned_means(points, bins: int = 100) -> tuple[tuple[float, float], ...]:
  """`points` (step, value) averaged over `bins` equal step ranges: a readable line for
  per-batch training losses, which are noisy at batch 16."""
  if len(points) <= bins:
    return tuple(points)
  first, last = points[0][0], points[-1][0]
  width = max((last - first) / bins, 1e-9)
  sums = {}
  for step, value in points:
    k = min(int((step - first) / width), bins - 1)
    total, count, steps = sums.get(k, (0.0, 0, 0.0))
    sums[k] = (total + value, count + 1, steps + step)
  return tuple((steps / count, total / count) for _, (total, count, steps) in sorted(sums.items()))


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
  raw = (hi - lo) / max(count - 1, 1)
  magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
  step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
  first = math.ceil(lo / step) * step
  return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _value_range(series, references, y_max: float | None) -> tuple[float, float]:
  values = [v for s in series for _, v in s.points] + [r.value for r in references]
  lo, hi = min(values), max(values)
  if y_max is not None:
    hi = min(hi, y_max)
  pad = max(hi - lo, 1.0) * 0.05
  return lo - pad, hi + pad


def draw_chart(
  series: list[Series],
  references: list[Reference],
  *,
  title: str,
  x_label: str = "training step",
  y_label: str = "NLL (nats per image)",
  y_max: float | None = None,
) -> Image.Image:
  """A chart of `series` and the `references` as dashed lines. Values above `y_max` (the
  first evaluations of a run, far above the rest) are clipped to the top edge."""
  if not any(s.points for s in series) and not references:
    raise ValueError("Nothing to plot: no points and no reference lines.")
  lo, hi = _value_range(series, references, y_max)
  max_step = max([s for ser in series for s, _ in ser.points] + [1])
  plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

  def xy(step, value):
    value = min(max(value, lo), hi)
    return (LEFT + plot_w * step / max_step, TOP + plot_h * (hi - value) / (hi - lo))

  image = Image.new("RGB", (WIDTH, HEIGHT), "white")
  draw = ImageDraw.Draw(image)
  draw.text((LEFT, 8), title, fill="black")
  for value in _nice_ticks(lo, hi):
    _, y = xy(0, value)
    draw.line([LEFT, y, WIDTH - RIGHT, y], fill="#e6e6e6")
    draw.text((8, y - 6), f"{value:g}", fill="black")
  for step in _nice_ticks(0, max_step, 5):
    x, _ = xy(step, lo)
    draw.line([x, TOP + plot_h, x, TOP + plot_h + 4], fill="black")
    draw.text((x - 14, TOP + plot_h + 8), f"{step / 1000:g}k", fill="black")
  draw.rectangle([LEFT, TOP, WIDTH - RIGHT, TOP + plot_h], outline="black")
  draw.text((LEFT + plot_w // 2 - 40, HEIGHT - 24), x_label, fill="black")
  draw.text((8, TOP - 18), y_label, fill="black")
  for ref in references:
    _, y = xy(0, ref.value)
    for x in range(LEFT, WIDTH - RIGHT, 12):
      draw.line([x, y, min(x + 6, WIDTH - RIGHT), y], fill=ref.color, width=2)
  for ser in series:
    points = [xy(s, v) for s, v in ser.points]
    if len(points) > 1:
      draw.line(points, fill=ser.color, width=2)
    if len(points) <= MAX_DOTS:
      for x, y in points:
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=ser.color)
  _draw_legend(draw, series, references)
  return image


def _draw_legend(draw, series: list[Series], references: list[Reference]) -> None:
  """The legend box in the top right corner: a solid line per series, dashed per reference."""
  legend = [(s.label, s.color, False) for s in series] + [
    (r.label, r.color, True) for r in references
  ]
  x = WIDTH - RIGHT - 330
  draw.rectangle(
    [x - 6, TOP + 4, WIDTH - RIGHT - 4, TOP + 14 + 16 * len(legend)],
    fill="white",
    outline="#999999",
  )
  for k, (label, color, dashed) in enumerate(legend):
    y = TOP + 10 + 16 * k
    if dashed:
      draw.line([x, y + 6, x + 8, y + 6], fill=color, width=2)
      draw.line([x + 12, y + 6, x + 20, y + 6], fill=color, width=2)
    else:
      draw.line([x, y + 6, x + 20, y + 6], fill=color, width=2)
    draw.text((x + 26, y), label, fill="black")


def save_chart(path: str, *args, **kwargs) -> str:
  """`draw_chart(*args, **kwargs)` written atomically to `path`; returns `path`."""
  image = draw_chart(*args, **kwargs)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  image.save(tmp)
  os.replace(tmp, path)
  return path
