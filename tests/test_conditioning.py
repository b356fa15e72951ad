"""Conditional models: causal in the image, free to read the whole conditioning map,
and their incremental samplers reproduce the reference exactly."""

import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn import likelihood
from pixelrnn.layers import conditioning
from pixelrnn.layers.conditioning import ConditioningNetwork
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.row_lstm import RowLSTM
from pixelrnn.sampling import samplers
from pixelrnn.training import precision

FAMILIES = [PixelCNN, RowLSTM, DiagonalBiLSTM, GatedPixelCNN]
COND_DIM = 5


def conditional_model(cls, num_channels, num_levels, num_layers=2, conditioning_dim=COND_DIM):
  kwargs = dict(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=6,
    num_layers=num_layers,
    output_dim=12,
    conditioning_dim=conditioning_dim,
    rngs=nnx.Rngs(0),
  )
  if cls in (RowLSTM, DiagonalBiLSTM):
    kwargs.update(residual=True, skip=True)
  return cls(**kwargs)


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("num_channels, num_levels", [(1, 2), (3, 4)])
def test_conditional_model_is_causal_in_the_image_and_reads_its_own_pixels_condition(
  cls, num_channels, num_levels
):
  b, h, w = 3, 5, 6
  model = conditional_model(cls, num_channels, num_levels)
  x = jax.random.uniform(jax.random.key(1), (b, h, w, num_channels), maxval=num_levels - 1)
  cond = jax.random.normal(jax.random.key(2), (b, h, w, COND_DIM))
  causality.assert_causal(causality.dependency_pattern(lambda v: model(v, cond), x))

  # (B,H,W,C, B,H,W,c) -> whether each output reads any channel of the map at each pixel.
  on_cond = causality.dependency_pattern(lambda c: model(x, c), cond, seed=3).any(axis=-1)
  same_pixel = np.einsum("ab,ik,jl->aijbkl", np.eye(b), np.eye(h), np.eye(w)).astype(bool)
  # Every output sub-pixel, channel 0 of the first pixel included, reads the map at
  # its own pixel: the conditioning is not masked like the image. (Union over the
  # batch: an inactive ReLU can hide a dependency in one image.)
  own_pixel = on_cond.transpose(0, 1, 2, 4, 5, 6, 3)[same_pixel].reshape(b, h * w, -1)
  assert own_pixel.any(axis=0).all()
  across_batch = ~np.eye(b, dtype=bool)[:, None, None, None, :, None, None]
  assert not (on_cond & across_batch).any(), "conditioning leaks across the batch"


@pytest.mark.parametrize("cls", FAMILIES)
def test_a_map_is_refused_by_an_unconditional_model_and_required_by_a_conditional_one(cls):
  model = conditional_model(cls, 1, 2, num_layers=1, conditioning_dim=0)
  x = jnp.zeros((2, 4, 4, 1))
  with pytest.raises(ValueError, match="built without conditioning"):
    model(x, jnp.zeros((2, 4, 4, 3)))
  conditional = conditional_model(cls, 1, 2, num_layers=1)
  with pytest.raises(ValueError, match=f"needs a conditioning map with {COND_DIM} channels"):
    conditional(x)
  with pytest.raises(ValueError, match=r"must have shape \(2, 4, 4, 5\) .* got \(2, 4, 3, 5\)"):
    conditional(x, jnp.zeros((2, 4, 3, 5)))


@pytest.mark.parametrize(
  "cls", FAMILIES, ids=["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"]
)
@pytest.mark.parametrize("num_channels, num_levels", [(1, 2), (3, 4)])
def test_conditional_cached_sampler_with_fixed_pixels_reproduces_the_reference(
  cls, num_channels, num_levels
):
  model = conditional_model(cls, num_channels, num_levels)
  shape = (5, 6, num_channels)
  given = jax.random.randint(jax.random.key(9), (4,) + shape, 0, num_levels)
  cond = jax.random.normal(jax.random.key(4), (4, 5, 6, COND_DIM))
  fixed = np.zeros((5, 6), bool)
  fixed[::2, ::2] = True  # Scattered, not a prefix.
  kwargs = dict(num_samples=4, image_shape=shape, images=given, fixed=fixed)
  key = jax.random.key(11)
  reference = jax.jit(lambda k: samplers.sample_reference(lambda v: model(v, cond), k, **kwargs))(
    key
  )
  cached, logits = jax.jit(
    lambda k: samplers.sample_cached(model, k, return_logits=True, conditioning=cond, **kwargs)
  )(key)
  np.testing.assert_array_equal(cached, reference)
  np.testing.assert_array_equal(np.asarray(cached)[:, fixed], np.asarray(given)[:, fixed])
  assert not np.array_equal(np.asarray(cached)[:, ~fixed], np.asarray(given)[:, ~fixed])
  full = np.asarray(precision.full_precision(model)(jnp.asarray(cached, jnp.float32), cond))
  expected = full.reshape(4, -1, num_levels).transpose(1, 0, 2)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
  # The conditioning matters: another map gives other samples from the same key.
  other = jax.jit(lambda k: samplers.sample_cached(model, k, conditioning=-cond, **kwargs))(key)
  assert not np.array_equal(other, cached)


def test_conditioning_network_upsamples_the_small_image_to_the_large_size():
  net = conditioning.ConditioningNetwork(
    num_channels=3, num_levels=256, factor=2, conditioning_dim=7, num_layers=2, rngs=nnx.Rngs(0)
  )
  small = jax.random.randint(jax.random.key(0), (2, 16, 16, 3), 0, 256)
  assert net(small).shape == (2, 32, 32, 7)
  with pytest.raises(ValueError, match="factor must be >= 2, got 1"):
    conditioning.ConditioningNetwork(
      num_channels=1, num_levels=2, factor=1, conditioning_dim=4, num_layers=1, rngs=nnx.Rngs(0)
    )


def test_the_upsampling_product_equals_the_transposed_convolution_it_stands_for():
  network = ConditioningNetwork(
    num_channels=1, num_levels=2, factor=2, conditioning_dim=5, num_layers=0, rngs=nnx.Rngs(0)
  )
  small = jax.random.bernoulli(jax.random.key(1), 0.5, (2, 3, 4, 1)).astype(jnp.float32)
  expected = network.upsample(likelihood.to_model_input(small, 2, jnp.float32))
  np.testing.assert_allclose(network(small), expected, atol=1e-6)
