"""Running the paper's rows piece by piece: a row's config and workdir, training it on
from its newest checkpoint, its record when it finishes, the pieces' bookkeeping (older
checkpoints pruned, the git command that commits the state) and the table.
`experiments/reproduce.py` is its command line."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import shutil

import jax

from pixelrnn import cli, errors, pretrained
from pixelrnn.reproduction import paper_rows, piece_log, tables
from pixelrnn.sampling import figures
from pixelrnn.training import stopping, train
from pixelrnn.workdir import checkpoints
from pixelrnn.workdir import lock as lock_lib

# The repository this package is checked out in (rows live in the repository, not in
# an installed package): the parent of the package folder.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
