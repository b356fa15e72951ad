"""causal_conv.py: the shaped windows of the Gated PixelCNN's stacks compute the same
values and gradients as a product of their visible taps and as a convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn.layers import convolution, masks
from pixelrnn.layers.causal_conv import CausalConv

# (rows, left, right, centre mask type or None, channels): the vertical stack's windows
# (k = 7, 3) and the horizontal stack's, with the first layer's mask A (one channel: the
# centre tap sees nothing) and the later layers' mask B (three channel groups).
WINDOWS = [
  (4, 3, 3, None, 3),
  (2, 1, 1, None, 3),
  (1, 3, 0, "A", 1),
  (1, 3, 0, "A", 3),
  (1, 1, 0, "B", 3),
]


@pytest.mark.parametrize("rows, left, right, mask_type, channels", WINDOWS)
def test_the_taps_form_equals_the_convolution_in_values_and_gradients(
  rows, left, right, mask_type, channels
):
  in_features, out_features = 6, 6
  centre = (
    None
    if mask_type is None
    else masks.centre_mask_from_groups(
      masks.channel_groups(in_features, channels),
      masks.gate_groups(out_features // 2, channels, 2),
      mask_type,
    )
  )
  layer = CausalConv(
    in_features,
    out_features,
    rows=rows,
    left=left,
    right=right,
    rngs=nnx.Rngs(0),
    centre_mask=centre,
  )
  window = [(a, b) for a in range(rows) for b in range(left + right + 1)]
  if mask_type == "A" and channels == 1:
    window.remove((rows - 1, left))
  assert layer.taps == tuple(window)
  rng = np.random.default_rng(rows + left)
  x = jnp.asarray(rng.normal(size=(2, 7, 6, in_features)), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(2, 7, 6, out_features)), jnp.float32)
  graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

  def value_and_grads(form):
    def loss(params, x):
      return jnp.sum(nnx.merge(graphdef, params, rest)(x) * cotangent)

    with convolution.masked_conv_form(form), jax.default_matmul_precision("highest"):
      return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

  taps, conv = value_and_grads("taps"), value_and_grads("conv")
  np.testing.assert_allclose(taps[0], conv[0], rtol=1e-5)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), taps[1], conv[1]
  )
  # And the convolution is the window it claims: output (i, j) reads rows i - rows + 1 .. i.
  kernel, bias = layer.weights()
  padded = jnp.pad(x, ((0, 0), (rows - 1, 0), (left, right), (0, 0)))
  i, j = 3, 2
  window = padded[:, i : i + rows, j : j + left + right + 1]
  np.testing.assert_allclose(
    layer(x)[:, i, j], masks.apply_window(window, kernel, bias), rtol=1e-5, atol=1e-5
  )


def test_the_cpu_computes_the_window_as_one_product_of_its_taps():
  layer = CausalConv(3, 4, rows=2, left=1, right=1, rngs=nnx.Rngs(0))
  x = jnp.ones((1, 5, 5, 3))
  graphdef, params = nnx.split(layer)
  lowered = lambda: jax.jit(lambda p, x: nnx.merge(graphdef, p)(x)).lower(params, x).as_text()
  assert "convolution" not in lowered() and lowered().count("dot_general") == 1
  with convolution.masked_conv_form("conv"):
    assert "convolution" in lowered() and "dot_general" not in lowered()
