import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn import likelihood
from pixelrnn.models.pixelcnn import PixelCNN


@pytest.mark.parametrize("num_levels", [2, 256])
def test_constant_logits_give_log_k_nats_per_sub_pixel(num_levels):
  shape = (3, 4, 5, 3)
  images = jax.random.randint(jax.random.key(0), shape, 0, num_levels)
  logits = jnp.full(shape + (num_levels,), 0.7)
  nll = likelihood.nll_per_image(logits, images)
  np.testing.assert_allclose(nll, 4 * 5 * 3 * math.log(num_levels), rtol=1e-6)
  bpd = likelihood.bits_per_dim(nll, 4 * 5 * 3)
  np.testing.assert_allclose(bpd, math.log2(num_levels), rtol=1e-6)


def test_eight_bit_uniform_model_is_eight_bits_per_dim():
  assert likelihood.bits_per_dim(32 * 32 * 3 * math.log(256), 32 * 32 * 3) == pytest.approx(8.0)


def test_log_probs_pick_the_observed_level():
  logits = jnp.log(jnp.array([0.1, 0.2, 0.7]))[None, None, None, None]
  for level, p in enumerate([0.1, 0.2, 0.7]):
    lp = likelihood.log_probs(logits, jnp.full((1, 1, 1, 1), level))
    np.testing.assert_allclose(lp, math.log(p), rtol=1e-6)


def test_mismatched_logits_and_images_are_refused():
  with pytest.raises(ValueError, match=r"must be images \(2, 4, 4, 1\) \+ \(K,\)"):
    likelihood.log_probs(jnp.zeros((2, 4, 4, 3, 2)), jnp.zeros((2, 4, 4, 1), jnp.int32))


def all_images(h, w, c, k):
  """Every image of the given shape with k levels: (k**(h*w*c), h, w, c)."""
  values = np.array(list(itertools.product(range(k), repeat=h * w * c)))
  return values.reshape(-1, h, w, c)


@pytest.mark.parametrize("shape, num_levels", [((2, 2, 1), 2), ((1, 2, 3), 2), ((1, 1, 3), 3)])
def test_pixelcnn_probabilities_of_all_images_sum_to_one(shape, num_levels):
  model = PixelCNN(
    num_channels=shape[-1],
    num_levels=num_levels,
    hidden_dim=6,
    num_layers=2,
    output_dim=12,
    rngs=nnx.Rngs(3),
  )
  # Random, non-zero biases make the conditionals far from uniform.
  for path, var in nnx.iter_graph(model):
    if isinstance(var, nnx.Param) and path[-1] == "bias":
      var[...] = jax.random.normal(jax.random.key(len(path)), var.shape)
  images = all_images(*shape, num_levels)
  nll = likelihood.nll_per_image(model(images.astype(np.float32)), images)
  probs = np.exp(-np.asarray(nll, np.float64))
  assert probs.std() > 1e-3 * probs.mean(), "the test needs a non-uniform model"
  np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
