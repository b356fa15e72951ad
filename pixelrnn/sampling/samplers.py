"""Ancestral sampling, one sub-pixel at a time in raster-then-R,G,B order.

The random draw for sub-pixel n (its raster-then-channel index) uses the key
`fold_in(key, n)` and Gumbel-max on logits / temperature, for every image of the
batch at once. Any sampler that computes the same logits therefore draws exactly
the same images from the same key, however it computes them.

Every sampler also takes an optional `conditioning` map (B, H, W, c) for conditional
models (`conditioning.py`) and an optional `fixed` (H, W) bool mask of pixels whose
values are given in `images` and copied rather than drawn, wherever they lie (the
multi-scale model fixes the subsampled pixels this way; see `multiscale.py`). The
model still runs at fixed pixels, and their draws are skipped, not shifted: the
random stream of every other sub-pixel stays the same.

A distribution that couples a pixel's channels (`distributions.LogisticMixture`) draws
whole pixels instead: pixel p draws its C levels together with the key `fold_in(key, p)`,
and its outputs are computed once, from the pixels before it.

`sample_reference` runs the whole network once per sub-pixel and works for any model.
`sample_cached` uses a model's own one-pixel step (`init_cache`, `step`), which every
single-scale family provides beside its forward pass; `sample` picks it when the model
has it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from pixelrnn import distributions
from pixelrnn.training import precision

ApplyFn = Callable[[jax.Array], jax.Array]  # (B, H, W, C) levels -> (B, H, W, C, K) logits.


def draw(key: jax.Array, index: jax.Array, logits: jax.Array, temperature: float) -> jax.Array:
  """Samples levels (B,) from logits (B, K) for the sub-pixel with raster index `index`."""
  return jax.random.categorical(jax.random.fold_in(key, index), logits / temperature, axis=-1)


def check_temperature(temperature: float) -> None:
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature!r}.")


def _prepare(images, num_samples, image_shape, temperature, fixed=None):
  """Checks the arguments shared by the samplers.

  Returns the int32 (B, H, W, C) images and the (H, W) bool mask of fixed pixels.
  """
  check_temperature(temperature)
  if images is None:
    images = jnp.zeros((num_samples,) + tuple(image_shape), jnp.int32)
  images = jnp.asarray(images, jnp.int32)
  if images.shape != (num_samples,) + tuple(image_shape):
    raise ValueError(f"images {images.shape} must be {(num_samples,) + tuple(image_shape)}.")
  if fixed is None:
    fixed = jnp.zeros(tuple(image_shape[:2]), bool)
  fixed = jnp.asarray(fixed)
  if fixed.shape != tuple(image_shape[:2]) or fixed.dtype != bool:
    raise ValueError(
      f"fixed must be a bool (H, W) = {tuple(image_shape[:2])} mask, got "
      f"{fixed.dtype} {fixed.shape}."
    )
  return images, fixed


def _draw_or_keep(key, n, logits, temperature, fixed_here, given):
  """The level (B,) of sub-pixel n: `given` where the pixel is fixed, else a draw."""
  return jnp.where(fixed_here, given, draw(key, n, logits, temperature).astype(jnp.int32))


def _draw_pixel_or_keep(distribution, key, p, outputs, temperature, fixed_here, given):
  """The levels (B, C) of pixel p, drawn together from its outputs (B, P), or `given`
  (B, C) where the pixel is fixed."""
  levels = distribution.sample_pixel(
    jax.random.fold_in(key, p), outputs, given.shape[-1], temperature
  )
  return jnp.where(fixed_here, given, levels)


def _observed_pixels(distribution, num_observed: int, num_channels: int) -> int:
  """Whole observed pixels; a whole-pixel distribution observes only whole pixels."""
  if distribution.draws_whole_pixels and num_observed % num_channels:
    raise ValueError(
      f"num_observed={num_observed} must be a multiple of the {num_channels} channels: "
      f"this model draws a pixel's channels together."
    )
  return num_observed // num_channels


@precision.full_precision
def sample_reference(
  apply_fn: ApplyFn,
  key: jax.Array,
  *,
  num_samples: int,
  image_shape: tuple[int, int, int],
  temperature: float = 1.0,
  images: jax.Array | None = None,
  num_observed: int = 0,
  fixed: jax.Array | None = None,
  distribution=None,
) -> jax.Array:
  """Reference ancestral sampler: a full forward pass per sub-pixel (per pixel for a
  whole-pixel `distribution`).

  Args:
    apply_fn: the model, (B, H, W, C) levels -> (B, H, W, C, K) logits.
    key: PRNG key; sub-pixel n draws with fold_in(key, n).
    num_samples: B.
    image_shape: (H, W, C).
    temperature: > 0; logits are divided by it.
    images: optional (B, H, W, C) integer images whose first `num_observed`
      sub-pixels (raster-then-channel order) are kept; the rest are sampled.
    num_observed: how many leading sub-pixels of `images` are observed.
    fixed: optional (H, W) bool mask of pixels copied from `images`, anywhere.
    distribution: what the model's outputs mean (`distributions.py`); by default the
      softmax, whose outputs are (B, H, W, C, K) logits.

  Returns:
    (B, H, W, C) int32 levels.
  """
  images, fixed = _prepare(images, num_samples, image_shape, temperature, fixed)
  h, w, c = image_shape
  if distribution is not None and distribution.draws_whole_pixels:
    first = _observed_pixels(distribution, num_observed, c)

    def pixel_body(p, current):
      i, j = jnp.divmod(p, w)
      outputs = apply_fn(current)[:, i, j]
      levels = _draw_pixel_or_keep(
        distribution, key, p, outputs, temperature, fixed[i, j], current[:, i, j]
      )
      return current.at[:, i, j].set(levels)

    return jax.lax.fori_loop(first, h * w, pixel_body, images)

  def body(n, current):
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits = apply_fn(current)[:, i, j, ch]
    level = _draw_or_keep(key, n, logits, temperature, fixed[i, j], current[:, i, j, ch])
    return current.at[:, i, j, ch].set(level)

  return jax.lax.fori_loop(num_observed, h * w * c, body, images)


def has_cached_sampler(model) -> bool:
  """Whether the model computes one pixel at a time (`init_cache` and `step`), which
  `sample_cached` needs."""
  return callable(getattr(model, "init_cache", None)) and callable(getattr(model, "step", None))


@precision.full_precision
def _observed_cache(model, images: jax.Array, num_pixels: int, conditioning):
  """The model's cache after its step ran at the first `num_pixels` pixels of `images`
  (B, H, W, C), each once, in raster order."""
  width = images.shape[2]

  def observe(p, cache):
    i, j = jnp.divmod(p, width)
    return model.step(cache, images, i, j, conditioning)[1]

  initial = model.init_cache(images.shape[0], images.shape[1:])
  return jax.lax.fori_loop(0, num_pixels, observe, initial)


def sample_cached(
  model,
  key: jax.Array,
  *,
  num_samples: int,
  image_shape: tuple[int, int, int],
  temperature: float = 1.0,
  images: jax.Array | None = None,
  num_observed: int = 0,
  return_logits: bool = False,
  conditioning: jax.Array | None = None,
  fixed: jax.Array | None = None,
):
  """Exact incremental sampling with the model's own one-pixel step.

  The model provides `init_cache(batch_size, (H, W, C)) -> cache` and
  `step(cache, images, i, j, conditioning) -> (logits (B, C, K), cache)`:
  - `images` (B, H, W, C) levels are final at every pixel before (i, j); at (i, j) the
    logits of channel c may read only the channels < c, and nothing after (i, j);
  - `cache` is `init_cache`'s, after `step` ran at every earlier pixel in raster order
    (possibly several times at a pixel, once per channel: the last call counts);
  - `conditioning` is the whole (B, H, W, c) map, or None;
  - the logits equal the forward pass's at (i, j) (up to float rounding), and the
    returned cache adds pixel (i, j).
  Sub-pixel (i, j, c) runs one step at (i, j) and draws channel c; whole observed
  pixels are run once first so that the cache holds them. A whole-pixel distribution's
  step returns (B, P) outputs that see nothing of (i, j), and runs once per pixel.

  Same arguments and random stream as `sample_reference`, so the same key gives the
  same images. With `return_logits`, also returns the (H*W*C, B, K) logits each
  sub-pixel was drawn from, or the (H*W, B, P) outputs of each pixel (observed rows 0).
  """
  if not has_cached_sampler(model):
    raise ValueError(
      f"{type(model).__name__} has no one-pixel step (init_cache and step); use sample_reference."
    )
  images, fixed = _prepare(images, num_samples, image_shape, temperature, fixed)
  h, w, c = image_shape
  if distributions.of(model).draws_whole_pixels:
    current, outputs_log = _sample_cached_pixels(
      model, key, images, num_observed, temperature, conditioning, fixed
    )
    return (current, outputs_log) if return_logits else current

  cache = _observed_cache(model, images, num_observed // c, conditioning)

  def body(n, carry):
    current, cache, logits_log = carry
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits, cache = model.step(cache, current, i, j, conditioning)
    logits = jnp.take(logits, ch, axis=1)
    level = _draw_or_keep(key, n, logits, temperature, fixed[i, j], current[:, i, j, ch])
    return current.at[:, i, j, ch].set(level), cache, logits_log.at[n].set(logits)

  logits_log = jnp.zeros((h * w * c, num_samples, model.num_levels), jnp.float32)
  current, _, logits_log = jax.lax.fori_loop(
    num_observed, h * w * c, body, (images, cache, logits_log)
  )
  return (current, logits_log) if return_logits else current


def _sample_cached_pixels(model, key, images, num_observed, temperature, conditioning, fixed):
  """`sample_cached` for a whole-pixel distribution: one step per pixel, its channels
  drawn together. Returns the images and the (H*W, B, P) outputs."""
  distribution = distributions.of(model)
  batch, h, w, c = images.shape
  first = _observed_pixels(distribution, num_observed, c)
  cache = _observed_cache(model, images, first, conditioning)

  def body(p, carry):
    current, cache, outputs_log = carry
    i, j = jnp.divmod(p, w)
    outputs, cache = model.step(cache, current, i, j, conditioning)
    levels = _draw_pixel_or_keep(
      distribution, key, p, outputs, temperature, fixed[i, j], current[:, i, j]
    )
    return current.at[:, i, j].set(levels), cache, outputs_log.at[p].set(outputs)

  outputs_log = jnp.zeros((h * w, batch, distribution.outputs_per_pixel(c)), jnp.float32)
  current, _, outputs_log = jax.lax.fori_loop(first, h * w, body, (images, cache, outputs_log))
  return current, outputs_log


def _refuse_staged(model) -> None:
  if getattr(model, "samples_in_stages", False):
    raise ValueError(
      "A multi-scale model samples in two stages: use multiscale.sample or "
      "multiscale.complete instead of sampling.sample or sampling.complete."
    )


@precision.full_precision
def sample(
  model,
  key: jax.Array,
  *,
  num_samples: int,
  image_shape: tuple[int, int, int],
  temperature: float = 1.0,
  images: jax.Array | None = None,
  num_observed: int = 0,
  cached: bool = True,
  conditioning: jax.Array | None = None,
  fixed: jax.Array | None = None,
) -> jax.Array:
  """Samples with the incremental sampler where the model has one, else the reference.

  Both draw identical images from the same key (tests/test_sampling.py), so the
  choice only changes the speed. `conditioning` (B, H, W, c) is passed to a
  conditional model; `fixed` (H, W) marks pixels copied from `images`.
  """
  _refuse_staged(model)
  kwargs = dict(
    num_samples=num_samples,
    image_shape=image_shape,
    temperature=temperature,
    images=images,
    num_observed=num_observed,
    fixed=fixed,
  )
  if cached and has_cached_sampler(model):
    return sample_cached(model, key, conditioning=conditioning, **kwargs)
  apply_fn = model if conditioning is None else (lambda x: model(x, conditioning))
  return sample_reference(apply_fn, key, distribution=distributions.of(model), **kwargs)
