"""Shared test set-up.

Four host CPU devices are forced (before JAX is imported) so the data-parallel
tests can compare 1-, 2- and 4-device meshes in one process.
"""

import functools
import importlib.util
import os
import pathlib
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(
  os.environ.get("PIXELRNN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


@functools.cache  # Once per session: the scripts define absl flags.
def experiment(name: str):
  """experiments/<name>.py as a module, with experiments/ on the path for the sibling
  modules it imports, and registered in sys.modules (dataclasses look their module up)."""
  sys.path.insert(0, str(REPO_ROOT / "experiments"))
  spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "experiments" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def _require_shared_data() -> pathlib.Path:
  if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"needs the shared real datasets at {SHARED_DATA} (absent on this machine)")
  return SHARED_DATA


@pytest.fixture
def shared_data() -> pathlib.Path:
  """../shared/data (real MNIST files); skips the test when it is absent."""
  return _require_shared_data()


@pytest.fixture(scope="session")
def mnist_tfds_dir(tmp_path_factory) -> pathlib.Path:
  """A TFDS data_dir holding MNIST, built offline from ../shared/data/mnist once per
  session (a build takes about a minute); skips the test when ../shared is absent."""
  from pixelrnn.data import loading as data_lib

  data_dir = tmp_path_factory.mktemp("tfds")
  data_lib.load_tfds(
    "mnist", "test", data_dir=str(data_dir), manual_dir=str(_require_shared_data() / "mnist")
  )
  return data_dir


def tiny_config_file(
  path: pathlib.Path,
  *,
  num_steps: int,
  checkpoint_every: int,
  eval_every: int,
  eval_split: str = "test",
) -> str:
  """Writes a config file of a tiny PixelCNN (1 block, h=4) trained with Adam on batch 8
  to `path`, for tests of whole runs; returns its path."""
  path.write_text(f"""
from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 4, 1, 8
  training = config.training
  training.batch_size, training.num_steps, training.log_every_steps = 8, {num_steps}, 1
  training.checkpoint_every_steps, training.eval_every_steps = {checkpoint_every}, {eval_every}
  training.eval_batch_size = 1000
  config.data.eval_split = {eval_split!r}
  config.optimizer.name = "adam"
  return config
""")
  return str(path)


def short_adam_run(config, num_steps: int):
  """Sets `config` to a short Adam run of batch 32 that evaluates (and checkpoints)
  once, at the end: the real-learning tests' schedule. Returns `config`."""
  training = config.training
  training.batch_size, training.num_steps, training.log_every_steps = 32, num_steps, 100
  training.eval_every_steps = training.checkpoint_every_steps = num_steps
  training.eval_batch_size, training.ema_decay = 1000, 0.99
  config.optimizer.name, config.optimizer.learning_rate = "adam", 2e-3
  return config


def truncate_arrays(step_dir: pathlib.Path) -> None:
  """Empties every array file of a checkpoint folder, as a full disk or a killed copy does."""
  truncated = [f for f in step_dir.rglob("*") if f.is_file() and f.parent.name == "d"]
  for array_file in truncated:
    array_file.write_bytes(b"")
  assert truncated


def assert_cached_mixture_sampling_is_exact(model, distribution, observed, num_observed, seed=3):
  """The cached sampler draws the reference sampler's images from the same key, keeping the
  first `num_observed` sub-pixels of `observed` (B, H, W, C), and each pixel's outputs are
  the forward pass's on the finished images (a whole-pixel `distribution`'s model)."""
  import jax
  import numpy as np

  from pixelrnn.sampling import samplers

  batch, shape = observed.shape[0], observed.shape[1:]
  kwargs = dict(num_samples=batch, image_shape=shape, images=observed, num_observed=num_observed)
  key = jax.random.key(seed)
  reference = jax.jit(
    lambda k: samplers.sample_reference(model, k, distribution=distribution, **kwargs)
  )(key)
  cached, outputs = jax.jit(
    lambda k: samplers.sample_cached(model, k, return_logits=True, **kwargs)
  )(key)
  np.testing.assert_array_equal(cached, reference)
  flat = lambda a: np.asarray(a).reshape(batch, -1)
  np.testing.assert_array_equal(flat(cached)[:, :num_observed], flat(observed)[:, :num_observed])
  forward = model(cached).reshape(batch, -1, outputs.shape[-1]).transpose(1, 0, 2)
  first = num_observed // shape[-1]
  np.testing.assert_allclose(outputs[first:], forward[first:], rtol=1e-4, atol=1e-5)
  return cached
