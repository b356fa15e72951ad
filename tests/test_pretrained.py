"""Pretrained models: a finished row's EMA parameters exported with its config load back
exactly, sample the same images as the workdir they came from, and do so from a built
wheel installed in a fresh virtual environment (not only from this checkout)."""

import json
import os
import shutil
import subprocess
import sys
import venv

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT, tiny_config_file
from PIL import Image

from pixelrnn import cli, pretrained
from pixelrnn.sampling import figures
from pixelrnn.training import train

RECORD = {"row": "tiny_row", "steps": 3, "ours": 500.0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny model trained 3 steps: (config, workdir)."""
  root = tmp_path_factory.mktemp("trained")
  config = cli.load_config(
    tiny_config_file(root / "tiny.py", num_steps=3, checkpoint_every=3, eval_every=3)
  )
  train.train_and_evaluate(config, str(root / "workdir"), progress=False)
  return config, str(root / "workdir")


def test_exported_parameters_load_back_exactly_with_their_config(trained, tmp_path):
  config, workdir = trained
  pretrained.export_checkpoint(config, workdir, RECORD, "tiny_row", root=str(tmp_path))
  assert pretrained.available(str(tmp_path)) == ["tiny_row"]
  loaded = pretrained.load("tiny_row", root=str(tmp_path))
  _, params, step, image_shape, num_levels = train.load_ema_params(config, workdir)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(loaded.params), jax.device_get(params))
  assert (loaded.step, loaded.image_shape, loaded.num_levels) == (step, image_shape, num_levels)
  assert loaded.config.to_dict() == config.to_dict() and loaded.record == RECORD


def test_a_pretrained_model_samples_what_its_workdir_samples(trained, tmp_path):
  config, workdir = trained
  pretrained.export_checkpoint(config, workdir, RECORD, "tiny_row", root=str(tmp_path))
  loaded = pretrained.load("tiny_row", root=str(tmp_path))
  ours = figures.write_samples(
    loaded.config,
    str(tmp_path),
    num_samples=4,
    seed=3,
    path=str(tmp_path / "pretrained.png"),
    source=loaded.source(),
  )
  theirs = figures.write_samples(
    config, workdir, num_samples=4, seed=3, path=str(tmp_path / "workdir.png")
  )
  np.testing.assert_array_equal(
    np.asarray(Image.open(ours["png"])), np.asarray(Image.open(theirs["png"]))
  )


def test_parameters_that_do_not_fit_the_config_are_refused_with_the_path(trained, tmp_path):
  config, workdir = trained
  folder = pretrained.export_checkpoint(config, workdir, RECORD, "tiny_row", root=str(tmp_path))
  stored = json.loads(open(os.path.join(folder, "config.json")).read())
  stored["model"]["hidden_dim"] = 5
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(stored, f)
  with pytest.raises(
    pretrained.PretrainedError,
    match=r"parameter .* is \(.*\) float32, its "
    r"config needs \(.*\) float32",
  ):
    pretrained.load("tiny_row", root=str(tmp_path))
  with pytest.raises(
    pretrained.PretrainedError,
    match=r"Unknown pretrained model 'nope'; "
    r"installed: \['tiny_row'\]",
  ):
    pretrained.load("nope", root=str(tmp_path))


def copy_project(destination):
  """The files a wheel is built from: the package, setup.cfg, pyproject.toml, README."""
  shutil.copytree(
    REPO_ROOT / "pixelrnn",
    destination / "pixelrnn",
    ignore=shutil.ignore_patterns("__pycache__", "pretrained"),
  )
  for name in ("setup.cfg", "pyproject.toml", "README.md"):
    shutil.copy(REPO_ROOT / name, destination / name)


def test_a_pretrained_model_in_a_built_wheel_loads_and_samples_in_a_fresh_virtualenv(
  trained, tmp_path
):
  config, workdir = trained
  project = tmp_path / "project"
  copy_project(project)
  pretrained.export_checkpoint(
    config,
    workdir,
    RECORD,
    "tiny_row",
    root=str(project / "pixelrnn" / "data_files" / "pretrained"),
  )
  built = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "wheel",
      "-q",
      "--no-deps",
      "-w",
      str(tmp_path / "dist"),
      str(project),
    ],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert built.returncode == 0, built.stderr[-3000:]
  (wheel,) = (tmp_path / "dist").glob("pixelrnn-*.whl")

  fresh = tmp_path / "fresh"
  venv.create(fresh, with_pip=True)
  python = str(fresh / "bin" / "python")
  installed = subprocess.run(
    [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert installed.returncode == 0, installed.stderr[-3000:]
  # The dependencies (jax, flax, ...) come from this environment, the package from the wheel.
  site = subprocess.run(
    [python, "-c", "import site; print(site.getsitepackages()[0])"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()
  here = [p for p in sys.path if p.endswith("site-packages")][0]
  with open(os.path.join(site, "dependencies.pth"), "w") as f:
    f.write(here + "\n")

  outside = tmp_path / "elsewhere"
  outside.mkdir()
  shutil.copy(REPO_ROOT / "launch.py", outside / "launch.py")  # Beside no package source.
  sampled = subprocess.run(
    [
      python,
      "launch.py",
      "--pretrained=tiny_row",
      "--mode=sample",
      "--num_samples=4",
      "--seed=3",
      f"--workdir={outside}",
    ],
    cwd=outside,
    capture_output=True,
    text=True,
    timeout=600,
    env={**os.environ, "PYTHONPATH": ""},
  )
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  result = json.loads(sampled.stdout.strip().splitlines()[-1])
  assert result["pretrained"] == "tiny_row" and result["step"] == 3
  where = subprocess.run(
    [python, "-c", "import pixelrnn, sys; print(pixelrnn.__file__)"],
    cwd=outside,
    capture_output=True,
    text=True,
    check=True,
    env={**os.environ, "PYTHONPATH": ""},
  ).stdout
  assert where.startswith(str(fresh)), where
  reference = figures.write_samples(
    config, workdir, num_samples=4, seed=3, path=str(tmp_path / "reference.png")
  )
  np.testing.assert_array_equal(
    np.asarray(Image.open(result["png"])), np.asarray(Image.open(reference["png"]))
  )

  evaluated = subprocess.run(
    [python, "launch.py", "--pretrained=tiny_row", "--mode=eval"],
    cwd=outside,
    capture_output=True,
    text=True,
    timeout=600,
    env={**os.environ, "PYTHONPATH": ""},
  )
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  result = json.loads(evaluated.stdout.strip().splitlines()[-1])
  test_config = config.copy_and_resolve_references()
  test_config.data.eval_split = "test"
  assert result["eval_split"] == "test"
  assert result["nll_nats"] == train.evaluate_checkpoint(test_config, workdir)["nll_nats"]
