"""Every experiment config is valid and builds its model."""

import pathlib

import jax
import pytest
from conftest import REPO_ROOT
from flax import nnx

from pixelrnn import cli, defaults
from pixelrnn.data import datasets
from pixelrnn.models import registry

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.py"))


def test_there_are_configs():
  names = {p.stem for p in CONFIGS}
  assert {
    "quickstart",
    "binarized_mnist_pixelcnn",
    "mnist_pixelcnn",
    "cifar10_pixelcnn",
    "binarized_mnist_row_lstm",
    "binarized_mnist_diagonal_bilstm",
    "binarized_mnist_diagonal_bilstm_1layer",
    "cifar10_row_lstm",
    "cifar10_diagonal_bilstm",
    "binarized_mnist_multiscale_pixelcnn",
    "binarized_mnist_multiscale_row_lstm",
    "cifar10_multiscale_pixelcnn",
    "cifar10_multiscale_row_lstm",
    "binarized_mnist_gated_pixelcnn",
    "cifar10_gated_pixelcnn",
    "mnist_thresholded_gated_pixelcnn_conditional",
    "quickstart_gated_pixelcnn",
  } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_valid_and_builds_its_model(path: pathlib.Path):
  config = cli.load_config(str(path))
  defaults.validate(config)
  shape, levels = datasets.IMAGE_SPECS[config.data.name]
  # Shapes only; the parameters come out as a State (flax's nnx.eval_shape would return
  # the module, whose plain-array masks it keeps as graph metadata, and its trace cache
  # then compares two configs' identical modules by those arrays).
  params = jax.eval_shape(
    lambda: nnx.state(
      registry.create(config.model, image_shape=shape, num_levels=levels, rngs=nnx.Rngs(0)),
      nnx.Param,
    )
  )
  assert sum(p.size for p in jax.tree.leaves(params)) > 0


@pytest.mark.parametrize(
  "name, model, layers, hidden",
  [
    ("cifar10_pixelcnn", "pixelcnn", 15, 128),
    ("binarized_mnist_pixelcnn", "pixelcnn", 15, 32),  # Width from the h=16 run's underfit.
    ("cifar10_row_lstm", "row_lstm", 12, 128),
    ("cifar10_diagonal_bilstm", "diagonal_bilstm", 12, 128),
    ("binarized_mnist_diagonal_bilstm", "diagonal_bilstm", 7, 16),
    ("binarized_mnist_diagonal_bilstm_1layer", "diagonal_bilstm", 1, 32),
  ],
)
def test_paper_settings(name, model, layers, hidden):
  config = cli.load_config(str(REPO_ROOT / "configs" / f"{name}.py"))
  assert (config.model.name, config.model.num_layers, config.model.hidden_dim) == (
    model,
    layers,
    hidden,
  )


@pytest.mark.parametrize(
  "name, small, large, size",
  [
    ("binarized_mnist_multiscale_pixelcnn", "pixelcnn", "pixelcnn", 14),
    ("binarized_mnist_multiscale_row_lstm", "row_lstm", "row_lstm", 14),
    ("cifar10_multiscale_pixelcnn", "pixelcnn", "pixelcnn", 16),
    ("cifar10_multiscale_row_lstm", "row_lstm", "row_lstm", 16),
  ],
)
def test_multiscale_configs_subsample_by_two(name, small, large, size):
  config = cli.load_config(str(REPO_ROOT / "configs" / f"{name}.py"))
  shape, _ = datasets.IMAGE_SPECS[config.data.name]
  ms = config.model.multiscale
  assert (ms.small.name, config.model.name, shape[0] // ms.factor) == (small, large, size)


@pytest.mark.parametrize(
  "row", ["pixelcnn", "row_lstm", "diagonal_bilstm", "diagonal_bilstm_1layer"]
)
def test_each_mnist_row_has_a_large_batch_recipe_of_the_same_network(row):
  path = str(REPO_ROOT / "configs" / f"binarized_mnist_{row}.py")
  paper, fast = cli.load_config(path), cli.load_config(f"{path}:large_batch")
  assert (
    fast.model.to_dict() == paper.model.to_dict() and fast.data.to_dict() == paper.data.to_dict()
  )
  training = fast.training
  assert training.batch_size >= 128 and training.num_steps < paper.training.num_steps
  assert fast.optimizer.schedule == "warmup_cosine"
  # Whole dispatches between evaluations and checkpoints.
  assert training.eval_every_steps % training.steps_per_dispatch == 0
  assert training.checkpoint_every_steps % training.steps_per_dispatch == 0


def test_a_rows_recipe_is_an_argument_of_its_config_file_and_an_unknown_one_is_named():
  path = str(REPO_ROOT / "configs" / "binarized_mnist_pixelcnn.py")
  assert cli.load_config(f"{path}:paper") == cli.load_config(path)
  with pytest.raises(
    cli.ConfigFileError, match=r"Unknown recipe 'huge'; valid recipes: \['paper', 'large_batch'\]"
  ):
    cli.load_config(f"{path}:huge")


def parameter_count(config) -> int:
  shape, levels = datasets.IMAGE_SPECS[config.data.name]
  params = jax.eval_shape(
    lambda: nnx.state(
      registry.create(config.model, image_shape=shape, num_levels=levels, rngs=nnx.Rngs(0)),
      nnx.Param,
    )
  )
  return sum(p.size for p in jax.tree.leaves(params))


def test_the_cifar10_pixelcnn_pp_network_has_the_reference_models_size():
  config = cli.load_config("configs/cifar10_pixelcnn_pp.py")
  # Later comparisons list the reference model at 53M parameters; ours lacks only the
  # weight-normalisation scales (one per output feature).
  assert 53.0e6 < parameter_count(config) < 54.0e6
  conditional = cli.load_config("configs/cifar10_pixelcnn_pp.py:conditional")
  assert (config.model.num_classes, conditional.model.num_classes) == (0, 10)


def test_the_quick_mnist_pixelcnn_pp_is_the_size_of_the_softmax_pixelcnn_it_is_compared_with():
  quick = cli.load_config("configs/mnist_pixelcnn_pp.py:quick")
  defaults.validate(quick)
  softmax = cli.load_config("configs/mnist_pixelcnn.py")
  ratio = parameter_count(quick) / parameter_count(softmax)
  assert 0.98 < ratio < 1.05, ratio  # 182,121 against 179,712.
  assert (quick.model.dropout, quick.training.num_steps) == (0.0, 3_000)
