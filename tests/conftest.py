"""Shared test set-up.

Four host CPU devices are forced (before JAX is imported) so the data-parallel
tests can compare 1-, 2- and 4-device meshes in one process.
"""

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get("PIXELRNN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
  """../shared/data (real MNIST files); skips the test when it is absent."""
  if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"needs the shared real datasets at {SHARED_DATA} (absent on this machine)")
  return SHARED_DATA


def short_adam_run(config, num_steps: int):
  """Sets `config` to a short Adam run of batch 32 that evaluates (and checkpoints)
  once, at the end: the real-learning tests' schedule. Returns `config`."""
  training = config.training
  training.batch_size, training.num_steps, training.log_every_steps = 32, num_steps, 100
  training.eval_every_steps = training.checkpoint_every_steps = num_steps
  training.eval_batch_size, training.ema_decay = 1000, 0.99
  config.optimizer.name, config.optimizer.learning_rate = "adam", 2e-3
  return config
