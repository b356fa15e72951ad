import subprocess
import sys

import pytest

from pixelrnn import defaults


def test_base_config_is_valid():
  defaults.validate(defaults.base_config())


def test_unknown_keys_are_refused_with_the_valid_ones():
  config = defaults.base_config()
  config.model.hiden_dim = 3
  with pytest.raises(
    defaults.ConfigError,
    match=r"'model.hiden_dim'; did you mean 'model.hidden_dim'\? valid keys here: \['dropout', 'hidden_dim', 'likelihood', 'multiscale', 'name', 'num_classes', 'num_layers', 'num_mixtures', 'num_resolutions', 'output_dim', 'pallas_lstm', 'residual', 'skip'\]",
  ):
    defaults.validate(config)


@pytest.mark.parametrize(
  "key, value, choices",
  [
    (
      "data.name",
      "imagenet",
      "['binarized_mnist', 'mnist', 'cifar10', 'mnist_thresholded', 'cifar10_first4000']",
    ),
    (
      "model.name",
      "transformer",
      "['pixelcnn', 'row_lstm', 'diagonal_bilstm', 'gated_pixelcnn', 'pixelcnn_pp']",
    ),
    ("optimizer.name", "sgd", "['rmsprop', 'adam']"),
    (
      "optimizer.schedule",
      "linear",
      "['constant', 'cosine', 'warmup_cosine', 'constant_then_linear', 'exponential']",
    ),
  ],
)
def test_unknown_choices_are_refused_with_the_valid_ones(key, value, choices):
  config = defaults.base_config()
  group, name = key.split(".")
  config[group][name] = value
  with pytest.raises(
    defaults.ConfigError,
    match=f"{value!r}; valid choices: " + choices.replace("[", r"\[").replace("]", r"\]"),
  ):
    defaults.validate(config)


@pytest.mark.parametrize(
  "key, value",
  [("training.batch_size", 0), ("model.num_layers", -1), ("optimizer.learning_rate", 0.0)],
)
def test_non_positive_sizes_are_refused(key, value):
  config = defaults.base_config()
  group, name = key.split(".")
  config[group][name] = value
  with pytest.raises(defaults.ConfigError, match=f"{key} must be a positive number, got {value}"):
    defaults.validate(config)


@pytest.mark.parametrize(
  "key, value, minimum",
  [
    ("training.steps_per_dispatch", 0, 1),
    ("training.steps_per_dispatch", -3, 1),
    ("training.skip_nonfinite_updates", -1, 0),
  ],
)
def test_counts_must_be_integers_at_least_their_minimum(key, value, minimum):
  config = defaults.base_config()
  group, name = key.split(".")
  config[group][name] = value
  with pytest.raises(
    defaults.ConfigError, match=f"{key} must be an integer >= {minimum}, got {value}"
  ):
    defaults.validate(config)


def test_ema_decay_outside_the_unit_interval_is_refused():
  config = defaults.base_config()
  config.training.ema_decay = 1.0
  with pytest.raises(
    defaults.ConfigError, match=r"training.ema_decay must be in \[0, 1\), got 1.0"
  ):
    defaults.validate(config)


def test_a_misspelt_nested_multiscale_key_is_named_in_full():
  config = defaults.base_config()
  config.model.multiscale.small.hidden = 3
  with pytest.raises(
    defaults.ConfigError, match=r"Unknown config key 'model.multiscale.small.hidden'"
  ):
    defaults.validate(config)


def test_the_schema_does_not_import_the_data_pipeline():
  # A fresh interpreter: this one has imported everything already.
  done = subprocess.run(
    [
      sys.executable,
      "-c",
      "import sys, pixelrnn.defaults; "
      "print(*sorted(m for m in sys.modules if m.startswith('pixelrnn')))",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0, done.stderr
  modules = done.stdout.split()
  assert "pixelrnn.data.loading" not in modules and "pixelrnn.data.datasets" in modules, modules


@pytest.mark.parametrize("group", ["model", "model.multiscale.small"])
def test_the_pallas_lstm_kernel_is_refused_for_a_model_without_an_lstm(group):
  config = defaults.base_config()
  section = config.model if group == "model" else config.model.multiscale.small
  section.name, section.pallas_lstm = "pixelcnn", True
  with pytest.raises(
    defaults.ConfigError,
    match=rf"{group}.pallas_lstm applies to the models that read it, "
    r"\['row_lstm', 'diagonal_bilstm'\], not 'pixelcnn'",
  ):
    defaults.validate(config)
  section.name = "row_lstm"
  defaults.validate(config)


@pytest.mark.parametrize(
  "dataset, num_classes, factor, message",
  [
    (
      "binarized_mnist",
      10,
      1,
      r"model.num_classes=10 makes the model class-conditional, but the "
      r"dataset 'binarized_mnist' has no labels; labelled datasets: "
      r"\['cifar10', 'cifar10_first4000', 'mnist', 'mnist_thresholded'\]",
    ),
    ("mnist_thresholded", 7, 1, "model.num_classes=7, but mnist_thresholded has 10 classes"),
    ("mnist", 10, 2, r"model.num_classes > 0 needs a single-scale model"),
    ("mnist", -1, 1, "model.num_classes must be an integer >= 0, got -1"),
  ],
)
def test_a_class_conditional_config_needs_a_labelled_dataset_and_its_class_count(
  dataset, num_classes, factor, message
):
  config = defaults.base_config()
  config.data.name, config.model.num_classes = dataset, num_classes
  config.model.multiscale.factor = factor
  with pytest.raises(defaults.ConfigError, match=message):
    defaults.validate(config)
  config.model.num_classes, config.model.multiscale.factor = 10, 1
  if dataset != "binarized_mnist":
    defaults.validate(config)
