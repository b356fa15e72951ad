"""Ancestral sampling, one sub-pixel at a time in raster-then-R,G,B order.

The random draw for sub-pixel n (its raster-then-channel index) uses the key
`fold_in(key, n)` and Gumbel-max on logits / temperature, for every image of the
batch at once. Any sampler that computes the same logits therefore draws exactly
the same images from the same key, however it computes them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ApplyFn = Callable[[jax.Array], jax.Array]  # (B, H, W, C) levels -> (B, H, W, C, K) logits.


def draw(key: jax.Array, index: jax.Array, logits: jax.Array, temperature: float) -> jax.Array:
  """Samples levels (B,) from logits (B, K) for the sub-pixel with raster index `index`."""
  return jax.random.categorical(jax.random.fold_in(key, index), logits / temperature, axis=-1)


def check_temperature(temperature: float) -> None:
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature!r}.")


def sample_reference(apply_fn: ApplyFn, key: jax.Array, *, num_samples: int,
                     image_shape: tuple[int, int, int], temperature: float = 1.0,
                     images: jax.Array | None = None, num_observed: int = 0) -> jax.Array:
  """Reference ancestral sampler: a full forward pass per sub-pixel.

  Args:
    apply_fn: the model, (B, H, W, C) levels -> (B, H, W, C, K) logits.
    key: PRNG key; sub-pixel n draws with fold_in(key, n).
    num_samples: B.
    image_shape: (H, W, C).
    temperature: > 0; logits are divided by it.
    images: optional (B, H, W, C) integer images whose first `num_observed`
      sub-pixels (raster-then-channel order) are kept; the rest are sampled.
    num_observed: how many leading sub-pixels of `images` are observed.

  Returns:
    (B, H, W, C) int32 levels.
  """
  check_temperature(temperature)
  h, w, c = image_shape
  if images is None:
    images = jnp.zeros((num_samples, h, w, c), jnp.int32)
  images = jnp.asarray(images, jnp.int32)
  if images.shape != (num_samples, h, w, c):
    raise ValueError(f"images {images.shape} must be {(num_samples, h, w, c)}.")

  def body(n, current):
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits = apply_fn(current)[:, i, j, ch]
    return current.at[:, i, j, ch].set(draw(key, n, logits, temperature).astype(jnp.int32))

  return jax.lax.fori_loop(num_observed, h * w * c, body, images)


def _weights(masked_conv) -> tuple[jax.Array, jax.Array]:
  """(kernel * mask (kh, kw, in, out), bias (out,)) of a MaskedConv."""
  conv = masked_conv.conv
  return conv.kernel[...] * conv.mask[...], conv.bias[...]


def _apply_at(window: jax.Array, masked_conv) -> jax.Array:
  """One kernel application: window (B, kh, kw, in) -> (B, out)."""
  kernel, bias = _weights(masked_conv)
  return jnp.einsum("bhwi,hwio->bo", window, kernel) + bias


def _window(padded: jax.Array, i, j, size: int) -> jax.Array:
  """The size x size window centred on (i, j) of a map padded by size // 2: (B, s, s, F)."""
  return jax.lax.dynamic_slice(padded, (0, i, j, 0),
                               (padded.shape[0], size, size, padded.shape[-1]))


def sample_pixelcnn_cached(model, key: jax.Array, *, num_samples: int,
                           image_shape: tuple[int, int, int], temperature: float = 1.0,
                           images: jax.Array | None = None, num_observed: int = 0,
                           return_logits: bool = False):
  """Exact incremental sampling for `pixelrnn.pixelcnn.PixelCNN`.

  Keeps, per residual block, a cache of the input of its 3x3 convolution over the
  whole image, and the model-input image itself for the 7x7 first layer. Sub-pixel
  (i, j, c) then costs one kernel application per layer at pixel (i, j): the 7x7 and
  3x3 convolutions read windows of the caches, the 1x1 layers only the pixel itself.
  Cached activations of earlier pixels are final: no feature of a pixel sees its own
  last channel (mask A), so they do not change once the pixel is done.

  Same arguments and random stream as `sample_reference`, so the same key gives the
  same images. With `return_logits`, also returns the (H*W*C, B, K) logits each step
  sampled from.
  """
  check_temperature(temperature)
  h, w, c = image_shape
  if images is None:
    images = jnp.zeros((num_samples, h, w, c), jnp.int32)
  images = jnp.asarray(images, jnp.int32)
  if images.shape != (num_samples, h, w, c):
    raise ValueError(f"images {images.shape} must be {(num_samples, h, w, c)}.")
  from pixelrnn import likelihood  # Local: sampling stays importable without models.

  num_levels = model.num_levels
  blocks = list(model.blocks)
  hidden = blocks[0].conv.conv.in_features if blocks else 0
  pad_in, pad_block = 3, 1
  model_input = likelihood.to_model_input(images, num_levels)
  x_cache = jnp.pad(model_input, ((0, 0), (pad_in, pad_in), (pad_in, pad_in), (0, 0)))
  block_caches = jnp.zeros((len(blocks), num_samples, h + 2, w + 2, hidden), jnp.float32)

  def pixel_logits(x_cache, block_caches, i, j):
    """Runs every layer at pixel (i, j); returns its (B, C, K) logits and the caches."""
    act = _apply_at(_window(x_cache, i, j, 7), model.input_conv)
    for b, block in enumerate(blocks):
      reduced = jax.nn.relu(_apply_at(jax.nn.relu(act)[:, None, None], block.reduce))
      block_caches = block_caches.at[b, :, i + pad_block, j + pad_block].set(reduced)
      conv = _apply_at(_window(block_caches[b], i, j, 3), block.conv)
      act = act + _apply_at(jax.nn.relu(conv)[:, None, None], block.expand)
    return model.head(act[:, None, None])[:, 0, 0], block_caches

  # Observed sub-pixels: run every observed pixel once so the caches hold them.
  def observe(p, carry):
    x_cache, block_caches = carry
    i, j = jnp.divmod(p, w)
    return x_cache, pixel_logits(x_cache, block_caches, i, j)[1]

  x_cache, block_caches = jax.lax.fori_loop(0, num_observed // c, observe, (x_cache, block_caches))

  def body(n, carry):
    current, x_cache, block_caches, logits_log = carry
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits, block_caches = pixel_logits(x_cache, block_caches, i, j)
    logits = jnp.take(logits, ch, axis=1)
    level = draw(key, n, logits, temperature).astype(jnp.int32)
    current = current.at[:, i, j, ch].set(level)
    value = likelihood.to_model_input(level, num_levels)
    x_cache = x_cache.at[:, i + pad_in, j + pad_in, ch].set(value)
    logits_log = logits_log.at[n].set(logits)
    return current, x_cache, block_caches, logits_log

  logits_log = jnp.zeros((h * w * c, num_samples, num_levels), jnp.float32)
  current, _, _, logits_log = jax.lax.fori_loop(
      num_observed, h * w * c, body, (images, x_cache, block_caches, logits_log))
  return (current, logits_log) if return_logits else current


def has_cached_sampler(model) -> bool:
  """Whether `sample` can use an incremental sampler for this model."""
  from pixelrnn.pixelcnn import PixelCNN
  return isinstance(model, PixelCNN)


def sample(model, key: jax.Array, *, num_samples: int, image_shape: tuple[int, int, int],
           temperature: float = 1.0, images: jax.Array | None = None, num_observed: int = 0,
           cached: bool = True) -> jax.Array:
  """Samples with the incremental sampler where the model has one, else the reference.

  Both draw identical images from the same key (tests/test_sampling.py), so the
  choice only changes the speed.
  """
  kwargs = dict(num_samples=num_samples, image_shape=image_shape, temperature=temperature,
                images=images, num_observed=num_observed)
  if cached and has_cached_sampler(model):
    return sample_pixelcnn_cached(model, key, **kwargs)
  return sample_reference(model, key, **kwargs)


def complete(model, key: jax.Array, images: jax.Array, *, num_observed: int | None = None,
             observed_rows: int | None = None, num_completions: int = 1,
             temperature: float = 1.0, observed_mask: jax.Array | None = None) -> jax.Array:
  """Completes images whose leading sub-pixels are observed (the paper's occlusion task).

  Args:
    model: (B, H, W, C) levels -> logits.
    images: (N, H, W, C) integer images; only the observed part is read.
    num_observed: number of observed leading sub-pixels in raster-then-channel order;
      or `observed_rows`, the number of observed top rows (H/2 is the paper's setting).
    num_completions: completions per image.
    observed_mask: optional bool (H, W, C) mask of observed sub-pixels. It must be a
      raster-order prefix: an autoregressive model cannot condition on later pixels.

  Returns:
    (N, num_completions, H, W, C) int32; observed sub-pixels equal `images` exactly.
  """
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
  if not jnp.issubdtype(images.dtype, jnp.integer):
    raise ValueError(f"images must hold integer levels, got dtype {images.dtype}.")
  n, h, w, c = images.shape
  total = h * w * c
  given = [a is not None for a in (num_observed, observed_rows, observed_mask)]
  if sum(given) != 1:
    raise ValueError("Give exactly one of num_observed, observed_rows or observed_mask.")
  if observed_rows is not None:
    if not 0 <= observed_rows <= h:
      raise ValueError(f"observed_rows must be in [0, {h}], got {observed_rows}.")
    num_observed = observed_rows * w * c
  if observed_mask is not None:
    flat = jnp.asarray(observed_mask, bool).reshape(-1)
    if flat.shape != (total,):
      raise ValueError(f"observed_mask must have shape {(h, w, c)}, got {jnp.shape(observed_mask)}.")
    num_observed = int(flat.sum())
    if not bool(jnp.all(flat[:num_observed])) or bool(jnp.any(flat[num_observed:])):
      raise ValueError(
          "observed_mask is not a raster-order prefix: a PixelRNN/PixelCNN cannot condition "
          "on pixels that come after the ones it generates. Observe the top rows (and a "
          "leading part of the next row) instead.")
  if not 0 <= num_observed <= total:
    raise ValueError(f"num_observed must be in [0, {total}], got {num_observed}.")
  repeated = jnp.repeat(images.astype(jnp.int32), num_completions, axis=0)
  out = sample(model, key, num_samples=n * num_completions, image_shape=(h, w, c),
               temperature=temperature, images=repeated, num_observed=num_observed)
  return out.reshape(n, num_completions, h, w, c)
