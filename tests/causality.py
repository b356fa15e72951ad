"""Helpers for gradient-based causality tests.

Sub-pixel (i, j, c) of an H x W x C image has raster-then-channel index
(i * W + j) * C + c. A model is causal when the logits at a sub-pixel have zero
gradient with respect to every input sub-pixel at or after it, and with respect to
every other image in the batch.
"""

import jax
import jax.numpy as jnp
import numpy as np


def dependency_pattern(fn, x: jax.Array, seed: int = 0, as_array: bool = False) -> np.ndarray:
  """Which inputs each output depends on, from the exact Jacobian.

  fn maps (B, H, W, C) floats to (B, H, W, C, K) logits. Each output sub-pixel's K
  logits are combined with random weights (so no cancellation hides a dependency).
  Returns bool (B, H, W, C, B, H, W, C): [out..., in...] is True where the gradient
  is nonzero (a jax.Array with `as_array`, for use under jit).
  """
  w = jax.random.normal(jax.random.key(seed), jax.eval_shape(fn, x).shape[-1:])
  # Compiled whole: eager, every primitive of the batched backward pass is dispatched
  # on its own, which made these tests several times slower.
  pattern = jax.jit(lambda v: jax.jacrev(lambda u: jnp.sum(fn(u) * w, axis=-1))(v) != 0)(x)
  return pattern if as_array else np.asarray(pattern)


def raster_order(h: int, w: int, c: int) -> np.ndarray:
  """(H, W, C) int array of raster-then-channel indices."""
  return np.arange(h * w * c).reshape(h, w, c)


def forbidden_mask(b: int, h: int, w: int, c: int) -> np.ndarray:
  """bool (B,H,W,C,B,H,W,C): True where a dependency would break causality
  (input at or after the output in the same image, or in another image)."""
  order = raster_order(h, w, c)
  at_or_after = order[:, :, :, None, None, None] <= order[None, None, None]
  same_image = np.eye(b, dtype=bool)[:, None, None, None, :, None, None, None]
  return np.where(same_image, at_or_after[None, :, :, :, None], True)


def assert_causal(pattern: np.ndarray) -> None:
  """Fails, listing an offending pair, if any forbidden dependency is present."""
  bad = pattern & forbidden_mask(*pattern.shape[:4])
  if bad.any():
    idx = tuple(int(v) for v in np.argwhere(bad)[0])
    raise AssertionError(
      f"{bad.sum()} forbidden dependencies, e.g. output (b,i,j,c)={idx[:4]} "
      f"depends on input (b,i,j,c)={idx[4:]}."
    )


def conv_receptive_field(deps: np.ndarray, kernel: tuple[int, int], centre_rule) -> np.ndarray:
  """Propagates group-level dependency sets through one masked 'SAME' convolution.

  deps: bool (H, W, G, H, W, C): which input sub-pixels feature group g at (i, j)
  depends on. centre_rule(g_in, g_out) says whether group g_in at the centre feeds
  g_out. Positions above the centre row, and left of the centre in its row, feed every
  group; positions after the centre feed nothing (written from the paper's rule, not
  from pixelrnn.masks).
  """
  h, w, groups = deps.shape[:3]
  out = np.zeros_like(deps)
  kh, kw = kernel
  for i in range(h):
    for j in range(w):
      for di in range(-(kh // 2), kh // 2 + 1):
        for dj in range(-(kw // 2), kw // 2 + 1):
          ii, jj = i + di, j + dj
          in_image = 0 <= ii < h and 0 <= jj < w
          visible = di < 0 or (di == 0 and dj <= 0)
          if not (in_image and visible):
            continue
          for g_out in range(groups):
            for g_in in range(groups):
              if (di, dj) == (0, 0) and not centre_rule(g_in, g_out):
                continue
              out[i, j, g_out] |= deps[ii, jj, g_in]
  return out


def identity_deps(h: int, w: int, c: int) -> np.ndarray:
  """Each input sub-pixel depends on itself: bool (H, W, C, H, W, C)."""
  return np.eye(h * w * c, dtype=bool).reshape(h, w, c, h, w, c)


def mask_a(g_in, g_out):
  return g_in < g_out


def mask_b(g_in, g_out):
  return g_in <= g_out


def within_batch(pattern: np.ndarray, b: int = 0) -> np.ndarray:
  """The (H,W,C,H,W,C) dependencies of image b's outputs on image b's inputs."""
  return pattern[b, :, :, :, b]


def assert_receptive_field(pattern: np.ndarray, expected: np.ndarray) -> None:
  """Every image's dependencies lie inside `expected` (H,W,C,H,W,C), and together
  they cover it.

  A ReLU that happens to be inactive at one input zeroes some gradients there, so
  the structural receptive field is the union over several random images.
  """
  union = np.zeros_like(expected)
  for b in range(pattern.shape[0]):
    own = within_batch(pattern, b)
    extra = own & ~expected
    if extra.any():
      raise AssertionError(
        f"image {b}: dependencies outside the receptive field at "
        f"{[tuple(map(int, v)) for v in np.argwhere(extra)[:5]]}"
      )
    union |= own
  missing = expected & ~union
  if missing.any():
    raise AssertionError(
      f"{missing.sum()} expected dependencies never seen, e.g. "
      f"{[tuple(map(int, v)) for v in np.argwhere(missing)[:5]]}"
    )


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
  """Dependency relation of outer(inner(x)): both bool (H,W,G,H,W,G') shaped."""
  h, w, g = outer.shape[:3]
  n = h * w * g
  m = inner.shape[3:]
  out = outer.reshape(n, n).astype(np.int32) @ inner.reshape(n, -1).astype(np.int32)
  return (out > 0).reshape(h, w, g, *m)


def pointwise_mask_b(h: int, w: int, c: int) -> np.ndarray:
  """Relation of a 1x1 mask-B convolution: same pixel, groups <= g."""
  return conv_receptive_field(identity_deps(h, w, c), (1, 1), mask_b)


def recurrent_model_field(
  layer_field: np.ndarray, num_layers: int, residual: bool = True
) -> np.ndarray:
  """Exact dependencies of a RecurrentStack's logits on its image, group level:
  7x7 mask-A conv, layers (each followed by a 1x1 mask-B projection, plus the
  residual), then the two 1x1 mask-B output layers."""
  h, w, c = layer_field.shape[:3]
  x = conv_receptive_field(identity_deps(h, w, c), (7, 7), mask_a)
  b = pointwise_mask_b(h, w, c)
  for _ in range(num_layers):
    out = compose(b, compose(layer_field, x))
    x = x | out if residual else out
  return compose(b, compose(b, x))


def strictly_before(h: int, w: int, c: int) -> np.ndarray:
  """bool (H,W,C,H,W,C): input sub-pixel strictly before the output sub-pixel."""
  order = raster_order(h, w, c)
  return order[:, :, :, None, None, None] > order[None, None, None]


def pixel_dependency_pattern(fn, x: jax.Array, seed: int = 0) -> np.ndarray:
  """Which input sub-pixels each output pixel depends on, for a model whose outputs
  (B, H, W, P) describe whole pixels: bool (B, H, W, B, H, W, C)."""
  pattern = dependency_pattern(lambda v: fn(v)[:, :, :, None, :], x, seed)
  return pattern[:, :, :, 0]


def assert_pixel_causal(pattern: np.ndarray) -> None:
  """Fails if an output pixel (B, H, W) depends on any channel of its own pixel, of a
  later pixel, or of another image: `pattern` from `pixel_dependency_pattern`."""
  b, h, w = pattern.shape[:3]
  order = np.arange(h * w).reshape(h, w)
  at_or_after = order[:, :, None, None] <= order[None, None]  # (H, W, H, W)
  same_image = np.eye(b, dtype=bool)[:, None, None, :, None, None]
  forbidden = np.where(same_image, at_or_after[None, :, :, None], True)[..., None]
  bad = pattern & forbidden
  if bad.any():
    idx = tuple(int(v) for v in np.argwhere(bad)[0])
    raise AssertionError(
      f"{bad.sum()} forbidden dependencies, e.g. output pixel (b,i,j)={idx[:3]} "
      f"depends on input (b,i,j,c)={idx[3:]}."
    )
