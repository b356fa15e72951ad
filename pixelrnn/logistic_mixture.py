"""The discretized logistic mixture likelihood of 8-bit images (Salimans et al. 2017,
PixelCNN++, Section 2.1-2.2).

A pixel's C channel levels in 0..255 are scaled to x in [-1, 1] (x = 2 level / 255 - 1)
and modelled by K components. Component k has a weight pi_k and, per channel c, a
logistic with scale s_kc and mean

  mu_k0 = m_k0,  mu_k1 = m_k1 + a_k0 x_0,  mu_k2 = m_k2 + a_k1 x_0 + a_k2 x_1

(G's mean depends linearly on R, B's on R and G), so that

  p(pixel) = sum_k pi_k prod_c P(x_c | mu_kc, s_kc),

where P is the logistic's mass on the bin [x - 1/255, x + 1/255], the end bins taking
the tails: level 0 has all mass below -1 + 1/255, level 255 all mass above 1 - 1/255.
Where a bin's mass underflows in float32 (below 1e-5), its log is the density at the
bin's centre times the bin width, as the paper's code computes it.

A network emits `num_params(C, K)` numbers per pixel: K weight logits, then per
component C means, C log scales and C (C - 1) / 2 coefficients (`split_params`). Log
scales are clipped below at -7 and coefficients pass through tanh, as in the paper's
code. The pixel's channels are drawn together (`sample`): the component, then R, then G
given R's level, then B given both, each from its discretized logistic, so that samples
follow the likelihood exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MIN_LOG_SCALE = -7.0
NUM_LEVELS = 256
HALF_BIN = 1.0 / 255.0  # Half a bin's width on [-1, 1].
UNDERFLOW = 1e-5  # A bin mass below this takes the density branch.


def num_coefficients(num_channels: int) -> int:
  return num_channels * (num_channels - 1) // 2


def num_params(num_channels: int, num_components: int) -> int:
  """Numbers per pixel: the weight logit, C means, C log scales and the coefficients."""
  return num_components * (1 + 2 * num_channels + num_coefficients(num_channels))


def split_params(params: jax.Array, num_channels: int, num_components: int) -> tuple:
  """params (..., num_params) -> weight logits (..., K), means (..., K, C), log scales
  (..., K, C) clipped at MIN_LOG_SCALE, and tanh'd coefficients (..., K, C (C - 1) / 2)."""
  c, k = num_channels, num_components
  if params.shape[-1] != num_params(c, k):
    raise ValueError(
      f"expected {num_params(c, k)} parameters per pixel for {c} channels and {k} components, "
      f"got {params.shape[-1]}."
    )
  logits = params[..., :k]
  rest = params[..., k:].reshape(params.shape[:-1] + (k, 2 * c + num_coefficients(c)))
  means = rest[..., :c]
  log_scales = jnp.maximum(rest[..., c : 2 * c], MIN_LOG_SCALE)
  coeffs = jnp.tanh(rest[..., 2 * c :])
  return logits, means, log_scales, coeffs


def to_unit(levels: jax.Array) -> jax.Array:
  """Levels 0..255 -> x in [-1, 1], each level the centre of its bin."""
  return jnp.asarray(levels, jnp.float32) * (2.0 / 255.0) - 1.0


def conditional_means(means: jax.Array, coeffs: jax.Array, x: jax.Array) -> jax.Array:
  """means (..., K, C), coeffs (..., K, C (C - 1) / 2), the pixel's x (..., C) -> each
  channel's mean given the earlier channels' x: (..., K, C). Channel c reads x_0..x_{c-1}."""
  num_channels = means.shape[-1]
  shifted, index = [means[..., 0]], 0
  for c in range(1, num_channels):
    mean = means[..., c]
    for earlier in range(c):
      mean = mean + coeffs[..., index] * x[..., None, earlier]
      index += 1
    shifted.append(mean)
  return jnp.stack(shifted, axis=-1)


def bin_log_mass(x: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
  """log P(bin of x) under a logistic (mean, exp(log_scale)) discretized into 256 bins on
  [-1, 1], the end bins taking the tails; all arrays broadcast together."""
  inv_scale = jnp.exp(-log_scale)
  centred = x - mean
  plus = inv_scale * (centred + HALF_BIN)
  minus = inv_scale * (centred - HALF_BIN)
  log_cdf_plus = plus - jax.nn.softplus(plus)  # log sigmoid(plus): level 0's mass.
  log_one_minus_cdf_minus = -jax.nn.softplus(minus)  # log (1 - sigmoid(minus)): level 255's.
  mass = jax.nn.sigmoid(plus) - jax.nn.sigmoid(minus)
  middle = inv_scale * centred
  log_density_mass = middle - log_scale - 2.0 * jax.nn.softplus(middle) + jnp.log(2 * HALF_BIN)
  interior = jnp.where(mass > UNDERFLOW, jnp.log(jnp.maximum(mass, 1e-12)), log_density_mass)
  return jnp.where(
    x < -0.999, log_cdf_plus, jnp.where(x > 0.999, log_one_minus_cdf_minus, interior)
  )


def log_prob(params: jax.Array, images: jax.Array, num_components: int) -> jax.Array:
  """params (B, H, W, num_params), images (B, H, W, C) levels -> log p(pixel) (B, H, W)
  in nats, the pixel's channels together."""
  num_channels = images.shape[-1]
  logits, means, log_scales, coeffs = split_params(params, num_channels, num_components)
  x = to_unit(images)
  mu = conditional_means(means, coeffs, x)
  per_channel = bin_log_mass(x[..., None, :], mu, log_scales)  # (B, H, W, K, C)
  per_component = per_channel.sum(-1) + jax.nn.log_softmax(logits, axis=-1)
  return jax.nn.logsumexp(per_component, axis=-1)


def nll_per_image(params: jax.Array, images: jax.Array, num_components: int) -> jax.Array:
  """-log p(image) in nats, (B,)."""
  return -log_prob(params, images, num_components).sum(axis=(1, 2))


def sample(
  key: jax.Array, params: jax.Array, num_channels: int, num_components: int, temperature=1.0
) -> jax.Array:
  """params (B, num_params) of one pixel per row -> its levels (B, C) int32, drawn
  exactly from the likelihood: the component, then each channel given the earlier
  channels' drawn levels. `temperature` scales the logistics' scales (1: the model)."""
  logits, means, log_scales, coeffs = split_params(params, num_channels, num_components)
  component_key, *channel_keys = jax.random.split(key, 1 + num_channels)
  component = jax.random.categorical(component_key, logits, axis=-1)  # (B,)
  pick = lambda a: jnp.take_along_axis(a, component[:, None, None], axis=1)[:, 0]
  means, log_scales, coeffs = pick(means), pick(log_scales), pick(coeffs)  # (B, C), ...
  levels, x = [], jnp.zeros(means.shape, jnp.float32)
  for c in range(num_channels):
    mean = conditional_means(means[:, None], coeffs[:, None], x)[:, 0, c]
    u = jax.random.uniform(channel_keys[c], mean.shape, minval=1e-6, maxval=1.0 - 1e-6)
    y = mean + temperature * jnp.exp(log_scales[:, c]) * (jnp.log(u) - jnp.log1p(-u))
    level = jnp.clip(jnp.round((y + 1.0) * 127.5), 0, NUM_LEVELS - 1).astype(jnp.int32)
    levels.append(level)
    x = x.at[:, c].set(to_unit(level))
  return jnp.stack(levels, axis=-1)
