"""The command line: train, then evaluate, a few steps; bad configs fail clearly."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT

FEW_STEPS = ["--config.training.num_steps=4", "--config.training.checkpoint_every_steps=2",
             "--config.training.eval_batch_size=1000", "--config.data.eval_split=validation",
             "--config.model.num_layers=1", "--config.training.log_every_steps=2"]


def launch(*args):
  return subprocess.run([sys.executable, "launch.py", *args], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=600)


def last_json(stdout):
  return json.loads(stdout.strip().splitlines()[-1])


def test_launch_trains_then_evaluates_the_same_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  trained = launch("--config=configs/quickstart.py", f"--workdir={workdir}", *FEW_STEPS)
  assert trained.returncode == 0, trained.stderr[-3000:]
  evaluated = launch("--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=eval", *FEW_STEPS)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  t, e = last_json(trained.stdout), last_json(evaluated.stdout)
  assert e["step"] == 4 and e["nll_nats"] == t["nll_nats"]
  assert (tmp_path / "run" / "checkpoints" / "4").is_dir()
  assert (tmp_path / "run" / "tensorboard" / "train").is_dir()

  sampled = launch("--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=sample",
                   "--num_samples=6", *FEW_STEPS)
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  png = last_json(sampled.stdout)["png"]
  picture = np.asarray(Image.open(png))
  # 6 samples in one row of 6 columns, 28x28 upscaled 2x, 2-pixel gaps.
  assert picture.shape == (2 + 56 + 2, 6 * (56 + 2) + 2)
  assert set(np.unique(picture[2:58, 2:58])) <= {0, 255}, "binary samples"

  inpainted = launch("--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=inpaint",
                     "--num_samples=3", "--num_completions=2", *FEW_STEPS)
  assert inpainted.returncode == 0, inpainted.stderr[-3000:]
  result = last_json(inpainted.stdout)
  figure = np.asarray(Image.open(result["png"]))
  # 3 rows of [occluded, 2 completions, original].
  assert figure.shape == (3 * (56 + 2) + 2, 4 * (56 + 2) + 2)
  occluded, original = figure[2:58, 2:58], figure[2:58, 3 * 58 + 2:3 * 58 + 58]
  np.testing.assert_array_equal(occluded[:28], original[:28])
  assert (occluded[28:] == 128).all()


def test_sampling_without_a_checkpoint_fails_clearly(tmp_path):
  result = launch("--config=configs/quickstart.py", f"--workdir={tmp_path}", "--mode=sample")
  assert result.returncode != 0
  assert "No checkpoints in workdir" in result.stderr


def test_launch_rejects_an_unknown_dataset_listing_the_valid_ones(tmp_path):
  result = launch("--config=configs/quickstart.py", f"--workdir={tmp_path}", "--config.data.name=imagenet")
  assert result.returncode != 0
  assert "Unknown data.name 'imagenet'; valid choices: ['binarized_mnist', 'mnist', 'cifar10']" in result.stderr


def test_launch_rejects_a_config_file_with_a_misspelt_key(tmp_path):
  bad = tmp_path / "typo.py"
  bad.write_text("from pixelrnn import defaults\n\ndef get_config():\n  c = defaults.base_config()\n"
                 "  c.training.batchsize = 8\n  return c\n")
  result = launch(f"--config={bad}", f"--workdir={tmp_path / 'w'}")
  assert result.returncode != 0
  assert "Unknown config key 'training.batchsize'; valid keys here:" in result.stderr


def test_sampling_and_inpainting_work_for_a_recurrent_model(tmp_path):
  workdir = str(tmp_path / "diag")
  model = ["--config.model.name=diagonal_bilstm", "--config.model.hidden_dim=4"]
  trained = launch("--config=configs/quickstart.py", f"--workdir={workdir}", *FEW_STEPS, *model)
  assert trained.returncode == 0, trained.stderr[-3000:]
  sampled = launch("--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=sample",
                   "--num_samples=2", *FEW_STEPS, *model)
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  assert last_json(sampled.stdout)["cached_sampler"] is True
  assert np.asarray(Image.open(last_json(sampled.stdout)["png"])).shape == (60, 2 * 58 + 2)
  mismatched = launch("--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=inpaint",
                      *FEW_STEPS)
  assert mismatched.returncode != 0
  assert "were written for a different model or dataset" in mismatched.stderr
  assert "'model.name': ('diagonal_bilstm', 'pixelcnn')" in mismatched.stderr


def test_a_multiscale_config_trains_samples_and_inpaints(tmp_path):
  workdir = str(tmp_path / "ms")
  config = "--config=configs/binarized_mnist_multiscale_row_lstm.py"
  small = ["--config.model.hidden_dim=4", "--config.model.multiscale.small.hidden_dim=4",
           "--config.model.multiscale.small.num_layers=1", "--config.model.multiscale.conditioning_dim=4"]
  trained = launch(config, f"--workdir={workdir}", *FEW_STEPS, *small)
  assert trained.returncode == 0, trained.stderr[-3000:]
  result = last_json(trained.stdout)
  assert result["nll_nats"] == pytest.approx(result["small_nll_nats"] + result["large_nll_nats"])
  sampled = launch(config, f"--workdir={workdir}", "--mode=sample", "--num_samples=3", *FEW_STEPS, *small)
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  result = last_json(sampled.stdout)
  assert result["cached_sampler"] is True
  large = np.asarray(Image.open(result["png"]))
  small_grid = np.asarray(Image.open(result["small_png"]))
  assert large.shape == (60, 3 * 58 + 2)  # 28x28 samples upscaled 2x.
  assert small_grid.shape == (32, 3 * 30 + 2)  # 14x14 samples upscaled 2x.
  # The subsampled positions of each large sample are its small sample.
  for k in range(3):
    big = large[2:58, 2 + 58 * k:58 + 58 * k][::2, ::2]  # Undo the 2x upscaling.
    tiny = small_grid[2:30, 2 + 30 * k:30 + 30 * k][::2, ::2]
    np.testing.assert_array_equal(big[::2, ::2], tiny)
  inpainted = launch(config, f"--workdir={workdir}", "--mode=inpaint", "--num_samples=2",
                     "--num_completions=2", *FEW_STEPS, *small)
  assert inpainted.returncode == 0, inpainted.stderr[-3000:]
  assert np.asarray(Image.open(last_json(inpainted.stdout)["png"])).shape == (2 * 58 + 2, 4 * 58 + 2)
