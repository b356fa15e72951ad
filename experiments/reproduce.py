"""Reproduces named rows of the paper's log-likelihood tables (and the Gated PixelCNN's),
in as many pieces as needed.

  python experiments/reproduce.py --rows=next                  # the background row, 55 min
  python experiments/reproduce.py --rows=bmnist_diagonal_bilstm_7x16 --time_budget_minutes=8
  python experiments/reproduce.py --table_only
  python experiments/reproduce.py --rows=bmnist_diagonal_bilstm_7x16 --recipe=large_batch

Each row is a config file and a workdir, --workroot/<row> (default experiments/rows, in
the repository, so that the next session on any machine continues it). `--rows=next`
takes the first row of `paper_rows.CONTINUE_ORDER` that is not recorded. A run resumes
the row from its workdir's latest checkpoint: when --time_budget_minutes (or
--max_steps, steps per row and invocation) is spent, or on SIGTERM, training stops at a
checkpoint, the older checkpoints are removed, and the `git add` that commits the row's
state is printed; a rerun continues bit for bit. Every piece is logged in
<workdir>/reproduce_pieces.jsonl at every checkpoint (command, hardware, wall and CPU
time, steps). Progress is one line per --report_every_steps steps.

When a row finishes, its EMA parameters are evaluated on the test set at full float32
and its record is written to --results_dir/paper_rows/<row>.json with its sample grid
and completion figure beside it. Every invocation rewrites --results_dir/paper_tables.md
(finished rows, rows in progress with their latest validation NLL, rows not run) and the
curves: paper_rows/<row>_curve.png and paper_rows/all_rows_curve.png.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import shutil
import signal
import sys
import time

import jax
from absl import flags

from pixelrnn import cli, errors, pretrained
from pixelrnn.reproduction import curves, paper_rows, piece_log, tables
from pixelrnn.sampling import figures
from pixelrnn.training import stopping, train
from pixelrnn.workdir import checkpoints
from pixelrnn.workdir import lock as lock_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PIECE_MINUTES = 55  # --rows=next: one piece, committed as soon as it stops.


class RowError(errors.UserError, ValueError):
  """An unknown row, or a row request that cannot be carried out."""


def config_path(row: paper_rows.Row) -> str:
  return os.path.join(REPO, row.config)


def load_config(row: paper_rows.Row, data_dir: str | None = None, manual_dir: str | None = None):
  """The row's config; TFDS's data_dir and manual_dir (offline builds) if given."""
  config = cli.load_config(config_path(row))
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
  return (
    f"{jax.device_count()} x {kind} ({device.platform}), {os.cpu_count()} CPU cores, "
    f"jax {jax.__version__}"
  )


def latest_step(workdir: str, config) -> int:
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    return 0
  return checkpoints.manager(workdir, config).latest_step() or 0


def repo_relative(path: str) -> str:
  """`path` relative to the repository root when inside it, else absolute."""
  path = os.path.abspath(path)
  inside = os.path.commonpath([path, REPO]) == REPO
  return os.path.relpath(path, REPO) if inside else path


def unreadable_checkpoint(error: checkpoints.CheckpointError, workdir: str) -> RowError:
  rel = repo_relative(workdir)
  return RowError(
    f"{error} The row's state is committed in git, one checkpoint per commit: "
    f"`git log --oneline -- {rel}` lists those commits, and `git checkout <commit> -- {rel}` "
    "brings back the state of the one before the last (delete the unreadable checkpoint "
    "folder first)."
  )


def run_row(
  row: paper_rows.Row,
  workroot: str,
  results_dir: str,
  *,
  stop: stopping.StopRequests,
  command: str,
  progress: bool = True,
  report_every_steps: int = 1000,
  data_dir: str | None = None,
  manual_dir: str | None = None,
  pretrained_dir: str | None = None,
) -> dict:
  """Trains `row` on from its workdir to the end and returns its record.

  Raises stopping.TrainingStopped (after logging the piece) when `stop` ends the piece.
  A finished row's EMA parameters are installed as a pretrained model under
  `pretrained_dir` (none without it).
  """
  config = load_config(row, data_dir, manual_dir)
  workdir = os.path.join(workroot, row.name)
  log = piece_log.PieceLog(
    workdir,
    command=command,
    from_step=latest_step(workdir, config),
    eval_split=config.data.eval_split,
    hardware=hardware(),
  )
  try:
    metrics = train.train_and_evaluate(
      config,
      workdir,
      progress=progress,
      progress_lines_every=report_every_steps,
      should_stop=stop,
      on_checkpoint=log.update,
    )
  except stopping.TrainingStopped as stopped:
    log.update(stopped.step, f"stopped: {stopped.reason}")
    raise
  except checkpoints.CheckpointError as e:
    raise unreadable_checkpoint(e, workdir) from e
  log.update(config.training.num_steps, "finished")
  record = write_record(row, config, workdir, results_dir, metrics)
  if pretrained_dir is not None:
    pretrained.export_checkpoint(config, workdir, record, row.name, root=pretrained_dir)
  return record


def write_record(
  row: paper_rows.Row, config, workdir: str, results_dir: str, final_eval: dict
) -> dict:
  """The finished row's record (its test NLL, evaluated here once), sample grid and
  completion figure under results_dir."""
  test_config = config.copy_and_resolve_references()
  test_config.data.eval_split = "test"
  test = train.evaluate_checkpoint(test_config, workdir)
  rows_dir = os.path.join(results_dir, "paper_rows")
  os.makedirs(rows_dir, exist_ok=True)
  samples = figures.write_samples(
    config, workdir, num_samples=64, path=os.path.join(rows_dir, f"{row.name}_samples.png")
  )
  completions = figures.write_completions(
    test_config,
    workdir,
    num_images=8,
    num_completions=5,
    path=os.path.join(rows_dir, f"{row.name}_completions.png"),
  )
  pieces = piece_log.read_pieces(workdir)
  spent = piece_log.totals(pieces)
  ours = test["nll_nats"] if row.unit == "nats" else test["bits_per_dim"]
  record = {
    "row": row.name,
    "table": row.table,
    "model": row.model,
    "config": row.config,
    "paper": row.paper,
    "paper_source": row.source,
    "unit": row.unit,
    "ours": round(ours, 2),
    "nll_nats": test["nll_nats"],
    "bits_per_dim": test["bits_per_dim"],
    "eval_split": "test",
    "eval_precision": "float32 (HIGHEST)",
    "training_eval_split": config.data.eval_split,
    "training_eval_nll_nats": final_eval["nll_nats"],
    "training_precision": config.training.precision,
    "steps": config.training.num_steps,
    "batch_size": config.training.batch_size,
    "images_seen": config.training.num_steps * config.training.batch_size,
    "wall_time_s": spent["wall_s"],
    "cpu_time_s": spent["cpu_s"],
    "hardware": sorted({p["hardware"] for p in pieces}),
    "date": datetime.date.today().isoformat(),
    "commands": [p["command"] for p in pieces],
    "pieces": pieces,
    "samples_png": os.path.basename(samples["png"]),
    "completions_png": os.path.basename(completions["png"]),
  }
  paper_rows.write_json(paper_rows.record_path(results_dir, row), record)
  return record


def keep_latest_checkpoint(workdir: str) -> int | None:
  """Removes every checkpoint of workdir but the latest complete one; returns its step."""
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    return None
  with lock_lib.WorkdirLock(workdir):
    steps = sorted(
      int(name)
      for name in os.listdir(folder)
      if name.isdigit() and os.path.exists(os.path.join(folder, name, "commit_success.txt"))
    )
    for step in steps[:-1]:
      shutil.rmtree(os.path.join(folder, str(step)))
  return steps[-1] if steps else None


def commit_instructions(
  row: paper_rows.Row,
  workdir: str,
  results_dir: str,
  step: int | None,
  finished: bool,
  pretrained_dir: str | None = None,
) -> str:
  paths = [repo_relative(workdir), repo_relative(results_dir)]
  if finished and pretrained_dir is not None:
    paths.append(repo_relative(os.path.join(pretrained_dir, row.name)))
  what = "finished" if finished else f"at step {step:,}" if step else "with no checkpoint"
  return (
    f"{row.name}: the row's state {what}. Commit it now, from the repository root:\n"
    f"  git add -A -- {' '.join(shlex.quote(p) for p in paths)} && "
    f"git commit -m {shlex.quote(f'Row {row.name}: ' + (what if finished else f'step {step}'))}"
  )


def selected_rows(names: list[str], recipe: str, results_dir: str) -> list[paper_rows.Row]:
  """The rows named (by their paper-recipe names), on `recipe`; 'next': the first row of
  the continue order with no record; 'all': every row."""
  if names == ["next"]:
    row, skipped = paper_rows.next_row(results_dir)
    for line in skipped:
      print(line)
    return [] if row is None else paper_rows.recipe_rows([row], recipe)
  by_name = {row.name: row for row in paper_rows.ROWS if paper_rows.recipe_rows([row], recipe)}
  if names == ["all"]:
    names = list(by_name)
  unknown = [n for n in names if n not in by_name]
  if unknown:
    raise RowError(
      f"Unknown rows {unknown} for --recipe={recipe}; valid: {list(by_name)}, 'all' or 'next'."
    )
  return paper_rows.recipe_rows([by_name[n] for n in names], recipe)


def write_table(results_dir: str, workroot: str) -> str:
  """paper_tables.md and the curves, from the records and the workdirs under workroot."""
  rows = paper_rows.all_rows()
  workdirs = {row.name: os.path.join(workroot, row.name) for row in rows}
  in_progress = {}
  for row in rows:
    if paper_rows.read_record(results_dir, row) is None and os.path.isdir(workdirs[row.name]):
      config = load_config(row)
      step = latest_step(workdirs[row.name], config)
      if step:
        in_progress[row.name] = tables.in_progress_status(
          row, workdirs[row.name], step, config.training.num_steps, config.training.batch_size
        )
  figures_written = tables.write_curves(rows, results_dir, workdirs)
  return tables.write_table(rows, results_dir, in_progress, figures_written)


FLAGS = flags.FLAGS
flags.DEFINE_list(
  "rows",
  [],
  "Rows to run, in order; 'all'; or 'next', the first unrecorded row "
  f"of {list(paper_rows.CONTINUE_ORDER)}. Rows: {[r.name for r in paper_rows.ROWS]}.",
)
flags.DEFINE_enum(
  "recipe",
  "paper",
  paper_rows.RECIPES,
  "paper: each row's own config (the "
  "paper's batch 16 and schedule); large_batch: the same network on batch 128 "
  "and a short schedule (binarized-MNIST rows), recorded as <row>_large_batch.",
)
flags.DEFINE_string(
  "workroot", os.path.join(REPO, "experiments", "rows"), "Directory of the rows' workdirs."
)
flags.DEFINE_string(
  "results_dir",
  os.path.join(REPO, "experiments", "results"),
  "Where paper_rows/ and paper_tables.md are written.",
)
flags.DEFINE_float(
  "time_budget_minutes",
  None,
  "Stop at a checkpoint once this much time has "
  "passed since the start (the running row's final evaluation and figures "
  f"are not interrupted); rerun to continue. --rows=next: {DEFAULT_PIECE_MINUTES} "
  "unless given.",
  lower_bound=0,
)
flags.DEFINE_integer(
  "max_steps", None, "Steps each row may take in this invocation.", lower_bound=1
)
flags.DEFINE_integer(
  "report_every_steps", 1000, "One progress line per this many steps.", lower_bound=1
)
flags.DEFINE_string("data_dir", None, "TFDS data_dir for the CIFAR-10 rows.")
flags.DEFINE_string(
  "manual_dir", None, "TFDS manual_dir holding cifar-10-binary.tar.gz, to build CIFAR-10 offline."
)
flags.DEFINE_string(
  "pretrained_dir",
  pretrained.PRETRAINED_DIR,
  "Where a finished row's EMA "
  "parameters are installed as a pretrained model (the package's own folder).",
)
flags.DEFINE_bool("table_only", False, "Only rewrite paper_tables.md and the curves.")
flags.DEFINE_bool("progress", True, "Print progress lines.")


def main(argv):
  del argv
  rows = [] if FLAGS.table_only else selected_rows(FLAGS.rows, FLAGS.recipe, FLAGS.results_dir)
  if not FLAGS.rows and not FLAGS.table_only:
    raise RowError("give --rows (names, 'all' or 'next') or --table_only.")
  command = shlex.join(["python", repo_relative(sys.argv[0]), *sys.argv[1:]])
  budget = FLAGS.time_budget_minutes
  if budget is None and FLAGS.rows == ["next"]:
    budget = DEFAULT_PIECE_MINUTES
  deadline = None if budget is None else time.monotonic() + 60 * budget
  exit_status = 0
  for row in rows:
    if paper_rows.read_record(FLAGS.results_dir, row) is not None:
      print(f"{row.name}: already recorded in {paper_rows.record_path(FLAGS.results_dir, row)}.")
      continue
    print(f"{row.name}: {row.model}, paper {row.paper} {row.unit}.", flush=True)
    workdir = os.path.join(FLAGS.workroot, row.name)
    finished = False
    try:
      with stopping.StopRequests(deadline_s=deadline, max_steps=FLAGS.max_steps) as stop:
        record = run_row(
          row,
          FLAGS.workroot,
          FLAGS.results_dir,
          stop=stop,
          command=command,
          progress=FLAGS.progress,
          report_every_steps=FLAGS.report_every_steps,
          data_dir=FLAGS.data_dir,
          manual_dir=FLAGS.manual_dir,
          pretrained_dir=FLAGS.pretrained_dir,
        )
      finished = True
      print(f"{row.name}: test NLL {record['ours']} {row.unit} (paper {row.paper}).", flush=True)
    except stopping.TrainingStopped as stopped:
      print(f"{row.name}: {stopped}", flush=True)
      if stopped.reason in ("SIGTERM", "SIGINT"):
        exit_status = 128 + getattr(signal, stopped.reason)
    finally:
      step = keep_latest_checkpoint(workdir)
    print(f"Wrote {write_table(FLAGS.results_dir, FLAGS.workroot)}")
    flat = piece_log.plateau(curves.eval_curve(workdir))
    if flat is not None and not finished:
      print(
        f"Warning: {row.name} gained {flat:.2f} nats over its last "
        f"{piece_log.PLATEAU_WINDOW_STEPS:,} steps: argue it from its curve and change its "
        "config rather than train it on.",
        flush=True,
      )
    print(
      commit_instructions(row, workdir, FLAGS.results_dir, step, finished, FLAGS.pretrained_dir),
      flush=True,
    )
    if exit_status or (deadline is not None and time.monotonic() >= deadline):
      break
  if not rows:
    print(f"Wrote {write_table(FLAGS.results_dir, FLAGS.workroot)}")
  sys.exit(exit_status)


if __name__ == "__main__":
  cli.run(main)
