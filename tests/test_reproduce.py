"""experiments/reproduce.py: a row trained in pieces equals one uninterrupted run, and the
table is written from the records, listing rows with no run as not run."""

import importlib.util
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from pixelrnn import checkpoints, stopping, train

spec = importlib.util.spec_from_file_location("reproduce", REPO_ROOT / "experiments" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
sys.modules["reproduce"] = reproduce  # Its dataclasses look their module up there.
spec.loader.exec_module(reproduce)

TINY_CONFIG = """
from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 4, 1, 8
  training = config.training
  training.batch_size, training.num_steps, training.log_every_steps = 8, 4, 1
  training.checkpoint_every_steps = training.eval_every_steps = 100
  training.eval_batch_size = 1000
  config.optimizer.name = "adam"
  return config
"""


@pytest.fixture
def tiny_row(tmp_path):
  path = tmp_path / "tiny_config.py"
  path.write_text(TINY_CONFIG)
  return reproduce.Row("tiny_pixelcnn", "Table T: tiny rows", "tiny PixelCNN", str(path), 100.0,
                       "nats", "a test")


def restored_state(row, workroot):
  config = reproduce.load_config(row)
  trainer = train.Trainer(config, (28, 28, 1), 2, train.make_mesh())
  manager = checkpoints.manager(str(workroot / row.name), config)
  return jax.device_get(checkpoints.restore(manager, trainer.abstract_state()))


def test_a_row_run_in_two_step_pieces_equals_one_run_and_is_recorded(tmp_path, tiny_row):
  pieces, whole = tmp_path / "pieces", tmp_path / "whole"
  with pytest.raises(stopping.TrainingStopped, match="step budget of 2 spent.*at step 2"):
    reproduce.run_row(tiny_row, str(pieces), str(pieces / "results"),
                      stop=stopping.StopRequests(max_steps=2), command="first", progress=False)
  assert reproduce.read_record(str(pieces / "results"), tiny_row) is None
  record = reproduce.run_row(tiny_row, str(pieces), str(pieces / "results"),
                             stop=stopping.StopRequests(max_steps=2), command="second",
                             progress=False)
  reference = reproduce.run_row(tiny_row, str(whole), str(whole / "results"),
                                stop=stopping.StopRequests(), command="whole", progress=False)
  jax.tree.map(np.testing.assert_array_equal, restored_state(tiny_row, pieces),
               restored_state(tiny_row, whole))
  assert record["nll_nats"] == reference["nll_nats"]

  assert record == reproduce.read_record(str(pieces / "results"), tiny_row)
  assert record["ours"] == round(record["nll_nats"], 2) and record["paper"] == 100.0
  assert (record["steps"], record["batch_size"], record["images_seen"]) == (4, 8, 32)
  assert record["eval_split"] == "test" and record["eval_precision"] == "float32 (HIGHEST)"
  assert record["commands"] == ["first", "second"]
  assert [(p["from_step"], p["to_step"]) for p in record["pieces"]] == [(0, 2), (2, 4)]
  assert record["pieces"][0]["outcome"] == "stopped: step budget of 2 spent"
  assert record["wall_time_s"] == pytest.approx(sum(p["wall_s"] for p in record["pieces"]), abs=0.11)
  assert record["hardware"] and "jax" in record["hardware"][0]
  rows_dir = pieces / "results" / "paper_rows"
  assert Image.open(rows_dir / record["samples_png"]).size == (8 * 58 + 2, 8 * 58 + 2)
  assert Image.open(rows_dir / record["completions_png"]).size == (7 * 58 + 2, 8 * 58 + 2)

  not_run = reproduce.ROWS[0]
  table = (tmp_path / "pieces" / "results" / "paper_tables.md")
  assert reproduce.write_table([tiny_row, not_run], str(pieces / "results")) == str(table)
  text = table.read_text()
  assert "## Table T: tiny rows" in text
  assert (f"| `tiny_pixelcnn` | tiny PixelCNN | 100.00 | **{record['ours']:.2f}** | 4 | 32 | 0 min | "
          f"{record['hardware'][0]} | {record['date']} | `first`<br>`second` |") in text
  assert f"| `{not_run.name}` | {not_run.model} | {not_run.paper:.2f} | not run |" in text


def test_the_table_lists_every_paper_row_not_run_or_in_progress(tmp_path):
  done = subprocess.run([sys.executable, "experiments/reproduce.py", "--table_only",
                         f"--results_dir={tmp_path}", f"--workroot={tmp_path / 'none'}"],
                        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  text = (tmp_path / "paper_tables.md").read_text()
  rows = [r for recipe in reproduce.RECIPES for r in reproduce.recipe_rows(reproduce.ROWS, recipe)]
  for row in rows:
    assert f"| `{row.name}` | {row.model} |" in text and f"- `{row.name}` ({row.paper:.2f}" in text
  assert text.count("| not run |") == len(rows) == len(reproduce.ROWS) + 4
  assert "80.54 (unverified)" in text


def test_an_unknown_row_is_refused_with_the_valid_names(tmp_path):
  done = subprocess.run([sys.executable, "experiments/reproduce.py", "--rows=bmnist_pixelcn",
                         f"--results_dir={tmp_path}"], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode != 0
  assert "Unknown rows ['bmnist_pixelcn'] for --recipe=paper; valid: ['bmnist_pixelcnn'," in done.stderr


def test_the_large_batch_recipe_covers_the_mnist_rows_with_their_own_names_and_configs():
  rows = reproduce.recipe_rows(reproduce.ROWS, "large_batch")
  assert [r.name for r in rows] == [
      "bmnist_pixelcnn_large_batch", "bmnist_row_lstm_large_batch",
      "bmnist_diagonal_bilstm_1x32_large_batch", "bmnist_diagonal_bilstm_7x16_large_batch"]
  for row, paper_row in zip(rows, reproduce.ROWS):
    assert (row.paper, row.unit, row.table) == (paper_row.paper, paper_row.unit, paper_row.table)
    config = reproduce.load_config(row)
    assert config.training.batch_size >= 128
    assert config.model == reproduce.load_config(paper_row).model
  assert reproduce.selected_rows(["bmnist_row_lstm"], "large_batch") == [rows[1]]
  with pytest.raises(reproduce.app.UsageError, match="cifar10_pixelcnn.*large_batch"):
    reproduce.selected_rows(["cifar10_pixelcnn"], "large_batch")
