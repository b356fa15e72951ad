"""shifted_conv.py: what each layer reads, and its row and pixel forms equal to the map's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn.layers import shifted_conv
from pixelrnn.layers.shifted_conv import ShiftedConv, ShiftedDeconv

X = jax.random.normal(jax.random.key(0), (2, 6, 8, 4))
CONVS = [
  ("down", (2, 3), 1),
  ("down_right", (2, 2), 1),
  ("down", (2, 3), 2),
  ("down_right", (2, 2), 2),
  ("down", (1, 3), 1),
  ("down_right", (2, 1), 1),
]


def reads(fn, x, out_index):
  """bool (H, W): the input pixels output pixel `out_index` (i, j) depends on."""
  jac = jax.jacrev(lambda v: fn(v)[(0,) + out_index].sum())(x)
  return np.asarray(jnp.abs(jac[0]).sum(-1) > 0)


@pytest.mark.parametrize("kind, kernel, stride", CONVS)
def test_a_shifted_conv_reads_its_window_and_its_rows_and_pixels_equal_the_map(
  kind, kernel, stride
):
  conv = ShiftedConv(4, 5, kernel, kind=kind, stride=stride, rngs=nnx.Rngs(0))
  full = conv(X)
  assert full.shape == (2, 6 // stride, 8 // stride, 5)
  # Output (1, 1) at input (s, s): rows s - kh + 1 .. s, the kind's columns.
  kh, kw = kernel
  s = stride
  expected = np.zeros((6, 8), bool)
  left = (kw - 1) // 2 if kind == "down" else kw - 1
  expected[max(s - kh + 1, 0) : s + 1, max(s - left, 0) : s - left + kw] = True
  np.testing.assert_array_equal(reads(conv, X, (1, 1)), expected)
  stored = shifted_conv.padded_map(X)
  height, width = full.shape[1:3]
  rows = jnp.concatenate([conv.region(stored, r, 0, width) for r in range(height)], axis=1)
  np.testing.assert_allclose(rows, full, atol=1e-6)
  pixels = [[conv.region(stored, r, c, 1)[:, 0, 0] for c in range(width)] for r in range(height)]
  np.testing.assert_allclose(jnp.stack([jnp.stack(p, 1) for p in pixels], 1), full, atol=1e-6)


@pytest.mark.parametrize("kind", ["down", "down_right"])
def test_a_deconv_output_row_reads_one_input_row_and_its_row_form_equals_the_map(kind):
  deconv = ShiftedDeconv(4, 5, kind=kind, rngs=nnx.Rngs(1))
  full = deconv(X)
  assert full.shape == (2, 12, 16, 5)
  for i in range(12):
    for j in (0, 7, 15):
      seen = reads(deconv, X, (i, j))
      assert seen[i // 2].any() and not np.delete(seen, i // 2, axis=0).any()
      if kind == "down_right":
        assert np.argwhere(seen).tolist() == [[i // 2, j // 2]]
  stored = shifted_conv.padded_map(X)
  rows = jnp.concatenate([deconv.row(stored, r) for r in range(12)], axis=1)
  np.testing.assert_allclose(rows, full, atol=1e-6)
  if kind == "down_right":
    pixel = deconv.pixel(stored, 5, 9)[:, 0, 0]
    np.testing.assert_allclose(pixel, full[:, 5, 9], atol=1e-6)
  else:
    with pytest.raises(ValueError, match="reads three input columns"):
      deconv.pixel(stored, 5, 9)


def test_shifts_and_bad_kinds():
  np.testing.assert_array_equal(shifted_conv.down_shift(X)[:, 1:], X[:, :-1])
  np.testing.assert_array_equal(shifted_conv.right_shift(X)[:, :, 1:], X[:, :, :-1])
  assert not shifted_conv.down_shift(X)[:, 0].any()
  with pytest.raises(ValueError, match="kind must be one of"):
    ShiftedConv(4, 5, (2, 3), kind="up", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="odd kernel width"):
    ShiftedConv(4, 5, (2, 2), kind="down", rngs=nnx.Rngs(0))
