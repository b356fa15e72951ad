import math

import jax
import numpy as np
import pytest
from conftest import short_adam_run, truncate_arrays

from pixelrnn import defaults
from pixelrnn.data import batching
from pixelrnn.data import loading as data_lib
from pixelrnn.training import train
from pixelrnn.training import trainer as trainer_lib
from pixelrnn.workdir import checkpoints, metric_writers


def tiny_config(num_steps=12):
  config = defaults.base_config()
  config.model.hidden_dim = 4
  config.model.num_layers = 1
  config.model.output_dim = 8
  config.data.eval_split = "validation"
  config.training.batch_size = 8
  config.training.num_steps = num_steps
  config.training.log_every_steps = 1
  config.training.eval_every_steps = 1000
  config.training.eval_batch_size = 1000
  config.training.checkpoint_every_steps = 3
  config.optimizer.name = "adam"
  return config


def restored(config, workdir):
  test = data_lib.load_binarized_mnist("validation")
  trainer = trainer_lib.Trainer(config, test.image_shape, test.num_levels, trainer_lib.make_mesh())
  return checkpoints.restore(checkpoints.manager(workdir, config), trainer.abstract_state())


def assert_same_state(a, b):
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """The final state of an uninterrupted 12-step run: what every resume must reproduce."""
  workdir = str(tmp_path_factory.mktemp("straight"))
  train.train_and_evaluate(tiny_config(12), workdir, progress=False)
  return workdir


def indices_failing_at(step: int, error: BaseException):
  """A `data.train_batch_indices` stand-in that raises `error` instead of yielding the
  indices of step `step` (0-based)."""
  real_indices = batching.train_batch_indices

  def indices(*args, **kwargs):
    for k, batch_indices in enumerate(real_indices(*args, **kwargs)):
      if k == step:
        raise error
      yield batch_indices

  return indices


def test_real_binarized_mnist_learning_takes_test_nll_below_150_nats(tmp_path):
  config = defaults.base_config()
  config.model.hidden_dim = 16
  config.model.num_layers = 3
  config.model.output_dim = 32
  short_adam_run(config, num_steps=400)

  test = data_lib.load_binarized_mnist("test")
  trainer = trainer_lib.Trainer(config, test.image_shape, test.num_levels, trainer_lib.make_mesh())
  before = trainer.evaluate(trainer.initial_state().ema_params, test.images[:1000])
  # Untrained: at best a uniform model, 784 ln 2 = 543 nats (on any subset).
  assert before["nll_nats"] > 0.95 * 784 * math.log(2), before

  after = train.train_and_evaluate(config, str(tmp_path), progress=False)
  assert after["nll_nats"] < 150, after
  evals = [r for r in metric_writers.read_metrics(str(tmp_path)) if r["split"] == "eval"]
  assert evals[-1]["step"] == 400 and evals[-1]["nll_nats"] == pytest.approx(after["nll_nats"])


def test_resuming_from_a_checkpoint_reproduces_an_uninterrupted_run(tmp_path, straight_run):
  halves = str(tmp_path / "halves")
  train.train_and_evaluate(tiny_config(6), halves, progress=False)
  train.train_and_evaluate(tiny_config(12), halves, progress=False)
  assert_same_state(restored(tiny_config(12), straight_run), restored(tiny_config(12), halves))
  rows = lambda d: [r for r in metric_writers.read_metrics(d) if r["split"] == "train"]
  assert rows(straight_run) == rows(halves)


def test_several_steps_per_dispatch_reproduce_the_one_step_loop_bit_for_bit(tmp_path, straight_run):
  config = tiny_config(12)
  # Dispatches of 4, 1, 4, 1 and 2 steps: each ends at a checkpoint (every 5) or the end.
  config.training.steps_per_dispatch = 4
  config.training.checkpoint_every_steps = 5
  dispatched = str(tmp_path / "dispatched")
  train.train_and_evaluate(config, dispatched, progress=False)
  assert_same_state(restored(tiny_config(12), straight_run), restored(tiny_config(12), dispatched))
  rows = lambda d: [r for r in metric_writers.read_metrics(d) if r["split"] == "train"]
  assert rows(straight_run) == rows(dispatched)

  # Resumed from step 5 with yet another k.
  config.training.steps_per_dispatch = 3
  resumed = str(tmp_path / "resumed")
  config.training.num_steps = 5
  train.train_and_evaluate(config, resumed, progress=False)
  config.training.num_steps = 12
  train.train_and_evaluate(config, resumed, progress=False)
  assert_same_state(restored(tiny_config(12), straight_run), restored(tiny_config(12), resumed))


def test_a_crashed_run_resumes_from_its_last_checkpoint_without_repeating_steps(
  tmp_path, monkeypatch, straight_run
):
  crashed = str(tmp_path / "crashed")
  real_indices = batching.train_batch_indices
  monkeypatch.setattr(
    batching, "train_batch_indices", indices_failing_at(8, RuntimeError("simulated crash"))
  )
  with pytest.raises(RuntimeError, match="simulated crash"):
    train.train_and_evaluate(tiny_config(12), crashed, progress=False)
  assert checkpoints.manager(crashed, tiny_config()).latest_step() == 6
  monkeypatch.setattr(batching, "train_batch_indices", real_indices)
  train.train_and_evaluate(tiny_config(12), crashed, progress=False)

  assert_same_state(restored(tiny_config(12), straight_run), restored(tiny_config(12), crashed))
  steps = [r["step"] for r in metric_writers.read_metrics(crashed) if r["split"] == "train"]
  assert steps == list(range(1, 13)), "steps 7 and 8 must be logged once"


def test_a_corrupt_latest_checkpoint_is_named_kept_and_the_newest_intact_one_used(
  tmp_path, capsys, straight_run
):
  workdir = tmp_path / "corrupt"
  train.train_and_evaluate(tiny_config(9), str(workdir), progress=False)  # Checkpoints 3, 6, 9.
  truncate_arrays(workdir / "checkpoints" / "9")
  kept = sorted(p.name for p in (workdir / "checkpoints" / "9").rglob("*"))
  capsys.readouterr()

  # Evaluation reads the newest intact checkpoint and leaves the corrupt one in place.
  assert train.evaluate_checkpoint(tiny_config(12), str(workdir))["step"] == 6
  warning = capsys.readouterr().err
  assert warning.startswith(f"Warning: checkpoint 9 in {workdir / 'checkpoints'} cannot be read (")
  assert "it is left where it is. Using checkpoint 6, the newest intact one." in warning
  assert (workdir / "checkpoints" / "9").is_dir()

  # Training resumes from step 6, sets checkpoint 9 aside (never deleted) and writes its own.
  train.train_and_evaluate(tiny_config(12), str(workdir), progress=False)
  assert f"moved to {workdir / 'corrupt_checkpoints' / '9'}" in capsys.readouterr().err
  assert sorted(p.name for p in (workdir / "corrupt_checkpoints" / "9").rglob("*")) == kept
  assert_same_state(
    restored(tiny_config(12), straight_run), restored(tiny_config(12), str(workdir))
  )

  # With no intact checkpoint left, one error names each checkpoint and its cause.
  for step_dir in (workdir / "checkpoints").iterdir():
    truncate_arrays(step_dir)
  with pytest.raises(
    checkpoints.CheckpointError,
    match=r"No checkpoint in .* can be restored for this config: "
    r"checkpoint 12: ValueError: .*; checkpoint 9: .*; checkpoint 6: ",
  ):
    train.evaluate_checkpoint(tiny_config(12), str(workdir))


def test_ctrl_c_saves_a_checkpoint_and_the_rerun_continues_exactly(
  tmp_path, monkeypatch, straight_run
):
  interrupted = str(tmp_path / "interrupted")
  real_indices = batching.train_batch_indices
  monkeypatch.setattr(batching, "train_batch_indices", indices_failing_at(7, KeyboardInterrupt()))
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(tiny_config(12), interrupted, progress=False)
  # Checkpoints every 3 steps would give 6; the interrupt saved step 7 as well.
  assert checkpoints.manager(interrupted, tiny_config()).latest_step() == 7
  monkeypatch.setattr(batching, "train_batch_indices", real_indices)
  train.train_and_evaluate(tiny_config(12), interrupted, progress=False)
  assert_same_state(restored(tiny_config(12), straight_run), restored(tiny_config(12), interrupted))


@pytest.mark.parametrize("num_devices", [2, 4])
def test_data_parallel_step_matches_one_device(num_devices):
  assert jax.device_count() >= num_devices, "conftest forces four CPU devices"
  config = tiny_config()
  config.training.batch_size = 16
  images = data_lib.load_binarized_mnist("validation").images[:48]
  states = []
  for devices in (jax.devices()[:1], jax.devices()[:num_devices]):
    trainer = trainer_lib.Trainer(config, (28, 28, 1), 2, trainer_lib.make_mesh(devices))
    state = trainer.initial_state()
    for k in range(3):
      batch = trainer.shard_batch(images[16 * k : 16 * (k + 1)])
      assert len(batch.sharding.device_set) == len(devices)
      state, _ = trainer.train_step(trainer.model, state, batch)
    assert len(jax.tree.leaves(state.params)[0].sharding.device_set) == len(devices)
    states.append(jax.device_get(state))
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
    states[0].params,
    states[1].params,
  )
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
    states[0].ema_params,
    states[1].ema_params,
  )


def family_config(name, factor=1, num_classes=0):
  """A 2-layer model of family `name` on 8x8 images of 256 levels, batch 4."""
  config = tiny_config()
  config.model.name, config.model.multiscale.factor = name, factor
  config.model.num_layers = 2
  config.model.num_classes = num_classes
  if name == "pixelcnn_pp":
    config.model.likelihood, config.model.num_mixtures, config.model.num_resolutions = (
      "logistic_mixture",
      2,
      2,
    )
  config.training.batch_size = config.training.eval_batch_size = 4
  return config


FAMILIES = [
  ("pixelcnn", 1, 0),
  ("row_lstm", 1, 0),
  ("diagonal_bilstm", 1, 0),
  ("gated_pixelcnn", 1, 0),
  ("pixelcnn_pp", 1, 0),
  ("pixelcnn", 2, 0),
  ("gated_pixelcnn", 1, 10),
]


@pytest.mark.parametrize("name, factor, num_classes", FAMILIES)
def test_every_family_steps_on_a_split_cpu_as_on_one_device_with_its_batch_sharded(
  name, factor, num_classes
):
  # A CPU trains as one device per core by default: the same step, its batch summed in
  # parts. A layer whose reshapes merge the batch with another axis would make XLA gather
  # the whole batch on every device, so that each device computed every image.
  config = family_config(name, factor, num_classes)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  labels = rng.integers(0, num_classes, 4).astype(np.int32) if num_classes else None
  indices = np.arange(4, dtype=np.int32)[None]
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:2]):
    trainer = trainer_lib.Trainer(config, (8, 8, 1), 256, trainer_lib.make_mesh(devices))
    state, data = trainer.initial_state(), trainer.device_data(images, labels)
    step = trainer.train_steps.lower(trainer.model, state, data, indices, np.int32(1)).compile()
    state, metrics = step(trainer.model, state, data, indices, np.int32(1))
    results.append(jax.device_get((metrics["loss"][0], state.opt_state)))
  assert "all-gather" not in step.as_text()
  batch = {"images": images.astype(np.int32)}
  if num_classes:
    batch["labels"] = labels
  valid = trainer.shard_batch(np.ones(4, bool))
  evaluate = trainer.eval_step.lower(
    trainer.model, state.ema_params, trainer.shard_batch(batch), valid
  )
  assert "all-gather" not in evaluate.compile().as_text()
  (loss_one, moments_one), (loss_split, moments_split) = results
  np.testing.assert_allclose(loss_split, loss_one, rtol=1e-5)
  # Adam's first moments after one step are a tenth of the gradients.
  for one, split in zip(jax.tree.leaves(moments_one), jax.tree.leaves(moments_split)):
    scale = float(np.max(np.abs(one))) if np.size(one) else 0.0
    np.testing.assert_allclose(split, one, rtol=1e-4, atol=1e-5 * scale)


def test_a_batch_that_does_not_divide_over_the_devices_is_refused():
  config = tiny_config()
  config.training.batch_size = 7
  with pytest.raises(
    ValueError, match=r"training.batch_size=7 must be divisible by the number of devices \(2\)"
  ):
    trainer_lib.Trainer(config, (28, 28, 1), 2, trainer_lib.make_mesh(jax.devices()[:2]))


def test_evaluating_images_of_the_wrong_shape_dtype_or_levels_fails_clearly():
  trainer = trainer_lib.Trainer(tiny_config(), (28, 28, 1), 2, trainer_lib.make_mesh())
  params = trainer.initial_state().params
  with pytest.raises(
    data_lib.DataError, match=r"shape \(4, 32, 32, 3\), expected \(N, 28, 28, 1\)"
  ):
    trainer.evaluate(params, np.zeros((4, 32, 32, 3), np.uint8))
  with pytest.raises(data_lib.DataError, match="dtype float32, expected integer levels"):
    trainer.evaluate(params, np.zeros((4, 28, 28, 1), np.float32))
  with pytest.raises(data_lib.DataError, match=r"span \[0, 255\], expected levels in \[0, 2\)"):
    trainer.evaluate(
      params,
      np.full((4, 28, 28, 1), 255, np.uint8)
      * (np.arange(4) > 0)[:, None, None, None].astype(np.uint8),
    )


def test_evaluating_an_empty_workdir_says_so(tmp_path):
  with pytest.raises(
    checkpoints.CheckpointError, match="No checkpoints in workdir .*train there first"
  ):
    train.evaluate_checkpoint(tiny_config(), str(tmp_path))


@pytest.mark.parametrize("model_name", ["row_lstm", "diagonal_bilstm"])
def test_recurrent_models_learn_on_real_binarized_mnist(model_name):
  config = defaults.base_config()
  config.model.name = model_name
  config.model.hidden_dim = 8
  config.model.num_layers = 2
  config.model.output_dim = 16
  config.training.batch_size = 16
  config.training.num_steps = 300
  config.training.eval_batch_size = 500
  config.training.ema_decay = 0.0  # Evaluate the trained parameters themselves.
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  train_data = data_lib.load_binarized_mnist("train")
  test_images = data_lib.load_binarized_mnist("test").images[:1000]
  # One device: over the four forced host devices, which share the cores, the Diagonal
  # BiLSTM's steps were about 2.5x slower (their all-reduces), and queued steps could
  # deadlock XLA:CPU's all-reduce. Data parallelism has its own tests.
  trainer = trainer_lib.Trainer(
    config, (28, 28, 1), 2, trainer_lib.make_mesh(jax.local_devices()[:1])
  )
  state = trainer.initial_state()
  before = trainer.evaluate(state.params, test_images)["nll_nats"]
  batches = batching.train_batches(train_data.images, 16, seed=0)
  for _ in range(config.training.num_steps):
    state, _ = trainer.train_step(trainer.model, state, trainer.shard_batch(next(batches)))
  after = trainer.evaluate(state.params, test_images)["nll_nats"]
  assert after < 0.4 * before and after < 200, (before, after)


def test_a_class_conditional_model_trains_on_labels_and_reports_each_class():
  config = tiny_config()
  config.data.name, config.data.eval_split = "mnist_thresholded", "test"
  config.model.name, config.model.num_classes = "gated_pixelcnn", 10
  trainer = trainer_lib.Trainer(
    config, (28, 28, 1), 2, trainer_lib.make_mesh(jax.local_devices()[:1])
  )
  images = data_lib.load_binarized_mnist("validation").images[:16]
  labels = np.arange(16, dtype=np.int32) % 5  # Classes 0..4 only.
  state = trainer.initial_state()
  state, metrics = trainer.train_step(trainer.model, state, images[:8], labels[:8])
  assert bool(metrics["finite"])
  result = trainer.evaluate(state.params, images, labels)
  per_class = [result[f"class_{k}_nll_nats"] for k in range(5)]
  assert not any(f"class_{k}_nll_nats" in result for k in range(5, 10))
  # Each class's mean, weighted by its count, is the mean over all images.
  counts = np.bincount(labels)
  assert np.dot(per_class, counts) / 16 == pytest.approx(result["nll_nats"], rel=1e-6)
  # The label is an input: other labels give another likelihood of the same images.
  relabelled = trainer.evaluate(state.params, images, (labels + 5) % 10)
  assert relabelled["nll_nats"] != pytest.approx(result["nll_nats"], rel=1e-7)
  with pytest.raises(
    data_lib.DataError, match="model.num_classes=10: the images need their labels"
  ):
    trainer.evaluate(state.params, images)
  with pytest.raises(
    data_lib.DataError, match=r"labels span \[12, 12\], expected classes in \[0, 10\)"
  ):
    trainer.labels(data_lib.Dataset(images, 2, np.full(16, 12, np.int32)))
