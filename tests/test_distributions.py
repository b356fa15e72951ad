"""The likelihood as a config key: every softmax family also runs the logistic mixture."""

import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_cached_mixture_sampling_is_exact
from flax import nnx

from pixelrnn import defaults, distributions, logistic_mixture
from pixelrnn.models import registry
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.row_lstm import RowLSTM
from pixelrnn.sampling import samplers

FAMILIES = [PixelCNN, RowLSTM, DiagonalBiLSTM, GatedPixelCNN]
FAMILY_IDS = ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]
MIXTURE = distributions.LogisticMixture(num_components=3)


def mixture_model(cls, num_layers=2, seed=0):
  kwargs = dict(
    num_channels=3,
    num_levels=256,
    hidden_dim=6,
    num_layers=num_layers,
    output_dim=12,
    rngs=nnx.Rngs(seed),
    distribution=MIXTURE,
  )
  if cls in (RowLSTM, DiagonalBiLSTM):
    kwargs.update(residual=True, skip=True)
  return cls(**kwargs)


@pytest.mark.parametrize("cls", FAMILIES, ids=FAMILY_IDS)
def test_mixture_outputs_see_only_earlier_pixels_of_their_own_image(cls):
  model = mixture_model(cls)
  x = jax.random.uniform(jax.random.key(1), (2, 4, 5, 3), minval=0, maxval=255)
  pattern = causality.pixel_dependency_pattern(model, x)
  assert pattern.shape == (2, 4, 5, 2, 4, 5, 3)
  causality.assert_pixel_causal(pattern)
  # The pattern can fail: the left neighbour's channels all reach the output.
  assert pattern[0, 2, 3, 0, 2, 2].all()


def test_a_softmax_model_is_not_pixel_causal_so_the_check_can_fail():
  model = PixelCNN(
    num_channels=3, num_levels=4, hidden_dim=6, num_layers=1, output_dim=12, rngs=nnx.Rngs(0)
  )
  x = jax.random.uniform(jax.random.key(1), (1, 3, 3, 3), minval=0, maxval=3)
  fn = lambda v: model(v).reshape(*v.shape[:3], -1)  # Channels' logits as one pixel.
  with pytest.raises(AssertionError, match="forbidden dependencies"):
    causality.assert_pixel_causal(causality.pixel_dependency_pattern(fn, x))


@pytest.mark.parametrize(
  "cls, num_observed",
  list(zip(FAMILIES, [0, 3 * 7, 0, 3 * 7])),
  ids=[f"{name}-{n}" for name, n in zip(FAMILY_IDS, [0, 21, 0, 21])],
)
def test_cached_mixture_sampling_draws_the_reference_samples(cls, num_observed):
  observed = jax.random.randint(jax.random.key(9), (3, 4, 5, 3), 0, 256)
  cached = assert_cached_mixture_sampling_is_exact(
    mixture_model(cls), MIXTURE, observed, num_observed
  )
  # Samples span the levels: not all drawn at an end bin.
  assert len(np.unique(np.asarray(cached))) > 20


def test_whole_pixel_sampling_refuses_a_partly_observed_pixel():
  model = mixture_model(PixelCNN)
  with pytest.raises(ValueError, match="num_observed=4 must be a multiple of the 3 channels"):
    samplers.sample_cached(
      model, jax.random.key(0), num_samples=1, image_shape=(2, 2, 3), num_observed=4
    )


def test_nll_terms_use_the_configured_likelihood():
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.update(hidden_dim=4, num_layers=1, output_dim=8)
  config.model.likelihood = "logistic_mixture"
  config.model.num_mixtures = 2
  defaults.validate(config)
  model, params = registry.build(config.model, image_shape=(4, 4, 3), num_levels=256, seed=0)
  images = jax.random.randint(jax.random.key(3), (2, 4, 4, 3), 0, 256)
  outputs = model.apply(params, images)
  assert outputs.shape == (2, 4, 4, logistic_mixture.num_params(3, 2))
  np.testing.assert_allclose(
    model.nll_terms(params, images)["nll"],
    logistic_mixture.nll_per_image(outputs, images, 2),
    rtol=1e-6,
  )


def test_the_softmax_default_keeps_every_parameter_shape():
  config = defaults.base_config()
  config.model.update(hidden_dim=4, num_layers=1, output_dim=8)
  _, params = registry.build(config.model, image_shape=(4, 4, 1), num_levels=2, seed=0)
  explicit = PixelCNN(
    num_channels=1, num_levels=2, hidden_dim=4, num_layers=1, output_dim=8, rngs=nnx.Rngs(0)
  )
  _, explicit_params, _ = nnx.split(explicit, nnx.Param, ...)
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, explicit_params)
  assert all(jax.tree.leaves(same))


@pytest.mark.parametrize(
  "updates, message",
  [
    ({"model.likelihood": "mixture"}, "Unknown model.likelihood .mixture.; valid choices"),
    (
      {"model.likelihood": "logistic_mixture"},
      "models 8-bit images \\(256 levels\\); this dataset has 2",
    ),
    (
      {"data.name": "cifar10", "model.likelihood": "logistic_mixture", "model.num_mixtures": 0},
      "model.num_mixtures must be an integer",
    ),
  ],
)
def test_bad_likelihood_settings_are_refused_in_one_line(updates, message):
  config = defaults.base_config()
  for path, value in updates.items():
    group, key = path.split(".")
    config[group][key] = value
  with pytest.raises(defaults.ConfigError, match=message):
    defaults.validate(config)
