"""PixelCNN++: pixel-level causality, no blind spot, exact cached sampling, dropout."""

import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_cached_mixture_sampling_is_exact
from flax import nnx

from pixelrnn import defaults, distributions
from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.pixelcnn_pp import PixelCNNPP
from pixelrnn.sampling import completion, samplers
from pixelrnn.training import trainer as trainer_lib

MIXTURE = distributions.LogisticMixture(num_components=2)


def tiny(num_resolutions=3, num_layers=1, hidden_dim=6, conditioning_dim=0, seed=0, dropout=0.5):
  return PixelCNNPP(
    num_channels=3,
    num_levels=256,
    hidden_dim=hidden_dim,
    num_layers=num_layers,
    output_dim=0,
    rngs=nnx.Rngs(seed),
    distribution=MIXTURE,
    num_resolutions=num_resolutions,
    conditioning_dim=conditioning_dim,
    dropout=dropout,
  )


def random_images(shape, seed=1):
  return jax.random.randint(jax.random.key(seed), shape, 0, 256)


@pytest.mark.parametrize("num_resolutions", [1, 3])
def test_each_pixel_sees_only_earlier_pixels_of_its_own_image(num_resolutions):
  model = tiny(num_resolutions)
  x = random_images((2, 8, 8, 3)).astype(jnp.float32)
  pattern = causality.pixel_dependency_pattern(model, x)
  causality.assert_pixel_causal(pattern)
  # The check can fail: the pixel just left and the pixel just above are read.
  assert pattern[0, 5, 5, 0, 5, 4].all() and pattern[0, 5, 5, 0, 4, 5].all()


def test_with_enough_depth_every_earlier_pixel_is_seen_where_pixelcnn_has_a_blind_spot():
  x = random_images((1, 8, 8, 3)).astype(jnp.float32)
  before = np.tril(np.ones((64, 64), bool), -1).reshape(8, 8, 8, 8)  # [out, in]: in < out.
  pp = causality.pixel_dependency_pattern(tiny(num_resolutions=3, num_layers=2), x)
  seen = pp[0, :, :, 0].any(-1)  # (H, W, H, W)
  np.testing.assert_array_equal(seen, before)

  # PixelCNN of as many layers: its stacked masked 3x3 kernels never reach the pixels
  # above and to the right beyond the first few columns (the paper's blind spot).
  pixelcnn = PixelCNN(
    num_channels=3, num_levels=256, hidden_dim=6, num_layers=6, output_dim=12, rngs=nnx.Rngs(0)
  )
  pattern = causality.dependency_pattern(pixelcnn, x)
  seen_by_pixelcnn = pattern[0, :, :, :, 0].any(axis=(2, 5))
  holes = before & ~seen_by_pixelcnn
  assert holes[4, 2, 3, 7]  # Pixel (4, 2) never sees (3, 7): up one row, five right.
  assert holes.sum() > 100, holes.sum()


def test_the_class_conditional_model_reads_the_label_and_stays_causal():
  model = tiny(num_resolutions=2, conditioning_dim=10)
  images = random_images((2, 4, 4, 3))
  maps = [conditioning_lib.class_map(jnp.array([k, k]), 10, 4, 4) for k in (3, 7)]
  assert not np.allclose(model(images, maps[0]), model(images, maps[1]))
  pattern = causality.pixel_dependency_pattern(lambda v: model(v, maps[0]), images * 1.0)
  causality.assert_pixel_causal(pattern)


@pytest.mark.parametrize(
  "num_resolutions, num_layers, shape, num_observed",
  [(1, 1, (4, 5, 3), 0), (2, 1, (4, 6, 3), 15), (3, 2, (8, 4, 3), 27)],
)
def test_the_cached_sampler_draws_the_reference_samples(
  num_resolutions, num_layers, shape, num_observed
):
  observed = random_images((2,) + shape, seed=9)
  assert_cached_mixture_sampling_is_exact(
    tiny(num_resolutions, num_layers), MIXTURE, observed, num_observed
  )


def test_conditional_cached_sampling_and_completion_keep_the_reference_draws():
  model = tiny(num_resolutions=2, conditioning_dim=10)
  shape = (4, 4, 3)
  cond = conditioning_lib.class_map(jnp.array([1, 8]), 10, 4, 4)
  kwargs = dict(num_samples=2, image_shape=shape)
  key = jax.random.key(5)
  reference = samplers.sample_reference(
    lambda v: model(v, cond), key, distribution=MIXTURE, **kwargs
  )
  cached = samplers.sample(model, key, conditioning=cond, **kwargs)
  np.testing.assert_array_equal(cached, reference)
  originals = random_images((2,) + shape, seed=4)
  completed = completion.complete(
    model, key, originals, observed_rows=2, num_completions=3, conditioning=cond
  )
  assert completed.shape == (2, 3) + shape
  np.testing.assert_array_equal(completed[:, :, :2], np.repeat(originals[:, None, :2], 3, 1))
  assert not np.array_equal(completed[:, 0, 2:], completed[:, 1, 2:])


def pp_config(num_steps):
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.update(name="pixelcnn_pp", hidden_dim=8, num_layers=1, likelihood="logistic_mixture")
  config.model.num_mixtures, config.model.num_resolutions = 2, 2
  config.training.update(batch_size=4, num_steps=num_steps, steps_per_dispatch=4)
  config.optimizer.name = "adam"
  defaults.validate(config)
  return config


def test_dropout_is_a_function_of_seed_and_step_so_dispatching_changes_nothing():
  config = pp_config(4)
  trainer = trainer_lib.Trainer(config, (8, 8, 3), 256, trainer_lib.make_mesh())
  data = trainer.device_data(np.asarray(random_images((12, 8, 8, 3))))
  indices = np.asarray(jax.random.randint(jax.random.key(2), (4, 4), 0, 12), np.int32)
  together, _ = trainer.train_steps(
    trainer.model, trainer.initial_state(), data, indices, np.int32(4)
  )
  state = trainer.initial_state()
  for k in range(4):  # Step k alone, its batch first (one compiled shape for all calls).
    rolled = np.roll(indices, -k, axis=0)
    state, _ = trainer.train_steps(trainer.model, state, data, rolled, np.int32(1))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(together), jax.device_get(state))

  params, images = trainer.initial_state().params, random_images((4, 8, 8, 3))
  nll = jax.jit(lambda key: trainer.model.nll_terms(params, images, dropout_key=key)["nll"])
  np.testing.assert_array_equal(nll(jax.random.key(1)), nll(jax.random.key(1)))
  assert not np.allclose(nll(jax.random.key(1)), nll(jax.random.key(2)))
  # Evaluation has no key, so no dropout.
  without = jax.jit(lambda: trainer.model.nll_terms(params, images, dropout_key=None)["nll"])
  np.testing.assert_array_equal(
    without(), jax.jit(lambda: trainer.model.nll_terms(params, images)["nll"])()
  )


def test_a_realistic_width_starts_finite_near_uniform_and_has_finite_gradients():
  model = tiny(num_resolutions=3, num_layers=2, hidden_dim=64)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  images = random_images((4, 16, 16, 3))

  def loss(p):
    outputs = nnx.merge(graphdef, p, rest)(images, dropout_key=jax.random.key(0))
    return jnp.mean(MIXTURE.nll_per_image(outputs, images)) / (16 * 16 * 3 * np.log(2))

  bits, grads = jax.jit(jax.value_and_grad(loss))(params)
  # Uniform over 256 levels is 8 bits/dim; a fresh network is within a few bits of it.
  assert 6.0 < float(bits) < 12.0, bits
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize(
  "updates, message",
  [
    ({"model.dropout": 1.0}, r"model.dropout must be in \[0, 1\), got 1.0"),
    ({"model.num_resolutions": 7}, "32x32 must be divisible by 64"),
    ({"model.likelihood": "softmax"}, "pixelcnn_pp supports \\('logistic_mixture',\\)"),
  ],
)
def test_bad_pixelcnn_pp_settings_are_refused_in_one_line(updates, message):
  config = pp_config(4)
  for path, value in updates.items():
    config.model[path.split(".")[1]] = value
  with pytest.raises(defaults.ConfigError, match=message):
    defaults.validate(config)


def test_at_a_realistic_width_the_cached_parameters_match_the_forward_pass():
  model = tiny(num_resolutions=3, num_layers=2, hidden_dim=48, seed=2)
  shape = (16, 16, 3)
  samples, outputs = jax.jit(
    lambda k: samplers.sample_cached(model, k, num_samples=2, image_shape=shape, return_logits=True)
  )(jax.random.key(0))
  forward = model(samples).reshape(2, -1, outputs.shape[-1]).transpose(1, 0, 2)
  np.testing.assert_allclose(outputs, forward, rtol=1e-4, atol=1e-4)
