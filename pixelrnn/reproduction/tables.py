"""experiments/results/paper_tables.md and the validation curves of the paper's rows:
finished rows with their test NLL, rows in progress with their latest validation NLL."""

from __future__ import annotations

import os

from pixelrnn.reproduction import curves
from pixelrnn.reproduction.paper_rows import Row, read_record
from pixelrnn.reproduction.piece_log import (
  PLATEAU_WINDOW_STEPS,
  eval_split,
  plateau,
  read_pieces,
  totals,
)
from pixelrnn.training import progress


def _hours(seconds: float | None) -> str:
  return "" if seconds is None else f"{seconds / 3600:.2f}"


def in_progress_status(
  row: Row, workdir: str, step: int, num_steps: int, batch_size: int
) -> list[str]:
  """The table cells (ours .. command) of a row in progress at checkpoint `step`."""
  pieces = read_pieces(workdir)
  curve = curves.eval_curve(workdir)
  split = eval_split(pieces)
  latest = f"{split} {curve[-1][1]:.2f} at step {curve[-1][0]:,}" if curve else "no evaluation yet"
  flat = plateau(curve)
  if flat is not None:
    latest += (
      f"; **stopped improving**: {flat:.2f} nats gained over the last "
      f"{PLATEAU_WINDOW_STEPS:,} steps"
    )
  spent = totals(pieces)
  return [
    f"in progress: {latest}",
    f"{step:,} of {num_steps:,}",
    f"{step * batch_size:,}",
    progress.format_duration(spent["wall_s"]),
    _hours(spent["cpu_s"]),
    "; ".join(sorted({p["hardware"] for p in pieces})),
    pieces[-1]["started"][:10] if pieces else "",
    "<br>".join(f"`{p['command']}`" for p in pieces),
  ]


def finished_status(record: dict) -> list[str]:
  return [
    f"**{record['ours']:.2f}**",
    f"{record['steps']:,}",
    f"{record['images_seen']:,}",
    progress.format_duration(record["wall_time_s"]),
    _hours(record.get("cpu_time_s")),
    "; ".join(record["hardware"]),
    record["date"],
    "<br>".join(f"`{c}`" for c in record["commands"]),
  ]


def curve_paths(results_dir: str, row: Row | None = None) -> str:
  name = "all_rows" if row is None else row.name
  return os.path.join(results_dir, "paper_rows", f"{name}_curve.png")


def write_curves(rows: list[Row], results_dir: str, workdirs: dict[str, str]) -> list[str]:
  """One figure per row with an evaluation curve (its NLL against steps, the paper's
  number as a dashed line) and one with every such row; returns their paths."""
  drawn, written = [], []
  for k, row in enumerate(r for r in rows if r.unit == "nats"):
    points = curves.eval_curve(workdirs[row.name])
    if not points:
      continue
    color = curves.COLORS[k % len(curves.COLORS)]
    split = eval_split(read_pieces(workdirs[row.name]))
    series = curves.Series(f"{row.name} ({split})", points, color)
    reference = curves.Reference(f"paper: {row.paper:.2f} ({row.name})", row.paper, color)
    drawn.append((series, reference))
    written.append(
      curves.save_chart(
        curve_paths(results_dir, row),
        [series],
        [reference],
        title=f"{row.name}: {row.model}, EMA parameters, {split} split",
        y_max=100.0,
      )
    )
  if drawn:
    written.append(
      curves.save_chart(
        curve_paths(results_dir),
        [s for s, _ in drawn],
        [r for _, r in drawn],
        title="Binarized-MNIST rows: NLL of the EMA parameters against steps",
        y_max=100.0,
      )
    )
  return written


def write_table(
  rows: list[Row], results_dir: str, in_progress: dict[str, list[str]], figures: list[str]
) -> str:
  """Writes results_dir/paper_tables.md: a finished row from its record, a row in
  progress from `in_progress` (its cells), any other as not run. Returns its path."""
  lines = [
    "# The paper's tables, reproduced",
    "",
    "Written by `experiments/reproduce.py` from the records in `paper_rows/` and the rows' "
    "workdirs; do not edit by hand. Ours: the test-set NLL of the EMA parameters, evaluated "
    "once at full float32 when a row finishes. A row in progress shows its latest "
    "evaluation on the split its config names (the validation split, on which decisions "
    "are taken).",
  ]
  if figures:
    lines += [
      "",
      "Curves: "
      + ", ".join(f"[{os.path.basename(f)}](paper_rows/{os.path.basename(f)})" for f in figures)
      + ".",
    ]
  for table in dict.fromkeys(row.table for row in rows):
    lines += [
      "",
      f"## {table}",
      "",
      "| row | model | paper | ours | steps | images seen | wall time | CPU hours "
      "| hardware | date | command |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in (r for r in rows if r.table == table):
      paper = f"{row.paper:.2f}" + (" (unverified)" if row.source.startswith("unverified") else "")
      record = read_record(results_dir, row)
      if record is not None:
        cells = finished_status(record)
      elif row.name in in_progress:
        cells = in_progress[row.name]
      else:
        cells = ["not run"] + [""] * 7
      lines.append(f"| `{row.name}` | {row.model} | {paper} | " + " | ".join(cells) + " |")
  lines += ["", "Sources of the paper's numbers:", ""]
  lines += [f"- `{row.name}` ({row.paper:.2f} {row.unit}): {row.source}." for row in rows]
  path = os.path.join(results_dir, "paper_tables.md")
  os.makedirs(results_dir, exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
