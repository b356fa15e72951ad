"""experiments/reproduce.py: a row trained in pieces equals one uninterrupted run, also when
its state is committed to git and continued from a fresh clone; the table is written from
the records and the workdirs (finished, in progress, not run); bad input gets one line."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT, experiment, tiny_config_file, truncate_arrays
from PIL import Image

from pixelrnn.reproduction import paper_rows, piece_log, runner, tables
from pixelrnn.training import stopping
from pixelrnn.training import trainer as trainer_lib
from pixelrnn.workdir import checkpoints, metric_writers

reproduce = experiment("reproduce")


@pytest.fixture
def tiny_row(tmp_path):
  path = tiny_config_file(
    tmp_path / "tiny_config.py",
    num_steps=4,
    checkpoint_every=1,
    eval_every=2,
    eval_split="validation",
  )
  return paper_rows.Row(
    "tiny_pixelcnn", "Table T: tiny rows", "tiny PixelCNN", path, 100.0, "nats", "a test"
  )


def restored_state(row, workroot):
  config = runner.load_config(row)
  trainer = trainer_lib.Trainer(config, (28, 28, 1), 2, trainer_lib.make_mesh())
  manager = checkpoints.manager(str(workroot / row.name), config)
  return jax.device_get(checkpoints.restore(manager, trainer.abstract_state()))


def run_piece(row, workroot, steps=None, command="piece"):
  """One piece of `row` as reproduce.main runs it: at most `steps` steps, then only the
  latest checkpoint kept. Returns the record, or None when the piece stopped early."""
  try:
    return runner.run_row(
      row,
      str(workroot),
      str(workroot / "results"),
      stop=stopping.StopRequests(max_steps=steps),
      command=command,
      progress=False,
    )
  except stopping.TrainingStopped:
    return None
  finally:
    runner.keep_latest_checkpoint(str(workroot / row.name))


def test_a_row_run_in_two_step_pieces_equals_one_run_and_is_recorded(tmp_path, tiny_row):
  pieces, whole = tmp_path / "pieces", tmp_path / "whole"
  with pytest.raises(stopping.TrainingStopped, match="step budget of 2 spent.*at step 2"):
    runner.run_row(
      tiny_row,
      str(pieces),
      str(pieces / "results"),
      stop=stopping.StopRequests(max_steps=2),
      command="first",
      progress=False,
    )
  assert paper_rows.read_record(str(pieces / "results"), tiny_row) is None
  record = runner.run_row(
    tiny_row,
    str(pieces),
    str(pieces / "results"),
    stop=stopping.StopRequests(max_steps=2),
    command="second",
    progress=False,
  )
  reference = runner.run_row(
    tiny_row,
    str(whole),
    str(whole / "results"),
    stop=stopping.StopRequests(),
    command="whole",
    progress=False,
  )
  jax.tree.map(
    np.testing.assert_array_equal, restored_state(tiny_row, pieces), restored_state(tiny_row, whole)
  )
  assert record["nll_nats"] == reference["nll_nats"]

  assert record == paper_rows.read_record(str(pieces / "results"), tiny_row)
  assert record["ours"] == round(record["nll_nats"], 2) and record["paper"] == 100.0
  assert (record["steps"], record["batch_size"], record["images_seen"]) == (4, 8, 32)
  # Trained against the validation split; the record is the test split's, evaluated once.
  assert record["eval_split"] == "test" and record["eval_precision"] == "float32 (HIGHEST)"
  assert record["training_eval_split"] == "validation"
  assert record["nll_nats"] != record["training_eval_nll_nats"]
  assert record["commands"] == ["first", "second"]
  assert [(p["from_step"], p["to_step"]) for p in record["pieces"]] == [(0, 2), (2, 4)]
  assert record["pieces"][0]["outcome"] == "stopped: step budget of 2 spent"
  assert record["pieces"][1]["outcome"] == "finished"
  assert record["wall_time_s"] == pytest.approx(
    sum(p["wall_s"] for p in record["pieces"]), abs=0.11
  )
  assert (
    0 < record["cpu_time_s"] == pytest.approx(sum(p["cpu_s"] for p in record["pieces"]), abs=0.11)
  )
  assert record["hardware"] and "jax" in record["hardware"][0]
  rows_dir = pieces / "results" / "paper_rows"
  assert Image.open(rows_dir / record["samples_png"]).size == (8 * 58 + 2, 8 * 58 + 2)
  assert Image.open(rows_dir / record["completions_png"]).size == (7 * 58 + 2, 8 * 58 + 2)

  not_run = paper_rows.ROWS[0]
  table = tmp_path / "pieces" / "results" / "paper_tables.md"
  assert tables.write_table([tiny_row, not_run], str(pieces / "results"), {}, []) == str(table)
  text = table.read_text()
  assert "## Table T: tiny rows" in text
  cpu_hours = f"{record['cpu_time_s'] / 3600:.2f}"
  assert (
    f"| `tiny_pixelcnn` | tiny PixelCNN | 100.00 | **{record['ours']:.2f}** | 4 | 32 | 0 min | "
    f"{cpu_hours} | {record['hardware'][0]} | {record['date']} | `first`<br>`second` |"
  ) in text
  assert f"| `{not_run.name}` | {not_run.model} | {not_run.paper:.2f} | not run |" in text


def test_the_pieces_log_is_written_at_every_checkpoint_and_a_killed_piece_keeps_its_record(
  tmp_path, tiny_row
):
  workdir = tmp_path / tiny_row.name
  seen = []

  def stop_after_reading_the_log(step):
    seen.append(piece_log.read_pieces(str(workdir)))
    return "test stop" if step == 3 else None

  with pytest.raises(stopping.TrainingStopped):
    runner.run_row(
      tiny_row,
      str(tmp_path),
      str(tmp_path / "results"),
      stop=stop_after_reading_the_log,
      command="piece",
      progress=False,
    )
  # Asked after step s, before that step's checkpoint: the log holds step s - 1's.
  assert [p[-1]["to_step"] for p in seen[1:]] == [1, 2]
  assert all(
    p[-1]["outcome"] == "running" and p[-1]["eval_split"] == "validation" for p in seen[1:]
  )
  assert piece_log.read_pieces(str(workdir))[-1]["outcome"] == "stopped: test stop"

  # A piece killed after its checkpoint at step 3 (its line still "running") is marked as
  # killed by the next piece, which continues from that checkpoint.
  killed = piece_log.read_pieces(str(workdir))
  killed[-1]["outcome"] = "running"
  (workdir / piece_log.PIECES_FILE).write_text("".join(json.dumps(p) + "\n" for p in killed))
  run_piece(tiny_row, tmp_path)
  pieces = piece_log.read_pieces(str(workdir))
  assert [p["outcome"] for p in pieces] == ["killed after its checkpoint at step 3", "finished"]
  assert [(p["from_step"], p["to_step"]) for p in pieces] == [(0, 3), (3, 4)]


def git(cwd, *args):
  return subprocess.run(
    ["git", *args],
    cwd=cwd,
    check=True,
    capture_output=True,
    text=True,
    env={
      "GIT_AUTHOR_NAME": "t",
      "GIT_AUTHOR_EMAIL": "t@t",
      "GIT_COMMITTER_NAME": "t",
      "GIT_COMMITTER_EMAIL": "t@t",
      "HOME": str(cwd),
      "PATH": "/usr/bin:/bin",
    },
  ).stdout


def test_a_row_committed_to_git_continues_from_a_fresh_clone_as_one_run(
  tmp_path, tiny_row, monkeypatch
):
  scratch, clone = tmp_path / "scratch", tmp_path / "clone"
  scratch.mkdir()
  git(scratch, "init", "-q")
  (scratch / ".gitignore").write_text((REPO_ROOT / ".gitignore").read_text())
  monkeypatch.setattr(runner, "REPO", str(scratch))
  workroot = scratch / "experiments" / "rows"
  assert run_piece(tiny_row, workroot, steps=3) is None
  workdir = workroot / tiny_row.name
  (workdir / "lock").write_text("{}")  # As if the piece were still running.
  (workdir / "checkpoints" / "9.orbax-checkpoint-tmp-123").mkdir()
  (scratch / "experiments" / "results").mkdir()
  (scratch / "experiments" / "results" / "paper_tables.md").write_text("the table\n")
  instructions = runner.commit_instructions(
    tiny_row, str(workdir), str(scratch / "experiments" / "results"), 3, finished=False
  )
  command = instructions.splitlines()[-1].strip()
  assert command.startswith(
    f"git add -A -- experiments/rows/{tiny_row.name} experiments/results && git commit -m "
  )
  subprocess.run(
    command,
    shell=True,
    cwd=scratch,
    check=True,
    capture_output=True,
    env={
      "GIT_AUTHOR_NAME": "t",
      "GIT_AUTHOR_EMAIL": "t@t",
      "GIT_COMMITTER_NAME": "t",
      "GIT_COMMITTER_EMAIL": "t@t",
      "HOME": str(scratch),
      "PATH": "/usr/bin:/bin",
    },
  )
  committed = git(scratch, "ls-files").split()
  prefix = f"experiments/rows/{tiny_row.name}/"
  assert {f.removeprefix(prefix).split("/")[0] for f in committed if f.startswith(prefix)} == {
    "checkpoints",
    "config.json",
    "metrics.jsonl",
    "reproduce_pieces.jsonl",
    "tensorboard",
  }
  assert {
    f.removeprefix(prefix + "checkpoints/").split("/")[0]
    for f in committed
    if f.startswith(prefix + "checkpoints/")
  } == {"3"}

  git(tmp_path, "clone", "-q", str(scratch), str(clone))
  record = run_piece(tiny_row, clone / "experiments" / "rows")
  reference = run_piece(tiny_row, tmp_path / "whole")
  jax.tree.map(
    np.testing.assert_array_equal,
    restored_state(tiny_row, clone / "experiments" / "rows"),
    restored_state(tiny_row, tmp_path / "whole"),
  )
  assert record["nll_nats"] == reference["nll_nats"]
  assert [(p["from_step"], p["to_step"]) for p in record["pieces"]] == [(0, 3), (3, 4)]


def test_next_takes_the_first_unrecorded_row_of_the_order_and_skips_held_back_rows(tmp_path):
  order = ("bmnist_diagonal_bilstm_1x32", "bmnist_pixelcnn", "bmnist_row_lstm")
  held = {"bmnist_pixelcnn": "its network is not decided"}
  assert paper_rows.next_row(str(tmp_path), order, held)[0].name == "bmnist_diagonal_bilstm_1x32"
  first = {r.name: r for r in paper_rows.ROWS}["bmnist_diagonal_bilstm_1x32"]
  paper_rows.write_json(paper_rows.record_path(str(tmp_path), first), {"row": first.name})
  row, skipped = paper_rows.next_row(str(tmp_path), order, held)
  assert row.name == "bmnist_row_lstm"
  assert skipped == [
    "bmnist_diagonal_bilstm_1x32: recorded",
    "bmnist_pixelcnn: held back, its network is not decided",
  ]
  assert paper_rows.next_row(str(tmp_path), order[:2], held)[0] is None
  assert paper_rows.CONTINUE_ORDER[0] == "bmnist_diagonal_bilstm_1x32"


def test_a_row_in_progress_is_listed_with_its_latest_validation_nll_and_drawn(tmp_path, tiny_row):
  run_piece(tiny_row, tmp_path, steps=3)
  workdir = str(tmp_path / tiny_row.name)
  cells = tables.in_progress_status(tiny_row, workdir, 3, 4, 8)
  latest = [r for r in metric_writers.read_metrics(workdir) if r["split"] == "eval"][-1]
  assert latest["step"] == 2
  assert cells[:3] == [
    f"in progress: validation {latest['nll_nats']:.2f} at step 2",
    "3 of 4",
    "24",
  ]
  assert cells[-1] == "`piece`"
  figures = tables.write_curves([tiny_row], str(tmp_path), {tiny_row.name: workdir})
  assert [f.rsplit("/", 1)[-1] for f in figures] == [
    "tiny_pixelcnn_curve.png",
    "all_rows_curve.png",
  ]
  text = open(tables.write_table([tiny_row], str(tmp_path), {tiny_row.name: cells}, figures)).read()
  assert f"| `tiny_pixelcnn` | tiny PixelCNN | 100.00 | {' | '.join(cells)} |" in text
  assert "[tiny_pixelcnn_curve.png](paper_rows/tiny_pixelcnn_curve.png)" in text


def test_the_table_lists_every_paper_row_not_run_or_in_progress(tmp_path):
  done = subprocess.run(
    [
      sys.executable,
      "experiments/reproduce.py",
      "--table_only",
      f"--results_dir={tmp_path}",
      f"--workroot={tmp_path / 'none'}",
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert "INFO" not in done.stdout + done.stderr
  text = (tmp_path / "paper_tables.md").read_text()
  rows = paper_rows.all_rows()
  for row in rows:
    assert f"| `{row.name}` | {row.model} |" in text and f"- `{row.name}` ({row.paper:.2f}" in text
  assert text.count("| not run |") == len(rows) == len(paper_rows.ROWS) + 4
  assert "80.54 (unverified)" in text


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--rows=bmnist_pixelcn"],
      "Error: Unknown rows ['bmnist_pixelcn'] for --recipe=paper; valid: ['bmnist_pixelcnn',",
    ),
    (
      ["--rows=next", "--time_budget_minutes=abc"],
      "Error: flag --time_budget_minutes=abc: could not convert string to float: 'abc'",
    ),
    (
      ["--rows=cifar10_pixelcnn", "--recipe=large_batch"],
      "Error: Unknown rows ['cifar10_pixelcnn'] for --recipe=large_batch",
    ),
    ([], "Error: give --rows (names, 'all' or 'next') or --table_only."),
  ],
)
def test_bad_input_gets_one_error_line_and_exit_status_2(tmp_path, args, message):
  done = subprocess.run(
    [sys.executable, "experiments/reproduce.py", *args, f"--results_dir={tmp_path}"],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 2 and done.stderr.startswith(message), done.stderr
  assert len(done.stderr.strip().splitlines()) == 1


def test_the_large_batch_recipe_covers_the_mnist_rows_with_their_own_names_and_configs():
  rows = paper_rows.recipe_rows(paper_rows.ROWS, "large_batch")
  assert [r.name for r in rows] == [
    "bmnist_pixelcnn_large_batch",
    "bmnist_row_lstm_large_batch",
    "bmnist_diagonal_bilstm_1x32_large_batch",
    "bmnist_diagonal_bilstm_7x16_large_batch",
  ]
  for row, paper_row in zip(rows, paper_rows.ROWS):
    assert (row.paper, row.unit, row.table) == (paper_row.paper, paper_row.unit, paper_row.table)
    config = runner.load_config(row)
    assert config.training.batch_size >= 128
    assert config.model == runner.load_config(paper_row).model
  assert runner.selected_rows(["bmnist_row_lstm"], "large_batch", "unused") == [rows[1]]
  with pytest.raises(runner.RowError, match="cifar10_pixelcnn.*large_batch"):
    runner.selected_rows(["cifar10_pixelcnn"], "large_batch", "unused")


def test_an_unreadable_checkpoint_names_the_git_history_that_holds_the_previous_one(
  tmp_path, tiny_row
):
  run_piece(tiny_row, tmp_path, steps=2)
  (step_dir,) = (tmp_path / tiny_row.name / "checkpoints").iterdir()
  truncate_arrays(step_dir)
  with pytest.raises(runner.RowError) as raised:
    run_piece(tiny_row, tmp_path)
  message = str(raised.value)
  assert message.startswith(f"Checkpoint 2 in {step_dir.parent}")
  workdir = tmp_path / tiny_row.name
  assert (
    f"`git log --oneline -- {workdir}` lists those commits, and `git checkout <commit> -- "
    f"{workdir}` brings back the state of the one before the last"
  ) in message


def test_a_curve_that_gained_under_a_tenth_of_a_nat_over_30k_steps_has_stopped_improving():
  improving = [(5000 * k, 90.0 - 0.5 * k) for k in range(1, 9)]
  assert piece_log.plateau(improving) is None
  flat = [(5000 * k, 85.0 - 0.01 * k) for k in range(1, 10)]
  assert piece_log.plateau(flat) == pytest.approx(0.06)  # 84.97 at 15k, at best 84.91 since.
  assert piece_log.plateau(flat[:6]) is None  # 25k steps: shorter than the window.
  # A noisy curve counts its best evaluation inside the window.
  assert piece_log.plateau([(0, 86.0), (30000, 85.95), (35000, 85.2), (60000, 85.5)]) is None
