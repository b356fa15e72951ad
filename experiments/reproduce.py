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

import os
import shlex
import signal
import sys
import time

from absl import flags

from pixelrnn import cli, pretrained
from pixelrnn.reproduction import curves, paper_rows, piece_log, runner
from pixelrnn.training import stopping

DEFAULT_PIECE_MINUTES = 55  # --rows=next: one piece, committed as soon as it stops.


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
  "workroot", os.path.join(runner.REPO, "experiments", "rows"), "Directory of the rows' workdirs."
)
flags.DEFINE_string(
  "results_dir",
  os.path.join(runner.REPO, "experiments", "results"),
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


def report_piece(row, workdir: str, step: int | None, finished: bool) -> None:
  """After a piece: the table and curves rewritten, a plateau warned of, and the git
  command that commits the row's state."""
  print(f"Wrote {runner.write_table(FLAGS.results_dir, FLAGS.workroot)}")
  flat = piece_log.plateau(curves.eval_curve(workdir))
  if flat is not None and not finished:
    print(
      f"Warning: {row.name} gained {flat:.2f} nats over its last "
      f"{piece_log.PLATEAU_WINDOW_STEPS:,} steps: argue it from its curve and change its "
      "config rather than train it on.",
      flush=True,
    )
  print(
    runner.commit_instructions(
      row, workdir, FLAGS.results_dir, step, finished, FLAGS.pretrained_dir
    ),
    flush=True,
  )


def main(argv):
  del argv
  rows = (
    [] if FLAGS.table_only else runner.selected_rows(FLAGS.rows, FLAGS.recipe, FLAGS.results_dir)
  )
  if not FLAGS.rows and not FLAGS.table_only:
    raise runner.RowError("give --rows (names, 'all' or 'next') or --table_only.")
  if rows:
    cli.split_cpu([runner.load_config(row) for row in rows])
  command = shlex.join(["python", runner.repo_relative(sys.argv[0]), *sys.argv[1:]])
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
        record = runner.run_row(
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
      step = runner.keep_latest_checkpoint(workdir)
    report_piece(row, workdir, step, finished)
    if exit_status or (deadline is not None and time.monotonic() >= deadline):
      break
  if not rows:
    print(f"Wrote {runner.write_table(FLAGS.results_dir, FLAGS.workroot)}")
  sys.exit(exit_status)


if __name__ == "__main__":
  cli.run(main)
