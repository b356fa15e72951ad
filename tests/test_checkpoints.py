"""checkpoints.py: a workdir's config.json pins its model and dataset; bad workdirs are named."""

import json

import pytest

from pixelrnn import defaults
from pixelrnn.workdir import checkpoints


def small_config():
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers = 4, 1
  return config


def test_a_workdir_recorded_for_another_model_is_refused_naming_the_difference(tmp_path):
  checkpoints.record_or_check_config(str(tmp_path), small_config())
  checkpoints.record_or_check_config(str(tmp_path), small_config())  # The same: accepted.
  longer = small_config()
  longer.training.num_steps = 10**6  # Training settings may change between runs.
  checkpoints.record_or_check_config(str(tmp_path), longer)
  on_the_kernel = small_config()
  on_the_kernel.model.name, on_the_kernel.model.pallas_lstm = "row_lstm", True
  with pytest.raises(
    checkpoints.CheckpointError, match=r"'model.name': \('pixelcnn', 'row_lstm'\)"
  ):
    checkpoints.record_or_check_config(str(tmp_path), on_the_kernel)
  other = small_config()
  other.model.hidden_dim = 6
  with pytest.raises(
    checkpoints.CheckpointError, match=r"different model or dataset.*'model.hidden_dim': \(4, 6\)"
  ):
    checkpoints.record_or_check_config(str(tmp_path), other)


def test_switching_the_lstm_kernel_keeps_the_workdir_since_the_parameters_are_the_same(tmp_path):
  config = small_config()
  config.model.name = "diagonal_bilstm"
  checkpoints.record_or_check_config(str(tmp_path), config)
  config.model.pallas_lstm = True
  checkpoints.record_or_check_config(str(tmp_path), config)


def test_a_workdir_recorded_before_a_model_key_existed_takes_its_default(tmp_path):
  checkpoints.record_or_check_config(str(tmp_path), small_config())
  recorded = json.loads((tmp_path / "config.json").read_text())
  del recorded["model"]["skip"]  # As written by a version without that key.
  (tmp_path / "config.json").write_text(json.dumps(recorded))
  checkpoints.record_or_check_config(str(tmp_path), small_config())
  changed = small_config()
  changed.model.skip = True
  with pytest.raises(checkpoints.CheckpointError, match=r"'model.skip': \(False, True\)"):
    checkpoints.record_or_check_config(str(tmp_path), changed)


def test_a_workdir_without_checkpoints_or_that_is_a_file_is_named(tmp_path):
  with pytest.raises(
    checkpoints.CheckpointError, match="No checkpoints in workdir .*train there first"
  ):
    checkpoints.require_checkpoints(str(tmp_path))
  (tmp_path / "file").write_text("")
  with pytest.raises(checkpoints.CheckpointError, match="is a file, expected a directory"):
    checkpoints.check_workdir(str(tmp_path / "file"))
  with pytest.raises(checkpoints.CheckpointError, match="No checkpoint found in"):
    checkpoints.restore(checkpoints.manager(str(tmp_path / "new"), small_config()), None)
