"""PixelCNN++'s one-pixel step: each layer computes only where a pixel it reads is new.

The u stream at row i sees only rows above i, so all of row i of every u layer is
computed once, when row i starts (j = 0); a layer at 1/2^l resolution computes its row
i / 2^l only when i is a multiple of 2^l, after the finer rows it reads. The ul stream
is computed one position at a time: at pixel (i, j), full resolution at (i, j), and a
1/2^l resolution layer at (i / 2^l, j / 2^l) when both are multiples of 2^l (the first
pixel that layer's position may read is then final). The up pass runs fine to coarse,
the down pass coarse to fine, as in the forward pass.

The cache holds, per stream, the stored maps (`shifted_conv.padded_map`) of every
block's input ("up", "down": entry k is block k's input, the last the level's output)
and of every block's second convolution's input ("up_pre", "down_pre"), each at its
level's resolution.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pixelrnn.layers import shifted_conv
from pixelrnn.layers.shifted_conv import read, write

STREAMS = ("u", "ul")


def init_cache(model, batch_size: int, image_shape: tuple[int, int, int]) -> dict:
  """Zero maps for every block input and second-convolution input of both streams."""
  height, width, _ = image_shape
  levels = range(model.num_resolutions)

  def maps(level, count):
    shape = (batch_size, height >> level, width >> level, model.features)
    return [shifted_conv.empty_map(*shape, model.out.kernel.dtype) for _ in range(count)]

  cache = {}
  for stream in STREAMS:
    up = [len(model.up[stream][level]) for level in levels]
    down = [len(model.down[stream][level]) for level in levels]
    cache[stream] = {
      "up": [maps(level, up[level] + 1) for level in levels],
      "up_pre": [maps(level, up[level]) for level in levels],
      "down": [maps(level, down[level] + 1) for level in levels],
      "down_pre": [maps(level, down[level]) for level in levels],
    }
  return cache


def _conditioning(conditioning, level: int, r, c, n: int):
  """The conditioning (B, 1, n, c) of a level's region, or None."""
  if conditioning is None:
    return None
  at_level = conditioning[:, :: 2**level, :: 2**level]
  return jax.lax.dynamic_slice(at_level, (0, r, c, 0), (at_level.shape[0], 1, n, at_level.shape[3]))


def _start(model, stream, level, maps, x, r, c, n):
  """The up pass's first map of `level` at the region: from the image at full
  resolution (shifted down, and for ul also right), else the stride-2 convolution."""
  if level:
    return model.downsample[stream][level - 1].region(maps["up"][level - 1][-1], r, c, n)
  init = model.u_init if stream == "u" else model.ul_init_above
  start = jnp.where(r > 0, init.region(x, jnp.maximum(r - 1, 0), c, n), 0.0)
  if stream == "ul":  # A single pixel (n = 1): its left neighbour's column.
    left = model.ul_init_left.region(x, r, jnp.maximum(c - 1, 0), n)
    start = start + jnp.where(c > 0, left, 0.0)
  return start


def _up_level(model, stream, level, maps, other, x, r, c, n, cond):
  """Every up-pass block of `stream` at `level`, at the region."""
  maps = jax.tree.map(lambda a: a, maps)  # New containers: the caller's stay as they are.
  h = _start(model, stream, level, maps, x, r, c, n)
  maps["up"][level][0] = write(maps["up"][level][0], h, r, c)
  for k, block in enumerate(model.up[stream][level]):
    aux = None if stream == "u" else read(other["up"][level][k + 1], r, c, n)
    h, maps["up_pre"][level][k] = block.region(
      maps["up"][level][k], maps["up_pre"][level][k], r, c, n, aux, cond
    )
    maps["up"][level][k + 1] = write(maps["up"][level][k + 1], h, r, c)
  return maps


def _down_level(model, stream, level, maps, other, r, c, n, cond):
  """Every down-pass block of `stream` at `level`, at the region."""
  maps = jax.tree.map(lambda a: a, maps)
  up_maps = maps["up"][level]
  if level == model.num_resolutions - 1:
    h, shortcuts = read(up_maps[-1], r, c, n), range(len(up_maps) - 2, -1, -1)
  else:
    upsample, below = model.upsample[stream][level], maps["down"][level + 1][-1]
    h = upsample.row(below, r) if stream == "u" else upsample.pixel(below, r, c)
    shortcuts = range(len(up_maps) - 1, -1, -1)
  maps["down"][level][0] = write(maps["down"][level][0], h, r, c)
  for k, (block, index) in enumerate(zip(model.down[stream][level], shortcuts)):
    aux = read(up_maps[index], r, c, n)
    if stream == "ul":
      aux = jnp.concatenate([read(other["down"][level][k + 1], r, c, n), aux], axis=-1)
    h, maps["down_pre"][level][k] = block.region(
      maps["down"][level][k], maps["down_pre"][level][k], r, c, n, aux, cond
    )
    maps["down"][level][k + 1] = write(maps["down"][level][k + 1], h, r, c)
  return maps


def _passes(model, stream, maps, other, x, conditioning, region, due):
  """Both passes of `stream`, each level where `due(level)`, at the level's region
  `region(level)` = (r, c, n): the up pass fine to coarse, then the down pass coarse to
  fine. `other`: the u stream's maps, which the ul stream reads (None for u)."""

  def up(level, r, c, n, m):
    cond = _conditioning(conditioning, level, r, c, n)
    return _up_level(model, stream, level, m, other, x, r, c, n, cond)

  def down(level, r, c, n, m):
    cond = _conditioning(conditioning, level, r, c, n)
    return _down_level(model, stream, level, m, other, r, c, n, cond)

  levels = range(model.num_resolutions)
  for fn, order in ((up, levels), (down, reversed(levels))):
    for level in order:
      run = functools.partial(fn, level, *region(level))
      maps = jax.lax.cond(due(level), run, lambda m: m, maps)
  return maps


def step(model, cache: dict, images: jax.Array, i, j, conditioning=None):
  """The mixture parameters (B, P) of pixel (i, j) and the cache with it added: the
  one-pixel step of `sampling.sample_cached`, called once per pixel in raster order."""
  x = shifted_conv.padded_map(model.input_map(images))
  width = images.shape[2]
  u_rows = functools.partial(  # Row i of every u layer whose row is due.
    _passes,
    model,
    "u",
    other=None,
    x=x,
    conditioning=conditioning,
    region=lambda level: (i // 2**level, 0, width >> level),
    due=lambda level: i % 2**level == 0,
  )
  u_maps = jax.lax.cond(j == 0, lambda m: u_rows(maps=m), lambda m: m, cache["u"])
  ul_maps = _passes(  # The ul layers due at (i, j).
    model,
    "ul",
    cache["ul"],
    u_maps,
    x,
    conditioning,
    region=lambda level: (i // 2**level, j // 2**level, 1),
    due=lambda level: (i % 2**level == 0) & (j % 2**level == 0),
  )
  final = read(ul_maps["down"][0][-1], i, j, 1)
  return model.out(jax.nn.elu(final))[:, 0, 0], {"u": u_maps, "ul": ul_maps}
