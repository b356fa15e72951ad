"""The configuration schema: every key with its default, and validation.

Experiment files in `configs/` start from `base_config()` and override values. A key
that is not in the schema, or a value outside the valid choices, is rejected by
`validate` with a message that lists what is valid.
"""

from __future__ import annotations

import difflib

import ml_collections
from ml_collections import config_dict

from pixelrnn import distributions, errors
from pixelrnn.data import datasets
from pixelrnn.models import registry
from pixelrnn.training import optimizers, precision

MULTISCALE_OBJECTIVES = ("joint", "separate")


def base_config() -> ml_collections.ConfigDict:
  """All configuration keys with their defaults (binarized MNIST PixelCNN)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = _data_group()
  config.model = _model_group()
  config.training = _training_group()
  config.optimizer = optimizers.config_group()
  return config


def _data_group() -> ml_collections.ConfigDict:
  """The dataset and its splits."""
  data = ml_collections.ConfigDict()
  data.name = "binarized_mnist"
  data.train_split = "train"
  data.eval_split = "test"
  data.data_dir = config_dict.placeholder(str)  # TFDS data_dir.
  data.manual_dir = config_dict.placeholder(str)  # TFDS manual_dir (offline builds).
  return data


def _model_group() -> ml_collections.ConfigDict:
  """The network: shared keys, the families' own keys, the multi-scale model."""
  model = ml_collections.ConfigDict()
  model.name = "pixelcnn"
  model.hidden_dim = 16  # h: layers carry 2h features.
  model.num_layers = 7  # Residual blocks (PixelCNN) or recurrent layers.
  model.output_dim = 32  # Width of the hidden 1x1 output layer.
  model.likelihood = "softmax"  # Or "logistic_mixture" (8-bit): pixelrnn/distributions.py.
  model.num_mixtures = 10  # The mixture's components per pixel.
  # The keys model families declare (`config_defaults` of their classes, e.g. the
  # recurrent models' residual, skip and pallas_lstm).
  model.update(registry.family_key_defaults())
  # > 0: a class-conditional model of a labelled dataset (`datasets.NUM_CLASSES`): every
  # layer adds a projection of the image's one-hot label (pixelrnn/layers/conditioning.py).
  model.num_classes = 0
  # Multi-scale model (pixelrnn/models/multiscale.py): with factor f >= 2 the model above is the
  # large, conditional network and `small` models the (H/f, W/f) subsample first.
  model.multiscale = ml_collections.ConfigDict()
  model.multiscale.factor = 1  # 1: single-scale.
  model.multiscale.conditioning_dim = 32  # c: channels of the conditioning map.
  model.multiscale.embedding_layers = 2  # 3x3 convs embedding the small image.
  model.multiscale.small = ml_collections.ConfigDict()
  model.multiscale.small.name = "pixelcnn"
  model.multiscale.small.hidden_dim = 16
  model.multiscale.small.num_layers = 4
  model.multiscale.small.output_dim = 32
  model.multiscale.small.update(registry.family_key_defaults())
  return model


def _training_group() -> ml_collections.ConfigDict:
  """The training run: batch, schedule of logs, evaluations and checkpoints, EMA, precision."""
  training = ml_collections.ConfigDict()
  training.batch_size = 16
  training.num_steps = 100_000
  training.log_every_steps = 100
  training.eval_every_steps = 5_000
  training.eval_batch_size = 100
  training.checkpoint_every_steps = 1_000
  training.max_checkpoints_to_keep = 3
  training.ema_decay = 0.9995
  # The train step's arithmetic: "float32", "tf32" (TensorFloat-32 matrix units, the GPU
  # default) or "bfloat16" (bf16 compute; float32 state and loss): training/precision.py.
  training.precision = "tf32"
  # 0: the first step with a non-finite loss or gradient stops the run (nothing non-finite
  # is saved). N > 0: such steps leave the parameters unchanged, up to N in a row; this
  # rides through a rare spike but hides divergence longer (pixelrnn/training/finite_guard.py).
  training.skip_nonfinite_updates = 0
  # Train steps per compiled call (>= 1). The training set lives on the device and each
  # call gathers its k batches there, so a small model's step does not wait on the host
  # or on dispatch. Results are the same for every k; metrics are logged for every step;
  # evaluation, checkpoints and stop requests happen between calls.
  training.steps_per_dispatch = 1
  # Multi-scale only. "joint": one optimizer on the whole image's NLL. "separate": the
  # small network and the conditional one (with its conditioning network) each get
  # their own optimizer state and gradient clipping, on their own part's NLL per
  # scored sub-pixel, as if trained apart (the parts share no parameters).
  training.multiscale_objective = "joint"
  return training


class ConfigError(errors.UserError, ValueError):
  """The configuration has an unknown key or an invalid value."""


def _check_keys(config, schema, prefix: str) -> None:
  for key in config.keys():
    path = f"{prefix}{key}"
    if key not in schema:
      close = _closest_key(key, schema, prefix)
      hint = f"did you mean {close!r}? " if close else ""
      raise ConfigError(
        f"Unknown config key {path!r}; {hint}valid keys here: {sorted(schema.keys())}."
      )
    if isinstance(schema[key], ml_collections.ConfigDict):
      if not isinstance(config[key], ml_collections.ConfigDict):
        raise ConfigError(
          f"Config key {path!r} must be a group with keys {sorted(schema[key].keys())}."
        )
      _check_keys(config[key], schema[key], path + ".")
  for key in schema.keys():
    if key not in config:
      raise ConfigError(f"Config is missing key {prefix}{key!r}.")


def _closest_key(key: str, section, prefix: str) -> str | None:
  """The dotted name of the key of `section` (a group, or a leaf with no keys) closest
  to the misspelt `key`, or None."""
  keys = list(section.keys()) if isinstance(section, ml_collections.ConfigDict) else []
  close = difflib.get_close_matches(key, keys, n=1)
  return prefix + close[0] if close else None


def check_key_path(config: ml_collections.ConfigDict, path: str) -> None:
  """Raises ConfigError unless the dotted `path` (e.g. "training.batch_size") names a
  key of `config`, suggesting the closest key where one is near."""
  section, prefix = config, ""
  for key in path.split("."):
    if not isinstance(section, ml_collections.ConfigDict) or key not in section:
      close = _closest_key(key, section, prefix)
      hint = f"; did you mean {close!r}?" if close else ""
      raise ConfigError(f"Unknown config key {path!r}{hint}")
    section, prefix = section[key], f"{prefix}{key}."


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ConfigError(f"Unknown {name} {value!r}; valid choices: {list(choices)}.")


def _check_positive(name: str, value) -> None:
  if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
    raise ConfigError(f"{name} must be a positive number, got {value!r}.")


def _check_integer(name: str, value, minimum: int) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
    raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_decay_steps(config) -> None:
  optimizer, num_steps = config.optimizer, config.training.num_steps
  _check_integer("optimizer.decay_steps", optimizer.decay_steps, 0)
  if optimizer.schedule == "constant_then_linear" and not 0 < optimizer.decay_steps <= num_steps:
    raise ConfigError(
      f"optimizer.decay_steps={optimizer.decay_steps} must be in [1, training.num_steps="
      f"{num_steps}] for the constant_then_linear schedule."
    )


def _check_num_classes(config) -> None:
  num_classes, name = config.model.num_classes, config.data.name
  _check_integer("model.num_classes", num_classes, 0)
  if num_classes == 0:
    return
  if name not in datasets.NUM_CLASSES:
    raise ConfigError(
      f"model.num_classes={num_classes} makes the model class-conditional, but the dataset "
      f"{name!r} has no labels; labelled datasets: {sorted(datasets.NUM_CLASSES)} "
      f"(mnist_thresholded is binary MNIST with its labels)."
    )
  if num_classes != datasets.NUM_CLASSES[name]:
    raise ConfigError(
      f"model.num_classes={num_classes}, but {name} has {datasets.NUM_CLASSES[name]} classes."
    )
  if config.model.multiscale.factor > 1:
    raise ConfigError(
      "model.num_classes > 0 needs a single-scale model "
      "(model.multiscale.factor=1): the multi-scale model is not class-conditional."
    )


def _check_family_keys(group: str, section) -> None:
  """Family-owned keys: each of its default's type, and left at its default by a model
  that does not read it."""
  for key, default in registry.family_key_defaults().items():
    value = section[key]
    if isinstance(default, bool) and not isinstance(value, bool):
      raise ConfigError(f"{group}.{key} must be True or False, got {value!r}.")
    if value != default and section.name not in registry.names_with_key(key):
      raise ConfigError(
        f"{group}.{key} applies to the models that read it, "
        f"{registry.names_with_key(key)}, not {section.name!r}."
      )


def _check_family(config) -> None:
  """The likelihood, and what the model family itself requires (`registry.check_family`)."""
  model = config.model
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  try:
    distributions.from_config(model, num_levels)
    registry.check_family(model, image_shape)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  if model.likelihood != "softmax" and model.multiscale.factor > 1:
    raise ConfigError(f"model.likelihood={model.likelihood!r} needs model.multiscale.factor=1.")


def _check_multiscale(config) -> None:
  ms = config.model.multiscale
  _check_choice("model.multiscale.small.name", ms.small.name, tuple(registry.MODEL_CLASSES))
  if not isinstance(ms.factor, int) or isinstance(ms.factor, bool) or ms.factor < 1:
    raise ConfigError(
      f"model.multiscale.factor must be an integer >= 1 (1: single-scale), got {ms.factor!r}."
    )
  height, width = datasets.IMAGE_SPECS[config.data.name][0][:2]
  if ms.factor > 1 and (height % ms.factor or width % ms.factor):
    raise ConfigError(
      f"model.multiscale.factor={ms.factor} must divide the {config.data.name} "
      f"image size {height}x{width}."
    )
  if not isinstance(ms.embedding_layers, int) or ms.embedding_layers < 0:
    raise ConfigError(
      f"model.multiscale.embedding_layers must be an integer >= 0, got {ms.embedding_layers!r}."
    )


def _check_positives(config) -> None:
  for group, keys in {
    "model": ("hidden_dim", "num_layers", "output_dim"),
    "model.multiscale": ("conditioning_dim",),
    "model.multiscale.small": ("hidden_dim", "num_layers", "output_dim"),
    "training": (
      "batch_size",
      "num_steps",
      "log_every_steps",
      "eval_every_steps",
      "eval_batch_size",
      "checkpoint_every_steps",
      "max_checkpoints_to_keep",
    ),
    "optimizer": ("learning_rate", "eps", "decay_per_step"),
  }.items():
    section = config
    for name in group.split("."):
      section = section[name]
    for key in keys:
      _check_positive(f"{group}.{key}", section[key])


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the bad key or value and what was expected."""
  _check_keys(config, base_config(), "")
  _check_choice("data.name", config.data.name, datasets.NAMES)
  _check_choice("model.name", config.model.name, tuple(registry.MODEL_CLASSES))
  _check_choice("optimizer.name", config.optimizer.name, optimizers.OPTIMIZERS)
  _check_choice("optimizer.schedule", config.optimizer.schedule, optimizers.SCHEDULES)
  _check_choice("training.precision", config.training.precision, precision.PRECISIONS)
  _check_choice(
    "training.multiscale_objective", config.training.multiscale_objective, MULTISCALE_OBJECTIVES
  )
  _check_multiscale(config)
  _check_family(config)
  _check_positives(config)
  for group, section in (
    ("model", config.model),
    ("model.multiscale.small", config.model.multiscale.small),
  ):
    _check_family_keys(group, section)
  _check_num_classes(config)
  _check_integer("training.skip_nonfinite_updates", config.training.skip_nonfinite_updates, 0)
  _check_integer("training.steps_per_dispatch", config.training.steps_per_dispatch, 1)
  for key in ("ema_decay",):
    if not 0.0 <= config.training[key] < 1.0:
      raise ConfigError(f"training.{key} must be in [0, 1), got {config.training[key]!r}.")
  _check_decay_steps(config)
  if config.optimizer.grad_clip_norm < 0 or config.optimizer.warmup_steps < 0:
    raise ConfigError("optimizer.grad_clip_norm and optimizer.warmup_steps must be >= 0.")
