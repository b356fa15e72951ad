"""Pretrained models installed with the package: the recorded rows' EMA parameters.

  from pixelrnn import pretrained
  loaded = pretrained.load("bmnist_diagonal_bilstm_1x32")
  network = loaded.model.merged(loaded.params)  # An nnx.Module: network(images) -> logits

Each pretrained model is a folder of `pixelrnn/data_files/pretrained/` (`PRETRAINED_DIR`):
`config.json` (the config it was trained with), `params.npz` (its EMA parameters, one
array per parameter path) and `record.json` (the row's record: test NLL, steps, date).
`experiments/reproduce.py` writes one when a row finishes (`export`).
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np
from flax import nnx

from pixelrnn import defaults, errors
from pixelrnn.data import datasets
from pixelrnn.models import registry
from pixelrnn.training import train
from pixelrnn.workdir import checkpoints

PRETRAINED_DIR = os.path.join(
  os.path.dirname(os.path.abspath(__file__)), "data_files", "pretrained"
)
FILES = ("config.json", "params.npz", "record.json")


class PretrainedError(errors.UserError, ValueError):
  """An unknown pretrained model, or one whose files do not match its config."""


@dataclasses.dataclass(frozen=True)
class Loaded:
  """A model and its parameters, ready to evaluate or sample.

  `model.merged(params)` is the network; `image_shape` is (H, W, C) and `num_levels` K.
  """

  name: str
  config: ml_collections.ConfigDict
  model: registry.FunctionalModel
  params: nnx.State
  step: int
  image_shape: tuple[int, int, int]
  num_levels: int
  record: dict

  def source(self) -> tuple:
    """(model, params, step, image_shape, num_levels), as `train.load_ema_params` gives."""
    return self.model, self.params, self.step, self.image_shape, self.num_levels


def available(root: str = PRETRAINED_DIR) -> list[str]:
  """The names of the pretrained models under `root`."""
  if not os.path.isdir(root):
    return []
  return sorted(
    name
    for name in os.listdir(root)
    if all(os.path.isfile(os.path.join(root, name, f)) for f in FILES)
  )


def _path_key(path) -> str:
  return jax.tree_util.keystr(path)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  """The schema's config with the values of a config written by `ConfigDict.to_json`;
  keys added to the schema since then keep their defaults."""
  config = defaults.base_config()

  def assign(target, values, prefix):
    for key, value in values.items():
      if key not in target:
        raise PretrainedError(
          f"Config key {prefix}{key!r} of the pretrained model is not in this version's schema."
        )
      if isinstance(value, dict):
        assign(target[key], value, f"{prefix}{key}.")
      else:
        target[key] = value

  assign(config, json.loads(text), "")
  defaults.validate(config)
  return config


def export(
  config: ml_collections.ConfigDict,
  params: nnx.State,
  record: dict,
  name: str,
  root: str = PRETRAINED_DIR,
) -> str:
  """Writes `params` (EMA parameters) with `config` and `record` as pretrained model
  `name` under `root`, replacing any earlier one; returns its folder."""
  folder = os.path.join(root, name)
  os.makedirs(folder, exist_ok=True)
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
  arrays = {_path_key(path): np.asarray(leaf) for path, leaf in leaves}
  tmp = os.path.join(folder, "params.tmp.npz")
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, os.path.join(folder, "params.npz"))
  for filename, text in (
    ("config.json", config.to_json(indent=2)),
    ("record.json", json.dumps(record, indent=2)),
  ):
    with open(os.path.join(folder, filename + ".tmp"), "w") as f:
      f.write(text + "\n")
    os.replace(os.path.join(folder, filename + ".tmp"), os.path.join(folder, filename))
  return folder


def load(name: str, root: str = PRETRAINED_DIR) -> Loaded:
  """The pretrained model `name`: its model, EMA parameters, config and record."""
  if name not in available(root):
    raise PretrainedError(f"Unknown pretrained model {name!r}; installed: {available(root)}.")
  folder = os.path.join(root, name)
  with open(os.path.join(folder, "config.json")) as f:
    config = config_from_json(f.read())
  with open(os.path.join(folder, "record.json")) as f:
    record = json.load(f)
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  model, initial = registry.build(
    config.model, image_shape=image_shape, num_levels=num_levels, seed=config.seed
  )
  with np.load(os.path.join(folder, "params.npz")) as stored:
    arrays = dict(stored)

  def stored_leaf(path, leaf):
    key = _path_key(path)
    if key not in arrays or arrays[key].shape != leaf.shape or arrays[key].dtype != leaf.dtype:
      found = "missing" if key not in arrays else f"{arrays[key].shape} {arrays[key].dtype}"
      raise PretrainedError(
        f"Pretrained model {name!r}: parameter {key} is {found}, its config "
        f"needs {leaf.shape} {leaf.dtype}."
      )
    return arrays.pop(key)

  params = jax.tree_util.tree_map_with_path(stored_leaf, initial)
  if arrays:
    raise PretrainedError(
      f"Pretrained model {name!r} has parameters its config does not: {sorted(arrays)[:3]}."
    )
  return Loaded(name, config, model, params, int(record["steps"]), image_shape, num_levels, record)


def export_checkpoint(
  config: ml_collections.ConfigDict,
  workdir: str,
  record: dict,
  name: str,
  root: str = PRETRAINED_DIR,
) -> str:
  """`export` of the EMA parameters of workdir's latest checkpoint."""
  checkpoints.require_checkpoints(workdir)
  _, params, _, _, _ = train.load_ema_params(config, workdir)
  return export(config, params, record, name, root)
