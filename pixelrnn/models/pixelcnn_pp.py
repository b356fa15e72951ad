"""PixelCNN++ (Salimans, Karpathy, Chen, Kingma 2017): two shifted streams in a U-Net.

The "u" stream at (i, j) sees the rows above i; the "ul" stream also sees row i left of
j (`layers/shifted_conv.py`). Neither sees any channel of (i, j): the network emits a
whole pixel's discretized logistic mixture (`distributions.LogisticMixture`), which
couples the channels itself.

Up pass, at each of L resolutions (full, 1/2, 1/4 for L = 3): R gated ResNet blocks per
stream, the ul block also reading the u stream; between resolutions a stride-2 shifted
convolution per stream. Down pass, from the coarsest resolution back: R blocks there
and R + 1 at each finer one, after a stride-2 transposed convolution; each block reads,
as a shortcut, the up pass's output at the same place in reverse order (the ul block
also the u stream's new output). Output: ELU, then a 1x1 layer to the mixture's
parameters (B, H, W, P).

Departure from the paper's code: plain convolutions instead of weight normalisation
with data-dependent initialisation (which ties the initial parameters to a data batch,
and which users of the reference code report as a source of NaNs); each block's second
convolution starts at 0.1 of the usual scale, as the code's `init_scale=0.1` does, so
that every block starts near the identity. Dropout (rate `dropout`) is drawn from the
training step's key, so it depends only on (seed, step).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx

from pixelrnn import distributions, likelihood
from pixelrnn.layers import conditioning as conditioning_lib
from pixelrnn.layers import shifted_conv
from pixelrnn.layers.shifted_conv import ShiftedConv, ShiftedDeconv, concat_elu
from pixelrnn.models import pixelcnn_pp_step

KERNELS = {"down": (2, 3), "down_right": (2, 2)}  # The u and ul streams' kernels.
STREAM_KINDS = {"u": "down", "ul": "down_right"}


class GatedResnet(nnx.Module):
  """x (B, H, W, F) -> x + a * sigmoid(b), where (a, b) = conv2(concat_elu(conv1(
  concat_elu(x)) + nin(concat_elu(aux)))) plus the conditioning's projection; both
  convolutions are the stream's shifted kind, so the block sees what its input saw."""

  def __init__(
    self, features: int, kind: str, *, aux_features: int, conditioning_dim: int, rngs: nnx.Rngs
  ):
    kernel = KERNELS[kind]
    self.conv1 = ShiftedConv(2 * features, features, kernel, kind=kind, rngs=rngs)
    self.aux = nnx.Linear(2 * aux_features, features, rngs=rngs) if aux_features else None
    self.conv2 = ShiftedConv(
      2 * features, 2 * features, kernel, kind=kind, init_scale=0.1, rngs=rngs
    )
    self.conditioning = conditioning_lib.projection(conditioning_dim, 2 * features, rngs)

  def _pre(self, c1: jax.Array, aux: jax.Array | None) -> jax.Array:
    return c1 if self.aux is None else c1 + self.aux(concat_elu(aux))

  def _gate(self, x: jax.Array, c2: jax.Array, conditioning: jax.Array | None) -> jax.Array:
    a, b = jnp.split(conditioning_lib.add_bias(c2, self.conditioning, conditioning), 2, axis=-1)
    return x + a * jax.nn.sigmoid(b)

  def __call__(self, x, aux=None, conditioning=None, *, rate: float = 0.0, key=None):
    """x (B, H, W, F), aux (B, H, W, A) or None, conditioning (B, H, W, c) or None;
    dropout at `rate` when given a key."""
    h = concat_elu(self._pre(self.conv1(concat_elu(x)), aux))
    if key is not None and rate > 0:
      keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
      h = jnp.where(keep, h / (1.0 - rate), 0.0).astype(h.dtype)
    return self._gate(x, self.conv2(h), conditioning)

  def region(self, x_map, pre_map, r, c, n: int, aux, conditioning):
    """The block at row r, columns c .. c + n - 1 (no dropout): (output (B, 1, n, F),
    `pre_map` with the region's conv2 input written). `x_map`, `pre_map`: stored
    (`shifted_conv.padded_map`) maps of the block's input and of conv2's input before
    its concat_elu, complete wherever the region reads them."""
    pre = self._pre(self.conv1.region(x_map, r, c, n, concat_elu), aux)
    pre_map = shifted_conv.write(pre_map, pre, r, c)
    c2 = self.conv2.region(pre_map, r, c, n, concat_elu)
    return self._gate(shifted_conv.read(x_map, r, c, n), c2, conditioning), pre_map


def _check_dropout(dropout) -> None:
  if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
    raise ValueError(f"model.dropout must be in [0, 1), got {dropout!r}.")


def _check_resolutions(levels: int, image_shape) -> None:
  """Raises ValueError unless 2^(levels - 1) divides the height and width of
  `image_shape` (H, W, ...)."""
  factor = 2 ** (levels - 1)
  if image_shape[0] % factor or image_shape[1] % factor:
    raise ValueError(
      f"model.num_resolutions={levels} halves the image {levels - 1} times: "
      f"{image_shape[0]}x{image_shape[1]} must be divisible by {factor}."
    )


def _blocks(features, kind, count, aux_features, conditioning_dim, rngs):
  return nnx.List(
    [
      GatedResnet(
        features,
        kind,
        aux_features=aux_features,
        conditioning_dim=conditioning_dim,
        rngs=rngs,
      )
      for _ in range(count)
    ]
  )


class PixelCNNPP(nnx.Module):
  """Images (B, H, W, C) levels in [0, 256) -> mixture parameters (B, H, W, P).

  `hidden_dim` is the filters per layer (F), `num_layers` the blocks per resolution
  (R), `num_resolutions` L (H and W divisible by 2^(L-1)); `output_dim` is unused.
  """

  config_defaults: dict = {"dropout": 0.5, "num_resolutions": 3}
  likelihoods = ("logistic_mixture",)

  @staticmethod
  def check_config(model_config, image_shape: tuple[int, int, int]) -> None:
    """Raises ValueError unless `dropout` is in [0, 1) and 2^(num_resolutions - 1)
    divides the image's height and width."""
    _check_dropout(model_config.dropout)
    levels = model_config.num_resolutions
    if not isinstance(levels, int) or levels < 1:
      raise ValueError(f"model.num_resolutions must be an integer >= 1, got {levels!r}.")
    _check_resolutions(levels, image_shape)

  def __init__(
    self,
    *,
    num_channels: int,
    num_levels: int,
    hidden_dim: int,
    num_layers: int,
    output_dim: int,
    rngs: nnx.Rngs,
    conditioning_dim: int = 0,
    distribution=None,
    dropout: float = 0.5,
    num_resolutions: int = 3,
  ):
    del output_dim
    if not isinstance(distribution, distributions.LogisticMixture):
      raise ValueError("PixelCNN++ emits a whole pixel's logistic mixture (model.likelihood).")
    _check_dropout(dropout)
    f, count, levels = hidden_dim, num_layers, num_resolutions
    self.num_levels = num_levels
    self.distribution = distribution
    self.conditioning_dim = conditioning_dim
    self.dropout_rate = dropout
    self.num_resolutions = levels
    self.features = f
    inputs = num_channels + 1  # The image and a channel of ones, which padding lacks.
    self.u_init = ShiftedConv(inputs, f, (2, 3), kind="down", rngs=rngs)
    self.ul_init_above = ShiftedConv(inputs, f, (1, 3), kind="down", rngs=rngs)
    self.ul_init_left = ShiftedConv(inputs, f, (2, 1), kind="down_right", rngs=rngs)
    blocks = lambda stream, n, aux: nnx.List(
      [
        _blocks(f, STREAM_KINDS[stream], n(level), aux, conditioning_dim, rngs)
        for level in range(levels)
      ]
    )
    self.up = nnx.Dict(u=blocks("u", lambda _: count, 0), ul=blocks("ul", lambda _: count, f))
    down_count = lambda level: count if level == levels - 1 else count + 1
    self.down = nnx.Dict(u=blocks("u", down_count, f), ul=blocks("ul", down_count, 2 * f))
    self.downsample = nnx.Dict(
      {
        s: nnx.List(
          [ShiftedConv(f, f, KERNELS[k], kind=k, stride=2, rngs=rngs) for _ in range(levels - 1)]
        )
        for s, k in STREAM_KINDS.items()
      }
    )
    self.upsample = nnx.Dict(
      {
        s: nnx.List([ShiftedDeconv(f, f, kind=k, rngs=rngs) for _ in range(levels - 1)])
        for s, k in STREAM_KINDS.items()
      }
    )
    self.out = nnx.Linear(f, distribution.outputs_per_pixel(num_channels), rngs=rngs)

  def input_map(self, images: jax.Array) -> jax.Array:
    """(B, H, W, C) levels -> (B, H, W, C + 1): the scaled image and a channel of ones."""
    x = likelihood.to_model_input(images, self.num_levels, self.out.kernel.dtype)
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)

  def __call__(self, images, conditioning=None, dropout_key=None) -> jax.Array:
    """images (B, H, W, C), conditioning (B, H, W, c) or None -> (B, H, W, P); with a
    `dropout_key`, the training pass's dropout."""
    conditioning_lib.check_map(conditioning, images.shape, self.conditioning_dim)
    _check_resolutions(self.num_resolutions, images.shape[1:])
    x = self.input_map(images)
    conds = [
      None if conditioning is None else conditioning[:, :: 2**level, :: 2**level]
      for level in range(self.num_resolutions)
    ]
    counter = itertools.count()
    run = lambda block, h, aux, cond: block(
      h,
      aux,
      cond,
      rate=self.dropout_rate,
      key=None if dropout_key is None else jax.random.fold_in(dropout_key, next(counter)),
    )
    u = shifted_conv.down_shift(self.u_init(x))
    ul = shifted_conv.down_shift(self.ul_init_above(x)) + shifted_conv.right_shift(
      self.ul_init_left(x)
    )
    us, uls = [], []
    for level in range(self.num_resolutions):
      if level:
        u = self.downsample["u"][level - 1](u)
        ul = self.downsample["ul"][level - 1](ul)
      us.append(u)
      uls.append(ul)
      for block_u, block_ul in zip(self.up["u"][level], self.up["ul"][level]):
        u = run(block_u, u, None, conds[level])
        ul = run(block_ul, ul, u, conds[level])
        us.append(u)
        uls.append(ul)
    u, ul = us.pop(), uls.pop()
    for level in reversed(range(self.num_resolutions)):
      if level < self.num_resolutions - 1:
        u = self.upsample["u"][level](u)
        ul = self.upsample["ul"][level](ul)
      for block_u, block_ul in zip(self.down["u"][level], self.down["ul"][level]):
        u = run(block_u, u, us.pop(), conds[level])
        ul = run(block_ul, ul, jnp.concatenate([u, uls.pop()], axis=-1), conds[level])
    return self.out(jax.nn.elu(ul))

  def init_cache(self, batch_size: int, image_shape: tuple[int, int, int]) -> dict:
    """The state of `step` before the first pixel (`pixelcnn_pp_step.init_cache`)."""
    return pixelcnn_pp_step.init_cache(self, batch_size, image_shape)

  def step(self, cache: dict, images: jax.Array, i, j, conditioning=None):
    """The parameters (B, P) of pixel (i, j), as `__call__` computes them there, once per
    pixel: `sampling.sample_cached`'s contract, computed as `pixelcnn_pp_step` says."""
    return pixelcnn_pp_step.step(self, cache, images, i, j, conditioning)
