"""logistic_mixture.py: the discretized logistic mixture normalises, its end bins take
the tails, its underflow branch has finite gradients, it agrees with a float64 NumPy
evaluation, and its sampler draws from it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from pixelrnn import logistic_mixture as lm

LEVELS = np.arange(256)


def random_params(key, shape, num_channels, num_components, mean_scale=1.0, log_scale_shift=0.0):
  """Normal parameters (..., num_params), the means scaled and the log scales shifted."""
  params = jax.random.normal(key, shape + (lm.num_params(num_channels, num_components),))
  k, c = num_components, num_channels
  per = 2 * c + lm.num_coefficients(c)
  rest = params[..., k:].reshape(shape + (k, per))
  rest = rest.at[..., :c].multiply(mean_scale).at[..., c : 2 * c].add(log_scale_shift)
  return jnp.concatenate([params[..., :k], rest.reshape(shape + (k * per,))], axis=-1)


@pytest.mark.parametrize("mean", [-3.0, -1.0, -0.3, 0.0, 0.999, 1.0, 4.0])
@pytest.mark.parametrize("log_scale", [-7.0, -4.5, -2.0, 0.0, 3.0])
def test_each_channels_256_bins_sum_to_one_for_any_mean_and_scale(mean, log_scale):
  log_mass = lm.bin_log_mass(lm.to_unit(jnp.asarray(LEVELS)), mean, log_scale)
  assert np.all(np.isfinite(np.asarray(log_mass)))
  assert float(jnp.exp(log_mass).sum()) == pytest.approx(1.0, abs=2e-5)


def test_a_whole_pixel_sums_to_one_over_all_256_cubed_values():
  # Three channels, two components, G and B depending on the earlier channels: every
  # one of the 16,777,216 pixel values, given all 256 values of the earlier channels.
  params = random_params(jax.random.key(0), (1,), 3, 2, mean_scale=0.5, log_scale_shift=-2.0)
  g, b = np.meshgrid(LEVELS, LEVELS, indexing="ij")

  @jax.jit
  def mass_given_red(red):
    images = jnp.stack([jnp.full(g.shape, red), g, b], axis=-1).reshape(1, 256, 256, 3)
    log_p = lm.log_prob(jnp.broadcast_to(params, (1, 256, 256, params.shape[-1])), images, 2)
    return jnp.exp(log_p.astype(jnp.float64) if jax.config.jax_enable_x64 else log_p).sum()

  total = sum(float(mass_given_red(red)) for red in range(256))
  assert total == pytest.approx(1.0, abs=1e-4)


def test_the_end_bins_take_the_tails():
  mean, log_scale = 0.2, -1.5
  s = np.exp(log_scale)
  low = float(jnp.exp(lm.bin_log_mass(-1.0, mean, log_scale)))
  high = float(jnp.exp(lm.bin_log_mass(1.0, mean, log_scale)))
  assert low == pytest.approx(special.expit((-1 + 1 / 255 - mean) / s), rel=1e-5)
  assert high == pytest.approx(1 - special.expit((1 - 1 / 255 - mean) / s), rel=1e-5)
  # Far beyond the ends, the end bins hold all the mass.
  assert float(jnp.exp(lm.bin_log_mass(-1.0, -5.0, -3.0))) == pytest.approx(1.0, abs=1e-6)
  assert float(jnp.exp(lm.bin_log_mass(1.0, 5.0, -3.0))) == pytest.approx(1.0, abs=1e-6)


def test_gradients_are_finite_where_a_bins_mass_underflows():
  # A sharp component far from the pixel: the interior bin's mass is below 1e-5, so its
  # log is the density branch; every parameter's gradient must stay finite.
  params = jnp.zeros((1, 1, 1, lm.num_params(3, 2)))
  params = params.at[..., 2:5].set(-0.9).at[..., 5:8].set(-7.0)  # Component 0's means, scales.
  images = jnp.full((1, 1, 1, 3), 190)
  x = lm.to_unit(190)
  mass = jax.nn.sigmoid((x + 1 / 255 + 0.9) / np.exp(-7)) - jax.nn.sigmoid(
    (x - 1 / 255 + 0.9) / np.exp(-7)
  )
  assert float(mass) < lm.UNDERFLOW
  grads = jax.grad(lambda p: lm.log_prob(p, images, 2).sum())(params)
  assert np.all(np.isfinite(np.asarray(grads)))
  assert float(jnp.abs(grads).sum()) > 0


def numpy_log_prob(params, images, num_components):
  """An independent float64 evaluation: each bin's mass as a difference of the logistic's
  CDF, the end bins its tails, the components summed in float64."""
  params, images = np.asarray(params, np.float64), np.asarray(images)
  c, k = images.shape[-1], num_components
  logits = params[..., :k]
  rest = params[..., k:].reshape(params.shape[:-1] + (k, 2 * c + c * (c - 1) // 2))
  means, log_scales = rest[..., :c], np.maximum(rest[..., c : 2 * c], -7.0)
  coeffs = np.tanh(rest[..., 2 * c :])
  x = images * (2 / 255) - 1
  mu = means.copy()
  if c == 3:
    mu[..., 1] += coeffs[..., 0] * x[..., None, 0]
    mu[..., 2] += coeffs[..., 1] * x[..., None, 0] + coeffs[..., 2] * x[..., None, 1]
  s = np.exp(log_scales)
  upper = np.where(images[..., None, :] == 255, np.inf, x[..., None, :] + 1 / 255)
  lower = np.where(images[..., None, :] == 0, -np.inf, x[..., None, :] - 1 / 255)
  mass = special.expit((upper - mu) / s) - special.expit((lower - mu) / s)
  weights = special.log_softmax(logits, axis=-1)
  return special.logsumexp(np.log(mass).sum(-1) + weights, axis=-1)


def test_log_probs_agree_with_an_independent_float64_evaluation():
  key_params, key_images = jax.random.split(jax.random.key(1))
  params = random_params(key_params, (4, 5, 5), 3, 5, mean_scale=0.7, log_scale_shift=-2.5)
  # Pixels drawn from the model itself, so that their bins carry mass (a bin whose mass
  # underflows takes the density branch, which approximates it by design), and the end
  # bins.
  flat = params.reshape(-1, params.shape[-1])
  images = lm.sample(key_images, flat, 3, 5).reshape(4, 5, 5, 3)
  images = images.at[0, 0, 0].set(0).at[0, 0, 1].set(255)
  ours = np.asarray(lm.log_prob(params, images, 5))
  reference = numpy_log_prob(params, images, 5)
  np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-4)


def test_sampled_levels_follow_the_likelihood():
  # One channel, three components: the histogram of 200,000 draws against the masses.
  params = random_params(jax.random.key(2), (1,), 1, 3, mean_scale=0.5, log_scale_shift=-2.0)
  draws = lm.sample(jax.random.key(3), jnp.broadcast_to(params, (200_000, params.shape[-1])), 1, 3)
  empirical = np.bincount(np.asarray(draws[:, 0]), minlength=256) / draws.shape[0]
  images = jnp.asarray(LEVELS).reshape(1, 1, 256, 1)
  exact = np.exp(
    np.asarray(lm.log_prob(jnp.broadcast_to(params, (1, 1, 256, params.shape[-1])), images, 3))
  )[0, 0]
  assert exact.sum() == pytest.approx(1.0, abs=1e-5)
  assert np.abs(empirical - exact).max() < 0.004
  # Three channels, one component: G given R follows the mean shifted by R's drawn level.
  params = random_params(jax.random.key(4), (1,), 3, 1, mean_scale=0.3, log_scale_shift=-1.5)
  draws = np.asarray(
    lm.sample(jax.random.key(5), jnp.broadcast_to(params, (200_000, params.shape[-1])), 3, 1)
  )
  red = np.bincount(draws[:, 0], minlength=256).argmax()
  given = draws[draws[:, 0] == red]
  _, means, log_scales, coeffs = lm.split_params(params[0], 3, 1)
  mean_green = means[0, 1] + coeffs[0, 0] * lm.to_unit(red)
  exact_green = np.exp(
    np.asarray(lm.bin_log_mass(lm.to_unit(jnp.asarray(LEVELS)), mean_green, log_scales[0, 1]))
  )
  empirical_green = np.bincount(given[:, 1], minlength=256) / given.shape[0]
  assert given.shape[0] > 2000
  assert np.abs(empirical_green - exact_green).max() < 4 / np.sqrt(given.shape[0])
