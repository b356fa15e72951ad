import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from pixelrnn import likelihood
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.row_lstm import RowLSTM
from pixelrnn.sampling import completion, samplers
from pixelrnn.training import precision


def tiny_model(cls, num_channels, num_levels, seed=0):
  kwargs = dict(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=6,
    num_layers=1,
    output_dim=12,
    rngs=nnx.Rngs(seed),
  )
  if cls is not PixelCNN:
    kwargs.update(residual=True, skip=False)
  model = cls(**kwargs)
  # Random biases make the model's distribution clearly non-uniform.
  for path, var in nnx.iter_graph(model):
    if isinstance(var, nnx.Param) and path[-1] == "bias":
      var[...] = 1.5 * jax.random.normal(jax.random.key(len(path) + seed), var.shape)
  return model


def exact_distribution(model, shape, num_levels):
  """All images of `shape` and their model probabilities (which sum to 1)."""
  images = np.array(list(itertools.product(range(num_levels), repeat=int(np.prod(shape)))))
  images = images.reshape(-1, *shape)
  nll = likelihood.nll_per_image(model(images.astype(np.float32)), images)
  probs = np.exp(-np.asarray(nll, np.float64))
  np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
  return images, probs / probs.sum()


def empirical_counts(samples, images):
  index = {tuple(im.ravel()): k for k, im in enumerate(images)}
  counts = np.zeros(len(images))
  for s in np.asarray(samples).reshape(len(samples), -1):
    counts[index[tuple(s)]] += 1
  return counts


@pytest.mark.parametrize(
  "cls, shape, num_levels",
  [
    (PixelCNN, (2, 2, 1), 2),
    (RowLSTM, (2, 2, 1), 2),
    (DiagonalBiLSTM, (2, 2, 1), 2),
    (PixelCNN, (1, 1, 3), 3),
  ],
)
def test_samples_follow_the_model_distribution(cls, shape, num_levels):
  model = tiny_model(cls, shape[-1], num_levels)
  images, probs = exact_distribution(model, shape, num_levels)
  num_samples = 20_000
  samples = jax.jit(
    lambda key: samplers.sample_reference(model, key, num_samples=num_samples, image_shape=shape)
  )(jax.random.key(0))
  counts = empirical_counts(samples, images)
  assert stats.chisquare(counts, probs * num_samples).pvalue > 1e-3
  # The same counts against the uniform distribution are rejected: the test can fail.
  assert stats.chisquare(counts, np.full(len(images), num_samples / len(images))).pvalue < 1e-6


def test_low_temperature_gives_greedy_decoding():
  model = tiny_model(PixelCNN, 3, 4)
  shape = (2, 3, 3)
  greedy = np.zeros((1,) + shape, np.int32)
  for i, j, c in itertools.product(range(2), range(3), range(3)):
    greedy[0, i, j, c] = int(np.argmax(model(greedy.astype(np.float32))[0, i, j, c]))
  samples = samplers.sample_reference(
    model, jax.random.key(1), num_samples=50, image_shape=shape, temperature=1e-4
  )
  np.testing.assert_array_equal(samples, np.broadcast_to(greedy, samples.shape))


def test_same_key_same_samples_and_a_new_key_new_samples():
  model = tiny_model(RowLSTM, 1, 2)
  run = lambda k: samplers.sample_reference(
    model, jax.random.key(k), num_samples=8, image_shape=(4, 5, 1)
  )
  np.testing.assert_array_equal(run(3), run(3))
  assert not np.array_equal(run(3), run(4))


def test_observed_leading_sub_pixels_are_kept_bit_for_bit():
  model = tiny_model(DiagonalBiLSTM, 3, 4)
  observed = jax.random.randint(jax.random.key(5), (6, 3, 4, 3), 0, 4)
  num_observed = 17  # Ends inside a pixel: R and G of pixel (1, 1) are observed, B is not.
  out = samplers.sample_reference(
    model,
    jax.random.key(6),
    num_samples=6,
    image_shape=(3, 4, 3),
    images=observed,
    num_observed=num_observed,
  )
  flat_in, flat_out = np.asarray(observed).reshape(6, -1), np.asarray(out).reshape(6, -1)
  np.testing.assert_array_equal(flat_out[:, :num_observed], flat_in[:, :num_observed])
  assert not np.array_equal(flat_out[:, num_observed:], flat_in[:, num_observed:])
  assert out.min() >= 0 and out.max() < 4


def test_bad_temperature_and_shapes_are_refused():
  model = tiny_model(PixelCNN, 1, 2)
  with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
    samplers.sample_reference(
      model, jax.random.key(0), num_samples=2, image_shape=(2, 2, 1), temperature=0
    )
  with pytest.raises(ValueError, match=r"images \(3, 2, 2, 1\) must be \(2, 2, 2, 1\)"):
    samplers.sample_reference(
      model, jax.random.key(0), num_samples=2, image_shape=(2, 2, 1), images=jnp.zeros((3, 2, 2, 1))
    )


def full_forward_logits_per_step(model, images):
  """(H*W*C, B, K): the full network's logits of every sub-pixel, in sampling order,
  at full float32 like the samplers (a GPU's default TF32 differs by ~1e-3)."""
  logits = np.asarray(precision.full_precision(model)(jnp.asarray(images, jnp.float32)))
  b, h, w, c, k = logits.shape
  return logits.reshape(b, h * w * c, k).transpose(1, 0, 2)


@pytest.mark.parametrize(
  "cls",
  [PixelCNN, RowLSTM, DiagonalBiLSTM, GatedPixelCNN],
  ids=["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"],
)
@pytest.mark.parametrize(
  "num_channels, num_levels, num_observed", [(1, 2, 0), (3, 4, 0), (3, 4, 13)]
)
def test_cached_sampler_reproduces_the_reference_exactly(
  cls, num_channels, num_levels, num_observed
):
  kwargs = dict(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=6,
    num_layers=2,
    output_dim=12,
    rngs=nnx.Rngs(0),
  )
  if cls in (RowLSTM, DiagonalBiLSTM):
    kwargs.update(residual=True, skip=True)
  model = cls(**kwargs)
  assert samplers.has_cached_sampler(model)
  shape = (5, 6, num_channels)
  observed = jax.random.randint(jax.random.key(9), (4,) + shape, 0, num_levels)
  kwargs = dict(num_samples=4, image_shape=shape, images=observed, num_observed=num_observed)
  key = jax.random.key(11)
  reference = jax.jit(lambda k: samplers.sample_reference(model, k, **kwargs))(key)
  cached, logits = jax.jit(
    lambda k: samplers.sample_cached(model, k, return_logits=True, **kwargs)
  )(key)
  np.testing.assert_array_equal(cached, reference)
  expected = full_forward_logits_per_step(model, cached)
  np.testing.assert_allclose(logits[num_observed:], expected[num_observed:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [PixelCNN, RowLSTM, DiagonalBiLSTM])
def test_completions_keep_the_observed_rows_and_have_finite_log_probability(cls):
  model = tiny_model(cls, 3, 4)
  originals = jax.random.randint(jax.random.key(2), (2, 4, 5, 3), 0, 4)
  out = completion.complete(model, jax.random.key(3), originals, observed_rows=2, num_completions=3)
  assert out.shape == (2, 3, 4, 5, 3)
  for k in range(3):
    np.testing.assert_array_equal(out[:, k, :2], originals[:, :2])
  assert not np.array_equal(out[:, 0, 2:], out[:, 1, 2:]), "completions differ"
  flat = out.reshape(6, 4, 5, 3)
  log_p = likelihood.log_probs(model(flat.astype(jnp.float32)), flat)
  completed_part = np.asarray(log_p[:, 2:].sum(axis=(1, 2, 3)))
  assert np.all(np.isfinite(completed_part)) and np.all(completed_part < 0)


def test_a_prefix_mask_is_accepted_and_anything_else_is_refused():
  model = tiny_model(PixelCNN, 1, 2)
  originals = jnp.ones((1, 3, 3, 1), jnp.int32)
  prefix = np.zeros((3, 3, 1), bool)
  prefix.reshape(-1)[:4] = True
  a = completion.complete(model, jax.random.key(0), originals, observed_mask=prefix)
  b = completion.complete(model, jax.random.key(0), originals, num_observed=4)
  c = completion.complete(model, jax.random.key(0), originals, observed_pixels=4)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a, c)  # One channel: pixels and sub-pixels coincide.
  lower_half_known = np.zeros((3, 3, 1), bool)
  lower_half_known[2] = True
  with pytest.raises(ValueError, match="not a raster-order prefix"):
    completion.complete(model, jax.random.key(0), originals, observed_mask=lower_half_known)
  with pytest.raises(ValueError, match="Give exactly one of"):
    completion.complete(model, jax.random.key(0), originals, num_observed=2, observed_rows=1)
  with pytest.raises(ValueError, match="integer levels, got dtype float32"):
    completion.complete(model, jax.random.key(0), originals.astype(jnp.float32), num_observed=2)
  with pytest.raises(ValueError, match=r"observed_rows must be in \[0, 3\], got 4"):
    completion.complete(model, jax.random.key(0), originals, observed_rows=4)
