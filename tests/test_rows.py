"""The rows committed under experiments/rows/ (what the next session on any machine
continues): each holds exactly one checkpoint, no lock and no temporary file, and its
checkpoint restores with its config at the step its pieces log names."""

import io
import subprocess
import tarfile

import pytest
from conftest import REPO_ROOT

from pixelrnn import cli
from pixelrnn.reproduction import paper_rows, piece_log
from pixelrnn.training import train
from pixelrnn.training import trainer as trainer_lib
from pixelrnn.workdir import metric_writers

ROWS_DIR = "experiments/rows"


def git(*args: str, text: bool = True):
  return subprocess.run(
    ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=text
  ).stdout


def committed_files() -> dict[str, list[str]]:
  """HEAD's files under experiments/rows, by row, as paths inside the row's folder."""
  try:
    listed = git("ls-tree", "-r", "--name-only", "HEAD", "--", ROWS_DIR).split()
  except (OSError, subprocess.CalledProcessError):
    return {}
  rows = {}
  for path in listed:
    name, inside = path.removeprefix(ROWS_DIR + "/").split("/", 1)
    rows.setdefault(name, []).append(inside)
  return rows


def is_git_checkout() -> bool:
  return (REPO_ROOT / ".git").exists()


ROWS = committed_files()


@pytest.fixture(params=sorted(ROWS) or [None], ids=lambda name: name or "none committed")
def row_name(request):
  if request.param is None:
    pytest.skip(
      "no row is committed under experiments/rows yet"
      if is_git_checkout()
      else "not a git checkout: the committed rows cannot be listed"
    )
  return request.param


def test_a_committed_row_holds_exactly_one_checkpoint_and_nothing_of_the_running_process(row_name):
  files = ROWS[row_name]
  checkpoints = {f.split("/")[1] for f in files if f.startswith("checkpoints/")}
  assert len(checkpoints) == 1 and checkpoints.pop().isdigit(), sorted(checkpoints)
  assert not [
    f
    for f in files
    if f == "lock" or f.startswith("lock.") or ".tmp" in f or "orbax-checkpoint-tmp" in f
  ]
  for needed in ("config.json", "metrics.jsonl", piece_log.PIECES_FILE):
    assert needed in files
  assert any(f.startswith("tensorboard/") for f in files)


def test_a_committed_row_restores_at_the_step_of_its_last_piece(row_name, tmp_path):
  archive = git("archive", "--format=tar", "HEAD", f"{ROWS_DIR}/{row_name}", text=False)
  tarfile.open(fileobj=io.BytesIO(archive)).extractall(tmp_path, filter="data")
  workdir = tmp_path / ROWS_DIR / row_name
  row = {r.name: r for r in paper_rows.all_rows()}[row_name]
  config = cli.load_config(str(REPO_ROOT / row.config))
  _, state = train.restore_latest(config, str(workdir))
  (step,) = {f.split("/")[1] for f in ROWS[row_name] if f.startswith("checkpoints/")}
  assert int(state.step) == int(step) == piece_log.read_pieces(str(workdir))[-1]["to_step"]


def test_a_committed_row_continues_with_this_version_of_the_code(row_name, tmp_path, monkeypatch):
  # Rows committed by an earlier version (before a refactoring, say) must train on:
  # their recorded config still matches and their parameter tree still restores.
  archive = git("archive", "--format=tar", "HEAD", f"{ROWS_DIR}/{row_name}", text=False)
  tarfile.open(fileobj=io.BytesIO(archive)).extractall(tmp_path, filter="data")
  workdir = tmp_path / ROWS_DIR / row_name
  row = {r.name: r for r in paper_rows.all_rows()}[row_name]
  config = cli.load_config(str(REPO_ROOT / row.config))
  start = piece_log.read_pieces(str(workdir))[-1]["to_step"]
  config.training.num_steps = start + 2
  # What is checked is the continuation, not the evaluation of the whole split at its end.
  monkeypatch.setattr(
    trainer_lib.Trainer, "evaluate", lambda self, *args: {"nll_nats": 1.0, "bits_per_dim": 1.0}
  )
  train.train_and_evaluate(config, str(workdir), progress=False)
  _, state = train.restore_latest(config, str(workdir))
  assert int(state.step) == start + 2
  logged = [r["step"] for r in metric_writers.read_metrics(str(workdir)) if r["split"] == "train"]
  assert logged[-1] == start + 2 and max(logged[:-1]) <= start


@pytest.mark.skipif(not is_git_checkout(), reason="not a git checkout: .gitignore is not in use")
def test_gitignore_keeps_the_lock_and_temporary_files_of_a_row_out():
  ignored = [
    "lock",
    "lock.123.tmp",
    "checkpoints/4000.orbax-checkpoint-tmp-1733",
    "checkpoints/4000/default.orbax-checkpoint-tmp-1733/x",
    "reproduce_pieces.jsonl.tmp",
  ]
  kept = [
    "config.json",
    "metrics.jsonl",
    "reproduce_pieces.jsonl",
    "checkpoints/4000/_METADATA",
    "tensorboard/eval/events.out.tfevents.1.host",
  ]
  paths = [f"{ROWS_DIR}/some_row/{p}" for p in ignored + kept]
  # check-ignore exits 1 when no path is ignored; its output lists the ignored ones.
  done = subprocess.run(
    ["git", "check-ignore", "--no-index", *paths], cwd=REPO_ROOT, capture_output=True, text=True
  )
  assert done.stdout.split() == paths[: len(ignored)]
