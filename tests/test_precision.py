"""The precision policy: training computes as `training.precision` says; evaluation and
the samplers always compute full float32, whatever the setting or the hardware default."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import short_adam_run
from flax import nnx

from pixelrnn import defaults
from pixelrnn.data import loading as data_lib
from pixelrnn.models import multiscale, registry
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.row_lstm import RowLSTM
from pixelrnn.sampling import completion, samplers
from pixelrnn.training import precision, train
from pixelrnn.training import trainer as trainer_lib

MATMUL_OP = re.compile(r"stablehlo\.(dot_general|convolution)\b.*")


def matmul_ops(lowered) -> list[str]:
  """The matrix products and convolutions of a lowered computation, one line each."""
  return [m.group(0) for m in MATMUL_OP.finditer(lowered.as_text())]


def precisions(op: str) -> set[str]:
  """The operand precisions of one op: {"HIGHEST"}, {"HIGH"} or {"DEFAULT"}."""
  return set(re.findall(r"\b(DEFAULT|HIGHEST|HIGH)\b", op))


def assert_full_precision(lowered):
  ops = matmul_ops(lowered)
  assert ops, "expected matrix products or convolutions"
  for op in ops:
    assert precisions(op) == {"HIGHEST"} and "bf16" not in op, op


def tiny_config(precision_name, name="pixelcnn"):
  config = defaults.base_config()
  config.model.name = name
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 4, 1, 8
  config.training.batch_size = config.training.eval_batch_size = 8
  config.training.precision = precision_name
  return config


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"])
@pytest.mark.parametrize("precision_name", precision.PRECISIONS)
def test_evaluation_lowers_to_full_float32_whatever_the_training_precision(precision_name, name):
  trainer = trainer_lib.Trainer(
    tiny_config(precision_name, name), (6, 6, 1), 2, trainer_lib.make_mesh()
  )
  params = trainer.initial_state().ema_params
  batch = trainer.shard_batch(np.zeros((8, 6, 6, 1), np.uint8))
  valid = trainer.shard_batch(np.ones(8, bool))
  # Even inside a lower default (a TPU's bfloat16 passes, say), evaluation stays full.
  with jax.default_matmul_precision("bfloat16"):
    assert_full_precision(trainer.eval_step.lower(trainer.model, params, {"images": batch}, valid))


@pytest.mark.parametrize(
  "model_name", ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]
)
def test_training_lowers_at_the_configured_precision(model_name):
  images = np.zeros((8, 6, 6, 1), np.uint8)
  ops = {}
  for name in precision.PRECISIONS:
    trainer = trainer_lib.Trainer(
      tiny_config(name, model_name), (6, 6, 1), 2, trainer_lib.make_mesh()
    )
    ops[name] = matmul_ops(
      trainer.train_steps.lower(
        trainer.model,
        trainer.initial_state(),
        trainer.device_data(images),
        np.zeros((1, 8), np.int32),
        np.int32(1),
      )
    )
  assert all(precisions(op) == {"HIGHEST"} and "bf16" not in op for op in ops["float32"])
  assert all(precisions(op) == {"HIGH"} and "bf16" not in op for op in ops["tf32"])
  # bfloat16: every product and convolution, forward and backward, takes bf16 operands.
  assert all(
    re.search(r"\(tensor<[^>]*bf16>, tensor<[^>]*bf16>\)", op) for op in ops["bfloat16"]
  ), [op for op in ops["bfloat16"] if "bf16" not in op]


@pytest.mark.parametrize("cls", [PixelCNN, RowLSTM, DiagonalBiLSTM])
def test_samplers_lower_to_full_float32(cls):
  kwargs = dict(
    num_channels=3, num_levels=4, hidden_dim=6, num_layers=1, output_dim=12, rngs=nnx.Rngs(0)
  )
  if cls is not PixelCNN:
    kwargs.update(residual=True, skip=False)
  model = cls(**kwargs)
  shape = (3, 4, 3)
  key = jax.random.key(0)
  images = jnp.zeros((2,) + shape, jnp.int32)
  with jax.default_matmul_precision("tensorfloat32"):  # A GPU's default.
    assert_full_precision(
      jax.jit(lambda k: samplers.sample(model, k, num_samples=2, image_shape=shape)).lower(key)
    )
    assert_full_precision(
      jax.jit(
        lambda k: samplers.sample_reference(model, k, num_samples=2, image_shape=shape)
      ).lower(key)
    )
    assert_full_precision(
      jax.jit(
        lambda k: completion.complete(model, k, images, observed_rows=1, num_completions=2)
      ).lower(key)
    )


def test_the_multiscale_sampler_lowers_to_full_float32():
  config = defaults.base_config().model
  config.hidden_dim, config.num_layers, config.output_dim = 4, 1, 8
  config.multiscale.factor, config.multiscale.conditioning_dim = 2, 4
  config.multiscale.small.hidden_dim, config.multiscale.small.num_layers = 4, 1
  model, params = registry.build(config, image_shape=(4, 4, 1), num_levels=2, seed=0)
  network = model.merged(params)
  with jax.default_matmul_precision("tensorfloat32"):
    assert_full_precision(
      jax.jit(lambda k: multiscale.sample(network, k, num_samples=2, image_shape=(4, 4, 1))).lower(
        jax.random.key(0)
      )
    )


def test_eval_nll_of_a_fixed_model_is_identical_under_each_training_precision():
  images = data_lib.load_binarized_mnist("validation").images[:64]
  nlls = {}
  for name in precision.PRECISIONS:
    trainer = trainer_lib.Trainer(tiny_config(name), (28, 28, 1), 2, trainer_lib.make_mesh())
    nlls[name] = trainer.evaluate(trainer.initial_state().ema_params, images)["nll_nats"]
  assert nlls["float32"] == nlls["tf32"] == nlls["bfloat16"], nlls


def test_a_bfloat16_step_keeps_float32_parameters_optimizer_state_and_loss():
  trainer = trainer_lib.Trainer(tiny_config("bfloat16"), (6, 6, 1), 2, trainer_lib.make_mesh())
  images = np.random.default_rng(0).integers(0, 2, (8, 6, 6, 1), dtype=np.uint8)
  state, metrics = trainer.train_step(
    trainer.model, trainer.initial_state(), trainer.shard_batch(images)
  )
  floating = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert floating and all(x.dtype == jnp.float32 for x in floating)
  assert all(np.asarray(v).dtype == np.float32 for k, v in metrics.items() if k != "finite")
  # The bf16 forward pass really differs from the float32 one.
  f32 = trainer_lib.Trainer(tiny_config("float32"), (6, 6, 1), 2, trainer_lib.make_mesh())
  _, f32_metrics = f32.train_step(f32.model, f32.initial_state(), f32.shard_batch(images))
  assert float(metrics["loss"]) != float(f32_metrics["loss"])
  assert float(metrics["loss"]) == pytest.approx(float(f32_metrics["loss"]), rel=2e-2)


def test_bfloat16_training_learns_on_real_binarized_mnist(tmp_path):
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 16, 3, 32
  config.training.precision = "bfloat16"
  short_adam_run(config, num_steps=400)
  after = train.train_and_evaluate(config, str(tmp_path), progress=False)
  # The same network trained in float32 reaches < 150 (tests/test_train.py).
  assert after["nll_nats"] < 150, after


def test_an_unknown_precision_is_refused_with_the_valid_choices():
  config = tiny_config("float16")
  with pytest.raises(
    defaults.ConfigError, match=r"training.precision 'float16'.*'float32', 'tf32', 'bfloat16'"
  ):
    defaults.validate(config)
