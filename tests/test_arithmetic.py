"""experiments/arithmetic.py: its counts are what the speed analysis rests on."""

import jax
import jax.numpy as jnp
import pytest
from conftest import REPO_ROOT, experiment

from pixelrnn import cli
from pixelrnn.layers import convolution

arithmetic = experiment("arithmetic")


def counts(fn, *args):
  return arithmetic.count(jax.make_jaxpr(fn)(*args).jaxpr)


def test_a_matmul_counts_output_elements_times_the_contracted_size():
  assert counts(lambda a, b: a @ b, jnp.ones((4, 3)), jnp.ones((3, 5))) == (4 * 3 * 5, 0)


def test_a_scan_counts_its_body_once_per_step_and_tanh_per_element():
  def fn(w):
    return jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), jnp.ones((2, 6)), None, length=7)[0]

  assert counts(fn, jnp.ones((6, 6))) == (7 * 2 * 6 * 6, 7 * 2 * 6)


def test_a_convolution_counts_kernel_taps_times_input_features():
  conv = lambda x, k: jax.lax.conv_general_dilated(
    x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  assert counts(conv, jnp.ones((1, 5, 6, 3)), jnp.ones((3, 2, 3, 4)))[0] == 5 * 6 * 4 * (3 * 2 * 3)


def test_custom_vjp_functions_are_counted_through():
  @jax.custom_vjp
  def f(a, b):
    return a @ b

  f.defvjp(lambda a, b: (a @ b, (a, b)), lambda r, g: (g @ r[1].T, r[0].T @ g))
  assert counts(f, jnp.ones((4, 3)), jnp.ones((3, 5)))[0] == 60


def _per_pixel_shared(h, output_dim, levels, input_taps):
  """The 7x7 mask-A input layer (1 channel -> 2h, `input_taps` of its 49 computed) and the
  output head, per pixel."""
  return input_taps * 2 * h + 2 * h * output_dim + output_dim * levels


# The masked convolutions computed densely (XLA's convolution of the masked kernel), or
# only at their visible taps (a CPU's form): 24 of the 7x7 mask-A input layer's 49 taps,
# 5 of a 3x3 mask-B kernel's 9.
@pytest.mark.parametrize("form, input_taps, block_taps", [("conv", 49, 9), ("taps", 24, 5)])
@pytest.mark.parametrize(
  "name, per_layer",
  [
    ("pixelcnn", lambda h, taps: 2 * h * h + taps * h * h + h * 2 * h),  # 1x1, 3x3, 1x1.
    # 1x2 input-to-state over 2h features, 1x3 state-to-state, 1x1 projection.
    ("row_lstm", lambda h, taps: 2 * 2 * h * 4 * h + 3 * h * 4 * h + h * 2 * h),
  ],
)
def test_the_mnist_models_count_as_their_layers_add_up(
  name, per_layer, form, input_taps, block_taps
):
  config = cli.load_config(str(REPO_ROOT / "configs" / f"binarized_mnist_{name}.py"))
  h, layers = config.model.hidden_dim, config.model.num_layers
  expected = (
    28
    * 28
    * (
      layers * per_layer(h, block_taps)
      + _per_pixel_shared(h, config.model.output_dim, 2, input_taps)
    )
  )
  with convolution.masked_conv_form(form):
    assert arithmetic.forward_counts(config, batch_size=2)["forward_macs_per_image"] == expected
