"""The multi-scale model: subsampling, causality, exact normalisation, no double
counting, sampling, training objectives and real learning."""

import itertools
import math

import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import short_adam_run
from flax import nnx
from scipy import stats

from pixelrnn import defaults, likelihood
from pixelrnn.data import loading as data_lib
from pixelrnn.models import multiscale, registry
from pixelrnn.sampling import completion, samplers
from pixelrnn.training import train
from pixelrnn.training import trainer as trainer_lib

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


def tiny_model_config(large="pixelcnn", small="pixelcnn", factor=2, conditioning_dim=4):
  config = defaults.base_config().model
  config.name = large
  config.hidden_dim, config.num_layers, config.output_dim = 6, 1, 12
  ms = config.multiscale
  ms.factor, ms.conditioning_dim, ms.embedding_layers = factor, conditioning_dim, 1
  ms.small.name = small
  ms.small.hidden_dim, ms.small.num_layers, ms.small.output_dim = 6, 1, 12
  return config


def tiny_multiscale(shape, num_levels, large="pixelcnn", small="pixelcnn", factor=2, seed=0):
  model = registry.create(
    tiny_model_config(large, small, factor),
    image_shape=shape,
    num_levels=num_levels,
    rngs=nnx.Rngs(seed),
  )
  # Random biases make the distribution clearly non-uniform.
  for path, var in nnx.iter_graph(model):
    if isinstance(var, nnx.Param) and path[-1] == "bias":
      var[...] = 1.5 * jax.random.normal(jax.random.key(len(path) + seed), var.shape)
  return model


def all_images(shape, num_levels):
  values = np.array(list(itertools.product(range(num_levels), repeat=math.prod(shape))))
  return values.reshape(-1, *shape)


def test_subsample_takes_every_fth_pixel_of_every_fth_row():
  x = jnp.arange(2 * 28 * 28).reshape(2, 28, 28, 1)
  small = multiscale.subsample(x, 2)
  assert small.shape == (2, 14, 14, 1)
  assert int(small[1, 3, 5, 0]) == int(x[1, 6, 10, 0])
  mask = multiscale.subsample_mask(28, 28, 2)
  assert mask.sum() == 14 * 14 and mask[6, 10] and not mask[6, 11] and not mask[7, 10]
  np.testing.assert_array_equal(multiscale.embed(small, 2)[:, mask], x[:, mask])
  assert (multiscale.embed(small, 2)[:, ~mask] == 0).all()
  with pytest.raises(ValueError, match="must be >= 2 and divide the image size 28x28, got 3"):
    multiscale.subsample(x, 3)


@pytest.mark.parametrize("large", FAMILIES)
@pytest.mark.parametrize("num_channels, num_levels", [(1, 2), (3, 4)])
def test_conditional_network_is_causal_in_the_large_image_and_sees_the_small_one(
  large, num_channels, num_levels
):
  b, h, w, f = 3, 4, 6, 2
  model = tiny_multiscale((h, w, num_channels), num_levels, large=large)
  x = jax.random.uniform(jax.random.key(1), (b, h, w, num_channels), maxval=num_levels - 1)
  small = jax.random.uniform(
    jax.random.key(2), (b, h // f, w // f, num_channels), maxval=num_levels - 1
  )
  conditional = lambda images, small_images: model.large(images, model.conditioner(small_images))
  causality.assert_causal(causality.dependency_pattern(lambda v: conditional(v, small), x))

  # (B, H, W, C, B, H/f, W/f, C)
  on_small = causality.dependency_pattern(lambda s: conditional(x, s), small, seed=3)
  own = np.stack([on_small[k, :, :, :, k] for k in range(b)]).any(axis=0)
  # Every output sub-pixel reads the small image at its own block, all channels...
  for i, j in itertools.product(range(h), range(w)):
    assert own[i, j, :, i // f, j // f, :].all(), (i, j)
  # ...and small pixels that lie in the large image's future: the first sub-pixel
  # reads small pixel (0, 1), which is large pixel (0, 2).
  assert own[0, 0, 0, 0, 1].any()
  across = ~np.eye(b, dtype=bool)[:, None, None, None, :, None, None, None]
  assert not (on_small & across).any(), "leak across the batch"


@pytest.mark.parametrize(
  "large, shape, num_levels",
  [
    ("pixelcnn", (2, 2, 1), 2),
    ("row_lstm", (2, 2, 1), 2),
    ("diagonal_bilstm", (2, 2, 1), 2),
    ("pixelcnn", (2, 2, 3), 2),
  ],
)
def test_probabilities_of_all_images_sum_to_one(large, shape, num_levels):
  model = tiny_multiscale(shape, num_levels, large=large)  # A 1x1 (xC) subsample.
  images = all_images(shape, num_levels)
  terms = model.nll_terms(jnp.asarray(images))
  probs = np.exp(-np.asarray(terms["nll"], np.float64))
  assert probs.std() > 1e-3 * probs.mean(), "the test needs a non-uniform model"
  np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
  # Summing the large part alone over the other sub-pixels also gives 1 per subsample.
  large_probs = np.exp(-np.asarray(terms["large_nll"], np.float64))
  small_key = images[:, 0, 0].reshape(len(images), -1) @ num_levels ** np.arange(shape[-1])
  np.testing.assert_allclose(np.bincount(small_key, large_probs), 1.0, rtol=1e-5)


def test_the_parts_sum_to_the_whole_and_every_sub_pixel_is_scored_once():
  shape, f = (6, 4, 3), 2
  model = tiny_multiscale(shape, 4, large="row_lstm", factor=f)
  images = jax.random.randint(jax.random.key(0), (5,) + shape, 0, 4)
  terms = model.nll_terms(images)
  np.testing.assert_allclose(terms["nll"], terms["small_nll"] + terms["large_nll"], rtol=1e-6)
  dims = multiscale.part_dims(shape, f)
  assert dims == {"nll": 72, "small_nll": 18, "large_nll": 54}
  scored = (~multiscale.subsample_mask(6, 4, f)).sum() * 3
  assert dims["small_nll"] + scored == math.prod(shape)
  # Independently: the small model on the subsample, the large one on the rest only.
  small = images[:, ::f, ::f]
  np.testing.assert_allclose(
    terms["small_nll"], likelihood.nll_per_image(model.small(small), small), rtol=1e-6
  )
  log_p = likelihood.log_probs(model.large(images, model.conditioner(small)), images)
  rest = np.ones(shape[:2], bool)
  rest[::f, ::f] = False
  np.testing.assert_allclose(
    terms["large_nll"], -np.asarray(log_p)[:, rest].sum(axis=(1, 2)), rtol=1e-5
  )


@pytest.mark.parametrize("large", ["pixelcnn", "row_lstm"])
def test_samples_copy_the_small_sample_and_cached_equals_reference(large):
  shape = (4, 6, 3)
  model = tiny_multiscale(shape, 4, large=large, small="row_lstm")
  key = jax.random.key(7)
  run = lambda cached: jax.jit(
    lambda k: multiscale.sample(model, k, num_samples=5, image_shape=shape, cached=cached)
  )(key)
  small, big = run(True)
  np.testing.assert_array_equal(np.asarray(big)[:, ::2, ::2], small)
  small_ref, big_ref = run(False)
  np.testing.assert_array_equal(small, small_ref)
  np.testing.assert_array_equal(big, big_ref)
  # The first stage is the small model sampled alone with the first split key.
  alone = samplers.sample(
    model.small, jax.random.split(key)[0], num_samples=5, image_shape=(2, 3, 3)
  )
  np.testing.assert_array_equal(small, alone)


def test_the_single_stage_samplers_refuse_a_multiscale_model_and_say_what_to_use():
  model = tiny_multiscale((2, 2, 1), 2)
  with pytest.raises(ValueError, match="use multiscale.sample or multiscale.complete"):
    samplers.sample(model, jax.random.key(0), num_samples=2, image_shape=(2, 2, 1))
  with pytest.raises(ValueError, match="use multiscale.sample or multiscale.complete"):
    completion.complete(
      model, jax.random.key(0), jnp.zeros((1, 2, 2, 1), jnp.int32), observed_rows=1
    )


def test_multiscale_samples_follow_the_exact_distribution():
  shape = (2, 2, 1)
  model = tiny_multiscale(shape, 2, large="row_lstm")
  images = all_images(shape, 2)
  probs = np.exp(-np.asarray(model.nll_terms(jnp.asarray(images))["nll"], np.float64))
  num_samples = 20_000
  _, samples = jax.jit(
    lambda k: multiscale.sample(model, k, num_samples=num_samples, image_shape=shape)
  )(jax.random.key(0))
  index = {tuple(im.ravel()): k for k, im in enumerate(images)}
  counts = np.bincount(
    [index[tuple(s)] for s in np.asarray(samples).reshape(num_samples, -1)], minlength=len(images)
  )
  assert stats.chisquare(counts, probs / probs.sum() * num_samples).pvalue > 1e-3
  assert stats.chisquare(counts, np.full(16, num_samples / 16)).pvalue < 1e-6


def test_completions_keep_the_observed_rows_and_the_subsample_consistent():
  shape = (6, 4, 1)
  model = tiny_multiscale(shape, 2, large="diagonal_bilstm")
  originals = jax.random.randint(jax.random.key(2), (2,) + shape, 0, 2)
  out = np.asarray(
    multiscale.complete(model, jax.random.key(3), originals, observed_rows=3, num_completions=4)
  )
  assert out.shape == (2, 4) + shape
  np.testing.assert_array_equal(
    out[:, :, :3], np.broadcast_to(np.asarray(originals)[:, None, :3], (2, 4, 3, 4, 1))
  )
  assert not np.array_equal(out[:, 0, 3:], out[:, 1, 3:]), "completions differ"
  with pytest.raises(ValueError, match=r"observed_rows must be in \[0, 6\], got 7"):
    multiscale.complete(model, jax.random.key(3), originals, observed_rows=7)


def multiscale_config(objective="joint", num_steps=1):
  config = defaults.base_config()
  config.model.update(tiny_model_config())
  config.training.multiscale_objective = objective
  config.training.batch_size = 8
  config.training.num_steps = num_steps
  config.optimizer.name = "adam"
  config.optimizer.grad_clip_norm = 1e-3  # Active at every step: the norms then matter.
  return config


@pytest.mark.parametrize(
  "objective, small_update_depends_on_large", [("joint", True), ("separate", False)]
)
def test_separate_training_keeps_the_small_networks_update_independent(
  objective, small_update_depends_on_large
):
  config = multiscale_config(objective)
  trainer = trainer_lib.Trainer(
    config, (28, 28, 1), 2, trainer_lib.make_mesh(jax.local_devices()[:1])
  )
  images = trainer.shard_batch(np.random.default_rng(0).integers(0, 2, (8, 28, 28, 1), np.uint8))
  # The same step with the conditional network's weights changed: its gradients change.
  # (Two initial states, since the step donates its input's buffers.)
  perturbed = trainer.initial_state()
  perturbed = perturbed.replace(
    params=jax.tree_util.tree_map_with_path(
      lambda p, v: v * 3.0 if p[0].key == "large" else v, perturbed.params
    )
  )
  after, metrics = trainer.train_step(trainer.model, trainer.initial_state(), images)
  after_perturbed, _ = trainer.train_step(trainer.model, perturbed, images)
  small = lambda s: jax.tree.leaves(jax.device_get(s.params["small"]))
  same = all(np.array_equal(a, b) for a, b in zip(small(after), small(after_perturbed)))
  assert same != small_update_depends_on_large
  metrics = jax.device_get(metrics)
  assert metrics["nll_nats"] == pytest.approx(
    metrics["small_nll_nats"] + metrics["large_nll_nats"], rel=1e-6
  )


def test_bad_multiscale_configs_are_refused():
  config = multiscale_config()
  config.model.multiscale.factor = 3
  with pytest.raises(
    defaults.ConfigError, match="factor=3 must divide the binarized_mnist image size 28x28"
  ):
    defaults.validate(config)
  config = multiscale_config("both")
  with pytest.raises(
    defaults.ConfigError,
    match=r"Unknown training.multiscale_objective 'both'; "
    r"valid choices: \['joint', 'separate'\]",
  ):
    defaults.validate(config)
  config = multiscale_config()
  config.model.multiscale.small.name = "gan"
  with pytest.raises(defaults.ConfigError, match="Unknown model.multiscale.small.name 'gan'"):
    defaults.validate(config)


def test_real_binarized_mnist_learning_lowers_both_parts(tmp_path):
  config = defaults.base_config()
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 16, 2, 32
  ms = config.model.multiscale
  ms.factor, ms.conditioning_dim = 2, 16
  ms.small.hidden_dim, ms.small.num_layers, ms.small.output_dim = 16, 2, 32
  config.data.eval_split = "validation"
  short_adam_run(config, num_steps=300)

  valid = data_lib.load_binarized_mnist("validation")
  trainer = trainer_lib.Trainer(
    config, valid.image_shape, valid.num_levels, trainer_lib.make_mesh()
  )
  before = trainer.evaluate(trainer.initial_state().ema_params, valid.images)
  after = train.train_and_evaluate(config, str(tmp_path), progress=False)
  for part in ("nll_nats", "small_nll_nats", "large_nll_nats"):
    assert after[part] < 0.5 * before[part], (part, before, after)
  assert after["nll_nats"] < 200, after
  assert after["nll_nats"] == pytest.approx(after["small_nll_nats"] + after["large_nll_nats"])
