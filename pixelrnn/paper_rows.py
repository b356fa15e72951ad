"""The rows of the paper's tables: what each trains, the number it is compared with, the
log of its pieces, its record once finished, and the table and curves written from them.

A row is trained in pieces (`experiments/reproduce.py`), each resuming the row's workdir.
Every piece appends one line to workdir/reproduce_pieces.jsonl and rewrites it at every
checkpoint, so a piece killed outright keeps its record up to its last checkpoint
(outcome "running" until the piece ends; the next piece marks it as killed).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time

from pixelrnn import curves, progress

TABLE4 = "Table 4: binarized MNIST, test NLL in nats per image"
TABLE5 = "Table 5: CIFAR-10, test NLL in bits/dim"
ICML_T4 = "van den Oord et al. 2016, ICML, Table 4"
ICML_T5 = "van den Oord et al. 2016, ICML, Table 5"
GATED = (
  "Gated PixelCNN (van den Oord et al. 2016b): binarized MNIST in nats per image, "
  "CIFAR-10 in bits/dim"
)


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a paper table: what to train, and the number to compare with."""

  name: str
  table: str
  model: str
  config: str  # Config file, relative to the repository root (or absolute).
  paper: float
  unit: str  # "nats" (per image) or "bits/dim".
  source: str
  large_batch_config: str | None = None  # The same network on the large-batch recipe.


ROWS = (
  Row(
    "bmnist_pixelcnn",
    TABLE4,
    "PixelCNN",
    "configs/binarized_mnist_pixelcnn.py",
    81.30,
    "nats",
    "attributed to the paper (likely its arXiv v3) by Gulrajani et al. 2016 "
    "(PixelVAE), Table 1, and by Papers with Code; the network behind it is not given",
    "configs/binarized_mnist_pixelcnn_large_batch.py",
  ),
  Row(
    "bmnist_row_lstm",
    TABLE4,
    "Row LSTM",
    "configs/binarized_mnist_row_lstm.py",
    80.54,
    "nats",
    "unverified: found in no public source",
    "configs/binarized_mnist_row_lstm_large_batch.py",
  ),
  Row(
    "bmnist_diagonal_bilstm_1x32",
    TABLE4,
    "Diagonal BiLSTM, 1 layer, h=32",
    "configs/binarized_mnist_diagonal_bilstm_1layer.py",
    80.75,
    "nats",
    ICML_T4,
    "configs/binarized_mnist_diagonal_bilstm_1layer_large_batch.py",
  ),
  Row(
    "bmnist_diagonal_bilstm_7x16",
    TABLE4,
    "Diagonal BiLSTM, 7 layers, h=16",
    "configs/binarized_mnist_diagonal_bilstm.py",
    79.20,
    "nats",
    ICML_T4,
    "configs/binarized_mnist_diagonal_bilstm_large_batch.py",
  ),
  Row(
    "cifar10_pixelcnn", TABLE5, "PixelCNN", "configs/cifar10_pixelcnn.py", 3.14, "bits/dim", ICML_T5
  ),
  Row(
    "cifar10_row_lstm", TABLE5, "Row LSTM", "configs/cifar10_row_lstm.py", 3.07, "bits/dim", ICML_T5
  ),
  Row(
    "cifar10_diagonal_bilstm",
    TABLE5,
    "Diagonal BiLSTM",
    "configs/cifar10_diagonal_bilstm.py",
    3.00,
    "bits/dim",
    ICML_T5,
  ),
  Row(
    "bmnist_gated_pixelcnn",
    GATED,
    "Gated PixelCNN, binarized MNIST",
    "configs/binarized_mnist_gated_pixelcnn.py",
    80.10,
    "nats",
    "Gulrajani et al. 2016 (PixelVAE), Table 1; the network behind it is not given",
  ),
  Row(
    "cifar10_gated_pixelcnn",
    GATED,
    "Gated PixelCNN, CIFAR-10",
    "configs/cifar10_gated_pixelcnn.py",
    3.03,
    "bits/dim",
    'van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders", '
    "Table 1; the paper does not state this network's size (the config says which size it "
    "uses and why)",
  ),
)

# The rows trained in the background of every session (`--rows=next` takes the first
# one not recorded yet, skipping those held back).
CONTINUE_ORDER = (
  "bmnist_diagonal_bilstm_1x32",
  "bmnist_pixelcnn",
  "bmnist_row_lstm",
  "bmnist_diagonal_bilstm_7x16",
  "bmnist_gated_pixelcnn",
)
HELD_BACK: dict[str, str] = {}  # Name -> why `--rows=next` skips it, e.g. a network not decided.

RECIPES = ("paper", "large_batch")
LARGE_BATCH_SUFFIX = "_large_batch"
PIECES_FILE = "reproduce_pieces.jsonl"


def recipe_rows(rows, recipe: str) -> list[Row]:
  """`rows` on `recipe`: "paper" (their own configs) or "large_batch" (the rows that have
  a large-batch config, as rows of their own: name + "_large_batch", that config)."""
  if recipe == "paper":
    return list(rows)
  if recipe != "large_batch":
    raise ValueError(f"Unknown recipe {recipe!r}; valid: {list(RECIPES)}.")
  return [
    dataclasses.replace(
      row,
      name=row.name + LARGE_BATCH_SUFFIX,
      model=f"{row.model}, large-batch recipe",
      config=row.large_batch_config,
      large_batch_config=None,
    )
    for row in rows
    if row.large_batch_config is not None
  ]


def all_rows() -> list[Row]:
  return [row for recipe in RECIPES for row in recipe_rows(ROWS, recipe)]


# --- Records -------------------------------------------------------------------------


def record_path(results_dir: str, row: Row) -> str:
  return os.path.join(results_dir, "paper_rows", f"{row.name}.json")


def read_record(results_dir: str, row: Row) -> dict | None:
  path = record_path(results_dir, row)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_json(path: str, value) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2)
    f.write("\n")
  os.replace(tmp, path)


def next_row(
  results_dir: str, order=CONTINUE_ORDER, held_back=None
) -> tuple[Row | None, list[str]]:
  """The first row of `order` with no record, and a line for each row skipped before it."""
  held_back = HELD_BACK if held_back is None else held_back
  by_name = {row.name: row for row in ROWS}
  skipped = []
  for name in order:
    row = by_name[name]
    if read_record(results_dir, row) is not None:
      skipped.append(f"{name}: recorded")
    elif name in held_back:
      skipped.append(f"{name}: held back, {held_back[name]}")
    else:
      return row, skipped
  return None, skipped


# --- The pieces log ------------------------------------------------------------------


def read_pieces(workdir: str) -> list[dict]:
  path = os.path.join(workdir, PIECES_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _write_pieces(workdir: str, pieces: list[dict]) -> None:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, PIECES_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(piece) + "\n" for piece in pieces)
  os.replace(tmp, path)


class PieceLog:
  """This piece's line of workdir/reproduce_pieces.jsonl, rewritten at every `update`.

  Fields: command, started, wall_s and cpu_s (this process's CPU time, all threads),
  from_step, to_step (the last checkpoint), eval_split, outcome, hardware.
  """

  def __init__(self, workdir: str, *, command: str, from_step: int, eval_split: str, hardware: str):
    self.workdir = workdir
    self._clock, self._cpu = time.perf_counter(), time.process_time()
    self.piece = {
      "command": command,
      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "wall_s": 0.0,
      "cpu_s": 0.0,
      "from_step": from_step,
      "to_step": from_step,
      "eval_split": eval_split,
      "outcome": "running",
      "hardware": hardware,
    }
    self._earlier = None  # The lines of earlier pieces, read at the first update.

  def update(self, step: int, outcome: str = "running") -> None:
    """Records that the piece reached checkpoint `step` (or ended, with `outcome`)."""
    if self._earlier is None:
      # Read once the piece holds the workdir's lock (its first checkpoint): an earlier
      # piece still "running" is one that was killed after its last checkpoint.
      self._earlier = [
        {**p, "outcome": f"killed after its checkpoint at step {p['to_step']}"}
        if p.get("outcome") == "running"
        else p
        for p in read_pieces(self.workdir)
      ]
    self.piece.update(
      wall_s=round(time.perf_counter() - self._clock, 1),
      cpu_s=round(time.process_time() - self._cpu, 1),
      to_step=step,
      outcome=outcome,
    )
    _write_pieces(self.workdir, self._earlier + [self.piece])


def eval_split(pieces: list[dict]) -> str:
  """The split the latest piece that names one evaluated on ("eval" if none does)."""
  return next((p["eval_split"] for p in reversed(pieces) if "eval_split" in p), "eval")


def totals(pieces: list[dict]) -> dict:
  """Wall and CPU seconds over `pieces` (CPU time None if a piece did not record it)."""
  cpu = [p.get("cpu_s") for p in pieces]
  return {
    "wall_s": round(sum(p["wall_s"] for p in pieces), 1),
    "cpu_s": None if None in cpu else round(sum(cpu), 1),
  }


# --- The table and the curves --------------------------------------------------------

PLATEAU_WINDOW_STEPS = 30_000
PLATEAU_MIN_GAIN = 0.1  # Nats over the window: less, and the row has stopped improving.


def plateau(
  curve, window: int = PLATEAU_WINDOW_STEPS, min_gain: float = PLATEAU_MIN_GAIN
) -> float | None:
  """The NLL gained over the last `window` steps of an evaluation curve ((step, NLL),
  in step order) when it is under `min_gain`: the row has stopped improving and should
  be argued from its curve, not trained on. None while it improves, or while the curve
  is shorter than the window."""
  if not curve or curve[-1][0] - curve[0][0] < window:
    return None
  last_step = curve[-1][0]
  before = [nll for step, nll in curve if step <= last_step - window][-1]
  gain = before - min(nll for step, nll in curve if step > last_step - window)
  return gain if gain < min_gain else None


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
