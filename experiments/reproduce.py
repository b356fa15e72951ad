"""Reproduces named rows of the paper's log-likelihood tables (and the Gated PixelCNN's),
in as many pieces as needed.

  python experiments/reproduce.py --rows=bmnist_diagonal_bilstm_7x16 --time_budget_minutes=8
  python experiments/reproduce.py --rows=all --workroot=workdirs/reproduce
  python experiments/reproduce.py --table_only
  python experiments/reproduce.py --rows=bmnist_diagonal_bilstm_7x16 --recipe=large_batch

Each row is a config file and a workdir (--workroot/<row>). With --recipe=large_batch the
binarized-MNIST rows train their networks on batch 128 and a short schedule instead, as
rows named <row>_large_batch. A run resumes the row from
its workdir's latest checkpoint, so a row can be trained in pieces: when
--time_budget_minutes (or --max_steps, steps per row and invocation) is spent, or on
SIGTERM, training stops at a checkpoint and a rerun of the same command continues bit
for bit. Every piece is logged in <workdir>/reproduce_pieces.jsonl (command, hardware,
wall time, steps).

When a row finishes, its EMA parameters are evaluated on the test set at full float32
and the row's record is written to --results_dir/paper_rows/<row>.json with its sample
grid and completion figure beside it; then --results_dir/paper_tables.md is written
anew from the records: paper number, ours, steps, images seen, wall time, hardware,
date and the exact commands. Rows with no record are listed as not run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import runpy
import shlex
import signal
import sys
import time

import jax
from absl import app, flags

from pixelrnn import checkpoints, figures, stopping, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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

  def config_path(self) -> str:
    return os.path.join(REPO, self.config)


TABLE4 = "Table 4: binarized MNIST, test NLL in nats per image"
TABLE5 = "Table 5: CIFAR-10, test NLL in bits/dim"
ICML_T4 = "van den Oord et al. 2016, ICML, Table 4"
ICML_T5 = "van den Oord et al. 2016, ICML, Table 5"
GATED = ("Gated PixelCNN (van den Oord et al. 2016b): binarized MNIST in nats per image, "
         "CIFAR-10 in bits/dim")
ROWS = (
    Row("bmnist_pixelcnn", TABLE4, "PixelCNN", "configs/binarized_mnist_pixelcnn.py", 81.30,
        "nats", "attributed to the paper (likely its arXiv v3) by Gulrajani et al. 2016 "
        "(PixelVAE), Table 1, and by Papers with Code; the network behind it is not given",
        "configs/binarized_mnist_pixelcnn_large_batch.py"),
    Row("bmnist_row_lstm", TABLE4, "Row LSTM", "configs/binarized_mnist_row_lstm.py", 80.54,
        "nats", "unverified: found in no public source",
        "configs/binarized_mnist_row_lstm_large_batch.py"),
    Row("bmnist_diagonal_bilstm_1x32", TABLE4, "Diagonal BiLSTM, 1 layer, h=32",
        "configs/binarized_mnist_diagonal_bilstm_1layer.py", 80.75, "nats", ICML_T4,
        "configs/binarized_mnist_diagonal_bilstm_1layer_large_batch.py"),
    Row("bmnist_diagonal_bilstm_7x16", TABLE4, "Diagonal BiLSTM, 7 layers, h=16",
        "configs/binarized_mnist_diagonal_bilstm.py", 79.20, "nats", ICML_T4,
        "configs/binarized_mnist_diagonal_bilstm_large_batch.py"),
    Row("cifar10_pixelcnn", TABLE5, "PixelCNN", "configs/cifar10_pixelcnn.py", 3.14,
        "bits/dim", ICML_T5),
    Row("cifar10_row_lstm", TABLE5, "Row LSTM", "configs/cifar10_row_lstm.py", 3.07,
        "bits/dim", ICML_T5),
    Row("cifar10_diagonal_bilstm", TABLE5, "Diagonal BiLSTM", "configs/cifar10_diagonal_bilstm.py",
        3.00, "bits/dim", ICML_T5),
    Row("bmnist_gated_pixelcnn", GATED, "Gated PixelCNN, binarized MNIST",
        "configs/binarized_mnist_gated_pixelcnn.py", 80.10, "nats",
        "Gulrajani et al. 2016 (PixelVAE), Table 1; the network behind it is not given"),
    Row("cifar10_gated_pixelcnn", GATED, "Gated PixelCNN, CIFAR-10",
        "configs/cifar10_gated_pixelcnn.py", 3.03, "bits/dim",
        "van den Oord et al. 2016b, \"Conditional Image Generation with PixelCNN Decoders\", "
        "Table 1; the paper does not state this network's size (the config says which size it "
        "uses and why)"),
)

RECIPES = ("paper", "large_batch")
LARGE_BATCH_SUFFIX = "_large_batch"


def recipe_rows(rows, recipe: str) -> list[Row]:
  """`rows` on `recipe`: "paper" (their own configs) or "large_batch" (the rows that have
  a large-batch config, as rows of their own: name + "_large_batch", that config)."""
  if recipe == "paper":
    return list(rows)
  if recipe != "large_batch":
    raise ValueError(f"Unknown recipe {recipe!r}; valid: {list(RECIPES)}.")
  return [dataclasses.replace(row, name=row.name + LARGE_BATCH_SUFFIX,
                              model=f"{row.model}, large-batch recipe",
                              config=row.large_batch_config, large_batch_config=None)
          for row in rows if row.large_batch_config is not None]


PIECES_FILE = "reproduce_pieces.jsonl"


def load_config(row: Row, data_dir: str | None = None, manual_dir: str | None = None):
  """The row's config; TFDS's data_dir and manual_dir (offline builds) if given."""
  config = runpy.run_path(row.config_path())["get_config"]()
  if data_dir is not None:
    config.data.data_dir = data_dir
  if manual_dir is not None:
    config.data.manual_dir = manual_dir
  return config


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
  except OSError:
    names = []
  return names[0] if names else platform.processor() or platform.machine()


def hardware() -> str:
  device = jax.devices()[0]
  kind = device.device_kind if device.platform != "cpu" else cpu_model()
  return (f"{jax.device_count()} x {kind} ({device.platform}), {os.cpu_count()} CPU cores, "
          f"jax {jax.__version__}")


def read_pieces(workdir: str) -> list[dict]:
  path = os.path.join(workdir, PIECES_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def append_piece(workdir: str, piece: dict) -> None:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, PIECES_FILE), "a") as f:
    f.write(json.dumps(piece) + "\n")


def latest_step(workdir: str, config) -> int:
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    return 0
  return checkpoints.manager(workdir, config).latest_step() or 0


def record_path(results_dir: str, row: Row) -> str:
  return os.path.join(results_dir, "paper_rows", f"{row.name}.json")


def read_record(results_dir: str, row: Row) -> dict | None:
  path = record_path(results_dir, row)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def run_row(row: Row, workroot: str, results_dir: str, *, stop: stopping.StopRequests,
            command: str, progress: bool = True, data_dir: str | None = None,
            manual_dir: str | None = None) -> dict:
  """Trains `row` on from its workdir to the end and returns its record.

  Raises stopping.TrainingStopped (after logging the piece) when `stop` ends the piece.
  """
  config = load_config(row, data_dir, manual_dir)
  workdir = os.path.join(workroot, row.name)
  start_step = latest_step(workdir, config)
  started = datetime.datetime.now(datetime.timezone.utc)
  clock = time.perf_counter()

  def log_piece(end_step: int, outcome: str) -> None:
    append_piece(workdir, {
        "command": command, "started": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - clock, 1), "from_step": start_step,
        "to_step": end_step, "outcome": outcome, "hardware": hardware()})

  try:
    metrics = train.train_and_evaluate(config, workdir, progress=progress, should_stop=stop)
  except stopping.TrainingStopped as stopped:
    log_piece(stopped.step, f"stopped: {stopped.reason}")
    raise
  steps = config.training.num_steps
  log_piece(steps, "finished")
  return write_record(row, config, workdir, results_dir, metrics)


def write_record(row: Row, config, workdir: str, results_dir: str, metrics: dict) -> dict:
  """The finished row's record, sample grid and completion figure under results_dir."""
  rows_dir = os.path.join(results_dir, "paper_rows")
  os.makedirs(rows_dir, exist_ok=True)
  samples = figures.write_samples(config, workdir, num_samples=64,
                                  path=os.path.join(rows_dir, f"{row.name}_samples.png"))
  completions = figures.write_completions(
      config, workdir, num_images=8, num_completions=5,
      path=os.path.join(rows_dir, f"{row.name}_completions.png"))
  pieces = read_pieces(workdir)
  ours = metrics["nll_nats"] if row.unit == "nats" else metrics["bits_per_dim"]
  record = {
      "row": row.name, "table": row.table, "model": row.model, "config": row.config,
      "paper": row.paper, "paper_source": row.source, "unit": row.unit,
      "ours": round(ours, 2),
      "nll_nats": metrics["nll_nats"], "bits_per_dim": metrics["bits_per_dim"],
      "eval_split": config.data.eval_split, "eval_precision": "float32 (HIGHEST)",
      "training_precision": config.training.precision,
      "steps": config.training.num_steps, "batch_size": config.training.batch_size,
      "images_seen": config.training.num_steps * config.training.batch_size,
      "wall_time_s": round(sum(p["wall_s"] for p in pieces), 1),
      "hardware": sorted({p["hardware"] for p in pieces}),
      "date": datetime.date.today().isoformat(),
      "commands": [p["command"] for p in pieces],
      "pieces": pieces,
      "samples_png": os.path.basename(samples["png"]),
      "completions_png": os.path.basename(completions["png"]),
  }
  tmp = record_path(results_dir, row) + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=2)
  os.replace(tmp, record_path(results_dir, row))
  return record


def format_duration(seconds: float) -> str:
  minutes = round(seconds / 60)
  return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def write_table(rows, results_dir: str, workroot: str | None = None) -> str:
  """Writes results_dir/paper_tables.md from the records; returns its path."""
  lines = [
      "# The paper's tables, reproduced",
      "",
      "Written by `experiments/reproduce.py` from the records in `paper_rows/`; do not edit by "
      "hand. Ours: the test-set NLL of the EMA parameters, evaluated at full float32.",
  ]
  for table in dict.fromkeys(row.table for row in rows):
    lines += ["", f"## {table}", "",
              "| row | model | paper | ours | steps | images seen | wall time | hardware | date "
              "| command |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in (r for r in rows if r.table == table):
      paper = f"{row.paper:.2f}" + (" (unverified)" if row.source.startswith("unverified") else "")
      record = read_record(results_dir, row)
      if record is None:
        status = "not run"
        if workroot is not None:
          config = load_config(row)
          step = latest_step(os.path.join(workroot, row.name), config)
          if step:
            status = f"in progress: step {step:,} of {config.training.num_steps:,}"
        lines.append(f"| `{row.name}` | {row.model} | {paper} | {status} | | | | | | |")
        continue
      commands = "<br>".join(f"`{c}`" for c in record["commands"])
      lines.append(
          f"| `{row.name}` | {row.model} | {paper} | **{record['ours']:.2f}** "
          f"| {record['steps']:,} | {record['images_seen']:,} "
          f"| {format_duration(record['wall_time_s'])} | {'; '.join(record['hardware'])} "
          f"| {record['date']} | {commands} |")
  lines += ["", "Sources of the paper's numbers:", ""]
  lines += [f"- `{row.name}` ({row.paper:.2f} {row.unit}): {row.source}." for row in rows]
  path = os.path.join(results_dir, "paper_tables.md")
  os.makedirs(results_dir, exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


FLAGS = flags.FLAGS
flags.DEFINE_list("rows", [], f"Rows to run, in order, or 'all': {[r.name for r in ROWS]}.")
flags.DEFINE_enum("recipe", "paper", RECIPES, "paper: each row's own config (the paper's "
                  "batch 16 and schedule); large_batch: the same network on batch 128 and a "
                  "short schedule (binarized-MNIST rows), recorded as <row>_large_batch.")
flags.DEFINE_string("workroot", os.path.join(REPO, "workdirs", "reproduce"),
                    "Directory of the rows' workdirs.")
flags.DEFINE_string("results_dir", os.path.join(REPO, "experiments", "results"),
                    "Where paper_rows/ and paper_tables.md are written.")
flags.DEFINE_float("time_budget_minutes", None, "Stop at a checkpoint once this much time has "
                   "passed since the start (the running row's final evaluation and figures "
                   "are not interrupted); rerun to continue.")
flags.DEFINE_integer("max_steps", None, "Steps each row may take in this invocation.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir for the CIFAR-10 rows.")
flags.DEFINE_string("manual_dir", None, "TFDS manual_dir holding cifar-10-binary.tar.gz, to build "
                    "CIFAR-10 offline.")
flags.DEFINE_bool("table_only", False, "Only rewrite paper_tables.md from the records.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def selected_rows(names: list[str], recipe: str) -> list[Row]:
  """The rows named (by their paper-recipe names), on `recipe`."""
  by_name = {row.name: row for row in ROWS if recipe_rows([row], recipe)}
  if names == ["all"]:
    names = list(by_name)
  unknown = [n for n in names if n not in by_name]
  if unknown:
    raise app.UsageError(f"Unknown rows {unknown} for --recipe={recipe}; valid: {list(by_name)} "
                         "or 'all'.")
  return recipe_rows([by_name[n] for n in names], recipe)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  rows = selected_rows(FLAGS.rows, FLAGS.recipe)
  if not rows and not FLAGS.table_only:
    raise app.UsageError("Give --rows (or --table_only).")
  command = shlex.join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), REPO),
                        *sys.argv[1:]])
  deadline = (None if FLAGS.time_budget_minutes is None
              else time.monotonic() + 60 * FLAGS.time_budget_minutes)
  exit_status = 0
  for row in ([] if FLAGS.table_only else rows):
    if read_record(FLAGS.results_dir, row) is not None:
      print(f"{row.name}: already recorded in {record_path(FLAGS.results_dir, row)}.")
      continue
    print(f"{row.name}: {row.model}, paper {row.paper} {row.unit}.", flush=True)
    try:
      with stopping.StopRequests(deadline_s=deadline, max_steps=FLAGS.max_steps) as stop:
        record = run_row(row, FLAGS.workroot, FLAGS.results_dir, stop=stop, command=command,
                         progress=FLAGS.progress, data_dir=FLAGS.data_dir,
                         manual_dir=FLAGS.manual_dir)
    except stopping.TrainingStopped as stopped:
      print(f"{row.name}: {stopped}")
      if stopped.reason in ("SIGTERM", "SIGINT"):
        exit_status = 128 + getattr(signal, stopped.reason)
        break
      if deadline is not None and time.monotonic() >= deadline:
        break
      continue
    print(f"{row.name}: test NLL {record['ours']} {row.unit} (paper {row.paper}).", flush=True)
  table_rows = [r for recipe in RECIPES for r in recipe_rows(ROWS, recipe)]
  print(f"Wrote {write_table(table_rows, FLAGS.results_dir, FLAGS.workroot)}")
  sys.exit(exit_status)


if __name__ == "__main__":
  app.run(main)
