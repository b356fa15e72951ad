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
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from pixelrnn import conditioning as conditioning_lib
from pixelrnn import likelihood, precision
from pixelrnn.recurrent_stack import lstm_cell

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
    raise ValueError(f"fixed must be a bool (H, W) = {tuple(image_shape[:2])} mask, got "
                     f"{fixed.dtype} {fixed.shape}.")
  return images, fixed


def _draw_or_keep(key, n, logits, temperature, fixed_here, given):
  """The level (B,) of sub-pixel n: `given` where the pixel is fixed, else a draw."""
  return jnp.where(fixed_here, given, draw(key, n, logits, temperature).astype(jnp.int32))


@precision.full_precision
def sample_reference(apply_fn: ApplyFn, key: jax.Array, *, num_samples: int,
                     image_shape: tuple[int, int, int], temperature: float = 1.0,
                     images: jax.Array | None = None, num_observed: int = 0,
                     fixed: jax.Array | None = None) -> jax.Array:
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
    fixed: optional (H, W) bool mask of pixels copied from `images`, anywhere.

  Returns:
    (B, H, W, C) int32 levels.
  """
  images, fixed = _prepare(images, num_samples, image_shape, temperature, fixed)
  h, w, c = image_shape

  def body(n, current):
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits = apply_fn(current)[:, i, j, ch]
    level = _draw_or_keep(key, n, logits, temperature, fixed[i, j], current[:, i, j, ch])
    return current.at[:, i, j, ch].set(level)

  return jax.lax.fori_loop(num_observed, h * w * c, body, images)


def _apply_at(window: jax.Array, masked_conv) -> jax.Array:
  """One kernel application: window (B, kh, kw, in) -> (B, out)."""
  kernel, bias = masked_conv.weights()
  return jnp.einsum("bhwi,hwio->bo", window, kernel) + bias


def _window(padded: jax.Array, i, j, size: int) -> jax.Array:
  """The size x size window centred on (i, j) of a map padded by size // 2: (B, s, s, F)."""
  return jax.lax.dynamic_slice(padded, (0, i, j, 0),
                               (padded.shape[0], size, size, padded.shape[-1]))


def _sample_incremental(pixel_fn, caches, num_levels: int, key: jax.Array, images: jax.Array,
                        num_observed: int, temperature: float, return_logits: bool,
                        fixed: jax.Array):
  """The sub-pixel loop shared by the cached samplers.

  `pixel_fn(x, caches, i, j) -> (logits (B, C, K), caches)` runs every layer at pixel
  (i, j), where x is the model-input image padded by 3 on each side (for the 7x7
  first layer). Whole observed pixels are run once first so the caches hold them.
  """
  b, h, w, c = images.shape
  x = jnp.pad(likelihood.to_model_input(images, num_levels), ((0, 0), (3, 3), (3, 3), (0, 0)))

  def observe(p, caches):
    i, j = jnp.divmod(p, w)
    return pixel_fn(x, caches, i, j)[1]

  caches = jax.lax.fori_loop(0, num_observed // c, observe, caches)

  def body(n, carry):
    current, x, caches, logits_log = carry
    i, rest = jnp.divmod(n, w * c)
    j, ch = jnp.divmod(rest, c)
    logits, caches = pixel_fn(x, caches, i, j)
    logits = jnp.take(logits, ch, axis=1)
    level = _draw_or_keep(key, n, logits, temperature, fixed[i, j], current[:, i, j, ch])
    current = current.at[:, i, j, ch].set(level)
    x = x.at[:, i + 3, j + 3, ch].set(likelihood.to_model_input(level, num_levels))
    return current, x, caches, logits_log.at[n].set(logits)

  logits_log = jnp.zeros((h * w * c, b, num_levels), jnp.float32)
  current, _, _, logits_log = jax.lax.fori_loop(num_observed, h * w * c, body,
                                                (images, x, caches, logits_log))
  return (current, logits_log) if return_logits else current


@precision.full_precision
def sample_pixelcnn_cached(model, key: jax.Array, *, num_samples: int,
                           image_shape: tuple[int, int, int], temperature: float = 1.0,
                           images: jax.Array | None = None, num_observed: int = 0,
                           return_logits: bool = False, conditioning: jax.Array | None = None,
                           fixed: jax.Array | None = None):
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
  images, fixed = _prepare(images, num_samples, image_shape, temperature, fixed)
  h, w, _ = image_shape
  blocks = list(model.blocks)
  hidden = blocks[0].conv.conv.in_features if blocks else 0

  def pixel_logits(x, block_caches, i, j):
    cond = conditioning_lib.pixel(conditioning, i, j)
    act = conditioning_lib.add_bias(_apply_at(_window(x, i, j, 7), model.input_conv),
                                    model.input_conditioning, cond)
    for b, block in enumerate(blocks):
      reduced = jax.nn.relu(_apply_at(jax.nn.relu(act)[:, None, None], block.reduce))
      block_caches = block_caches.at[b, :, i + 1, j + 1].set(reduced)
      conv = conditioning_lib.add_bias(_apply_at(_window(block_caches[b], i, j, 3), block.conv),
                                       block.conditioning, cond)
      act = act + _apply_at(jax.nn.relu(conv)[:, None, None], block.expand)
    return model.head(act[:, None, None])[:, 0, 0], block_caches

  block_caches = jnp.zeros((len(blocks), num_samples, h + 2, w + 2, hidden), jnp.float32)
  return _sample_incremental(pixel_logits, block_caches, model.num_levels, key, images,
                             num_observed, temperature, return_logits, fixed)


def _recurrent_stack_at(model, x, caches, i, j, layer_step, cond):
  """Runs a `RecurrentStack` at pixel (i, j): (B, C, K) logits and the new caches.

  `layer_step(l, layer, act, caches, i, j, cond) -> (hidden (B, h), caches)` gives
  layer l's output at (i, j) from its input `act` (B, 2h) and the pixel's (B, c)
  conditioning `cond` (or None); the projections, residual and skip connections and
  the head are applied here as in `RecurrentStack.__call__`.
  """
  act = conditioning_lib.add_bias(_apply_at(_window(x, i, j, 7), model.input_conv),
                                  model.input_conditioning, cond)
  skip_sum = jnp.zeros_like(act)
  for l, (layer, projection) in enumerate(zip(model.layers, model.projections)):
    hidden, caches = layer_step(l, layer, act, caches, i, j, cond)
    out = _apply_at(hidden[:, None, None], projection)
    act = act + out if model.residual else out
    skip_sum = skip_sum + act
  return model.head((skip_sum if model.skip else act)[:, None, None])[:, 0, 0], caches


def _stack_sizes(model) -> tuple[int, int, int]:
  """(number of layers, h, 2h) of a `RecurrentStack`."""
  return len(model.layers), model.layers[0].hidden_dim, model.input_conv.conv.out_features


@precision.full_precision
def sample_row_lstm_cached(model, key: jax.Array, *, num_samples: int,
                           image_shape: tuple[int, int, int], temperature: float = 1.0,
                           images: jax.Array | None = None, num_observed: int = 0,
                           return_logits: bool = False, conditioning: jax.Array | None = None,
                           fixed: jax.Array | None = None):
  """Exact incremental sampling for `pixelrnn.row_lstm.RowLSTM`.

  Per layer it keeps the hidden and cell states of every row generated so far (the
  previous row is what the state-to-state convolution reads) and the current row of
  the layer's input (what the 1x3 input-to-state convolution reads), and computes the
  current row pixel by pixel. Arguments and random stream as `sample_reference`.
  """
  images, fixed = _prepare(images, num_samples, image_shape, temperature, fixed)
  h, w, _ = image_shape
  num_layers, hidden_dim, features = _stack_sizes(model)

  def layer_step(l, layer, act, caches, i, j, cond):
    rows_in, cells, hiddens = caches
    rows_in = rows_in.at[l, :, j + 1].set(act)
    window = jax.lax.dynamic_slice_in_dim(rows_in[l], j, 3, axis=1)[:, None]  # (B, 1, 3, F)
    above = jax.lax.dynamic_slice_in_dim(hiddens[l, :, i], j, 3, axis=1)  # Row i - 1.
    gates = (conditioning_lib.add_bias(_apply_at(window, layer.input_to_state),
                                       layer.conditioning, cond)
             + above.reshape(above.shape[0], -1) @ layer.state_to_state[...])
    cell, hidden = lstm_cell(gates, cells[l, :, i, j + 1])
    cells = cells.at[l, :, i + 1, j + 1].set(cell)
    hiddens = hiddens.at[l, :, i + 1, j + 1].set(hidden)
    return hidden, (rows_in, cells, hiddens)

  def pixel_logits(x, caches, i, j):
    return _recurrent_stack_at(model, x, caches, i, j, layer_step,
                               conditioning_lib.pixel(conditioning, i, j))

  # Row r of the image is row r + 1 of the state caches (row 0: the zero state before
  # the first row); columns are padded by one for the 1x3 windows.
  states = jnp.zeros((num_layers, num_samples, h + 1, w + 2, hidden_dim), jnp.float32)
  rows_in = jnp.zeros((num_layers, num_samples, w + 2, features), jnp.float32)
  return _sample_incremental(pixel_logits, (rows_in, states, states), model.num_levels, key,
                             images, num_observed, temperature, return_logits, fixed)


@precision.full_precision
def sample_diagonal_bilstm_cached(model, key: jax.Array, *, num_samples: int,
                                  image_shape: tuple[int, int, int], temperature: float = 1.0,
                                  images: jax.Array | None = None, num_observed: int = 0,
                                  return_logits: bool = False,
                                  conditioning: jax.Array | None = None,
                                  fixed: jax.Array | None = None):
  """Exact incremental sampling for `pixelrnn.diagonal_bilstm.DiagonalBiLSTM`.

  The left-to-right direction advances pixel by pixel: the state at (i, j) reads the
  states at (i - 1, j) and (i, j - 1). The right-to-left direction reads, after its
  one-row shift, only completed rows: when row i starts, it runs once right to left
  over row i - 1 for every layer, from that row's stored layer inputs. Arguments and
  random stream as `sample_reference`.
  """
  images, fixed = _prepare(images, num_samples, image_shape, temperature, fixed)
  h, w, _ = image_shape
  num_layers, hidden_dim, features = _stack_sizes(model)

  def layer_step(l, layer, act, caches, i, j, cond):
    rows_in, lr_c, lr_h, rl_c, rl_h = caches
    rows_in = rows_in.at[l, i % 2, :, j].set(act)
    neighbours = jnp.concatenate([lr_h[l, :, i, j + 1], lr_h[l, :, i + 1, j]], axis=-1)
    gates = (conditioning_lib.add_bias(_apply_at(act[:, None, None], layer.input_to_state_lr),
                                       layer.conditioning_lr, cond)
             + neighbours @ layer.state_to_state[...][0])
    cell, hidden = lstm_cell(gates, lr_c[l, :, i + 1, j])
    lr_c = lr_c.at[l, :, i + 1, j + 1].set(cell)
    lr_h = lr_h.at[l, :, i + 1, j + 1].set(hidden)
    # Plus the right-to-left state of the row above (the one-row shift).
    return hidden + rl_h[l, :, i, j], (rows_in, lr_c, lr_h, rl_c, rl_h)

  def pixel_logits(x, caches, i, j):
    rows_in, lr_c, lr_h, rl_c, rl_h = caches
    rl_c, rl_h = jax.lax.cond((j == 0) & (i > 0), lambda: rl_pass(rows_in, rl_c, rl_h, i - 1),
                              lambda: (rl_c, rl_h))
    return _recurrent_stack_at(model, x, (rows_in, lr_c, lr_h, rl_c, rl_h), i, j, layer_step,
                               conditioning_lib.pixel(conditioning, i, j))

  def rl_pass(rows_in, rl_c, rl_h, r):
    """Runs the right-to-left direction over image row r for every layer."""
    for l, layer in enumerate(model.layers):
      row = rows_in[l, r % 2]  # (B, W, F): the layer's input on row r.
      gates_in = _apply_at(row.reshape(-1, 1, 1, features),
                           layer.input_to_state_rl).reshape(num_samples, w, -1)
      gates_in = conditioning_lib.add_bias(gates_in, layer.conditioning_rl,
                                           conditioning_lib.row(conditioning, r))
      kernel = layer.state_to_state[...][1]

      def step(k, carry, l=l, gates_in=gates_in, kernel=kernel):
        rl_c, rl_h = carry
        j = w - 1 - k
        neighbours = jnp.concatenate([rl_h[l, :, r, j], rl_h[l, :, r + 1, j + 1]], axis=-1)
        gates = jnp.take(gates_in, j, axis=1) + neighbours @ kernel
        cell, hid = lstm_cell(gates, rl_c[l, :, r + 1, j + 1])
        return rl_c.at[l, :, r + 1, j].set(cell), rl_h.at[l, :, r + 1, j].set(hid)

      rl_c, rl_h = jax.lax.fori_loop(0, w, step, (rl_c, rl_h))
    return rl_c, rl_h

  # State caches: image row r is row r + 1 (row 0 is the zero state above the image).
  # Left-to-right columns are shifted by one (column 0: zero state left of the image);
  # right-to-left columns are not, and column W is the zero state right of the image.
  states = jnp.zeros((num_layers, num_samples, h + 1, w + 1, hidden_dim), jnp.float32)
  # Layer inputs of the current and the previous row, by row parity: the pass over row
  # i - 1 may run at every channel of pixel (i, 0) and must read the same values.
  rows_in = jnp.zeros((num_layers, 2, num_samples, w, features), jnp.float32)
  caches = (rows_in, states, states, states, states)
  return _sample_incremental(pixel_logits, caches, model.num_levels, key, images, num_observed,
                             temperature, return_logits, fixed)


def _cached_sampler(model):
  from pixelrnn.pixelcnn import PixelCNN
  from pixelrnn.diagonal_bilstm import DiagonalBiLSTM
  from pixelrnn.row_lstm import RowLSTM
  if isinstance(model, DiagonalBiLSTM):
    return sample_diagonal_bilstm_cached
  if isinstance(model, PixelCNN):
    return sample_pixelcnn_cached
  if isinstance(model, RowLSTM):
    return sample_row_lstm_cached
  return None


def _refuse_multiscale(model) -> None:
  from pixelrnn.multiscale import MultiScale
  if isinstance(model, MultiScale):
    raise ValueError("A multi-scale model samples in two stages: use multiscale.sample or "
                     "multiscale.complete instead of sampling.sample or sampling.complete.")


def has_cached_sampler(model) -> bool:
  """Whether `sample` can use an incremental sampler for this model."""
  return _cached_sampler(model) is not None


@precision.full_precision
def sample(model, key: jax.Array, *, num_samples: int, image_shape: tuple[int, int, int],
           temperature: float = 1.0, images: jax.Array | None = None, num_observed: int = 0,
           cached: bool = True, conditioning: jax.Array | None = None,
           fixed: jax.Array | None = None) -> jax.Array:
  """Samples with the incremental sampler where the model has one, else the reference.

  Both draw identical images from the same key (tests/test_sampling.py), so the
  choice only changes the speed. `conditioning` (B, H, W, c) is passed to a
  conditional model; `fixed` (H, W) marks pixels copied from `images`.
  """
  _refuse_multiscale(model)
  kwargs = dict(num_samples=num_samples, image_shape=image_shape, temperature=temperature,
                images=images, num_observed=num_observed, fixed=fixed)
  if cached and has_cached_sampler(model):
    return _cached_sampler(model)(model, key, conditioning=conditioning, **kwargs)
  apply_fn = model if conditioning is None else (lambda x: model(x, conditioning))
  return sample_reference(apply_fn, key, **kwargs)


def integer_images(images) -> jax.Array:
  """Images to complete, checked: an integer (N, H, W, C) array."""
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
  if not jnp.issubdtype(images.dtype, jnp.integer):
    raise ValueError(f"images must hold integer levels, got dtype {images.dtype}.")
  return images


def check_observed_rows(observed_rows: int, height: int) -> None:
  if not 0 <= observed_rows <= height:
    raise ValueError(f"observed_rows must be in [0, {height}], got {observed_rows}.")


@precision.full_precision
def complete(model, key: jax.Array, images: jax.Array, *, num_observed: int | None = None,
             observed_pixels: int | None = None, observed_rows: int | None = None,
             num_completions: int = 1,
             temperature: float = 1.0, observed_mask: jax.Array | None = None) -> jax.Array:
  """Completes images whose leading sub-pixels are observed (the paper's occlusion task).

  Args:
    model: (B, H, W, C) levels -> logits.
    images: (N, H, W, C) integer images; only the observed part is read.
    num_observed: number of observed leading sub-pixels in raster-then-channel order;
      or `observed_pixels`, the number of observed leading pixels (all channels); or
      `observed_rows`, the number of observed top rows (H/2 is the paper's setting).
    num_completions: completions per image.
    observed_mask: optional bool (H, W, C) mask of observed sub-pixels. It must be a
      raster-order prefix: an autoregressive model cannot condition on later pixels.

  Returns:
    (N, num_completions, H, W, C) int32; observed sub-pixels equal `images` exactly.
  """
  _refuse_multiscale(model)
  images = integer_images(images)
  n, h, w, c = images.shape
  total = h * w * c
  given = [a is not None for a in (num_observed, observed_pixels, observed_rows, observed_mask)]
  if sum(given) != 1:
    raise ValueError("Give exactly one of num_observed, observed_pixels, observed_rows or "
                     "observed_mask.")
  if observed_pixels is not None:
    if not 0 <= observed_pixels <= h * w:
      raise ValueError(f"observed_pixels must be in [0, {h * w}], got {observed_pixels}.")
    num_observed = observed_pixels * c
  if observed_rows is not None:
    check_observed_rows(observed_rows, h)
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
