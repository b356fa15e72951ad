import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pixelrnn import defaults
from pixelrnn.layers import convolution, masks
from pixelrnn.layers.convolution import same_conv
from pixelrnn.models import registry


def reference(x, kernel, padding="SAME"):
  return jax.lax.conv_general_dilated(
    x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def assert_same_values_and_gradients(fn, want_fn, kernel_size):
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (2, 6, 5, 4))
  kernel = jax.random.normal(keys[1], kernel_size + (4, 3))
  cotangent = jax.random.normal(keys[2], (2, 6, 5, 3))
  want, want_vjp = jax.vjp(want_fn, x, kernel)
  got, got_vjp = jax.vjp(fn, x, kernel)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
  for a, b in zip(want_vjp(cotangent), got_vjp(cotangent)):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [(1, 1), (1, 3), (3, 3), (5, 3), (7, 7)])
def test_same_conv_equals_the_library_convolution_in_value_and_both_gradients(kernel_size):
  assert_same_values_and_gradients(same_conv, reference, kernel_size)


# The Gated PixelCNN's windows: rows above and the row itself; the row's left part.
@pytest.mark.parametrize(
  "kernel_size, padding",
  [
    ((2, 3), ((1, 0), (1, 1))),
    ((4, 7), ((3, 0), (3, 3))),
    ((1, 2), ((0, 0), (1, 0))),
    ((1, 4), ((0, 0), (3, 0))),
  ],
)
def test_conv_with_causal_padding_equals_the_library_convolution(kernel_size, padding):
  assert_same_values_and_gradients(
    lambda x, k: convolution.conv(x, k, padding), lambda x, k: reference(x, k, padding), kernel_size
  )


def test_a_padding_that_changes_the_size_is_refused():
  with pytest.raises(ValueError, match=r"padding \(\(1, 1\), \(0, 0\)\) does not keep the size"):
    convolution.conv(jnp.ones((1, 4, 4, 1)), jnp.ones((2, 1, 1, 1)), ((1, 1), (0, 0)))


def convolution_labels(conv):
  """The dimension labels of every convolution XLA compiles for one gradient step of
  `conv` run inside a loop, as the training loop runs it."""
  x, kernel = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
  grad = jax.grad(lambda k: jnp.sum(conv(x, k) ** 2))
  loop = jax.jit(lambda k, n: jax.lax.fori_loop(0, n, lambda i, k: k - grad(k), k))
  hlo = loop.lower(kernel, 1).compile().as_text()
  return set(re.findall(r"dim_labels=([\w>-]+)", hlo))


def test_inside_a_loop_every_convolution_of_the_gradient_is_in_the_fast_canonical_form():
  assert convolution_labels(same_conv) == {"b01f_01io->b01f"}
  # What it avoids: autodiff's gradients keep permuted labels in a loop body, which
  # XLA's CPU compiler runs several times slower.
  if jax.default_backend() == "cpu":
    assert convolution_labels(reference) != {"b01f_01io->b01f"}


TAPS_CASES = [
  ((7, 7), "A", 1, 1, 8),
  ((7, 7), "A", 3, 3, 12),
  ((3, 3), "B", 3, 12, 12),
  ((3, 3), "B", 1, 8, 8),
  ((1, 3), "B", 3, 6, 24),
  ((1, 1), "B", 3, 12, 6),
  ((1, 1), "A", 1, 4, 4),
  ((5, 5), "A", 3, 6, 6),
]


@pytest.mark.parametrize("kernel_size, mask_type, channels, in_features, out_features", TAPS_CASES)
def test_taps_conv_equals_the_convolution_of_the_masked_kernel_in_values_and_gradients(
  kernel_size, mask_type, channels, in_features, out_features
):
  rng = np.random.default_rng(sum(kernel_size) + in_features)
  mask = masks.conv_mask(kernel_size, in_features, out_features, channels, mask_type)
  x = jnp.asarray(rng.normal(size=(3, 7, 6, in_features)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=mask.shape), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(3, 7, 6, out_features)), jnp.float32)
  taps = masks.visible_taps(mask)

  def loss(form):
    return lambda x, kernel: jnp.sum(form(x, kernel * mask) * cotangent)

  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(
      convolution.taps_conv(x, kernel * mask, taps),
      convolution.same_conv(x, kernel * mask),
      rtol=1e-5,
      atol=1e-5,
    )
    ours = jax.grad(loss(lambda x, k: convolution.taps_conv(x, k, taps)), argnums=(0, 1))(x, kernel)
    theirs = jax.grad(loss(convolution.same_conv), argnums=(0, 1))(x, kernel)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # The masked positions get exactly no gradient, in both forms.
  assert not np.any(np.asarray(ours[1])[mask == 0])


def test_taps_conv_of_the_centre_tap_alone_is_the_product_with_the_centre_weights():
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, 5, 4, 3)), jnp.float32)
  kernel = np.zeros((3, 3, 3, 2), np.float32)
  kernel[1, 1] = rng.normal(size=(3, 2))
  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(
      convolution.taps_conv(x, jnp.asarray(kernel), ((1, 1),)),
      same_conv(x, jnp.asarray(kernel)),
      rtol=1e-5,
      atol=1e-5,
    )


def test_taps_conv_refuses_taps_below_the_centre_row():
  with pytest.raises(ValueError, match=r"taps \(\(2, 0\),\) reach below the output row"):
    convolution.taps_conv(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), ((2, 0),))


def test_the_cpu_multiplies_visible_taps_and_keeps_the_convolution_elsewhere():
  x, kernel = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 2))
  taps = masks.visible_taps(masks.conv_mask((3, 3), 2, 2, 1, "B"))
  lowered = lambda: (
    jax.jit(lambda x, k: convolution.masked_conv(x, k, taps)).lower(x, kernel).as_text()
  )
  assert jax.default_backend() == "cpu" and convolution.taps_preferred()
  assert "convolution" not in lowered() and "dot_general" in lowered()
  with convolution.masked_conv_form("conv"):
    assert not convolution.taps_preferred() and "convolution" in lowered()
  assert convolution.taps_preferred()  # The backend's choice again after the block.
  with pytest.raises(
    ValueError,
    match=r"Unknown masked convolution form 'dense'; valid: "
    r"\['conv', 'taps', 'blocks'\]",
  ):
    with convolution.masked_conv_form("dense"):
      pass


FAMILIES = [
  ("pixelcnn", 0),
  ("pixelcnn", 3),
  ("row_lstm", 0),
  ("row_lstm", 3),
  ("diagonal_bilstm", 0),
  ("diagonal_bilstm", 3),
  ("gated_pixelcnn", 0),
  ("gated_pixelcnn", 3),
  ("multiscale_pixelcnn", 0),
]


@pytest.mark.parametrize("name, num_classes", FAMILIES)
def test_both_forms_give_every_model_family_the_same_logits_and_gradients(name, num_classes):
  config = defaults.base_config()
  config.model.name = name.removeprefix("multiscale_")
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 6, 2, 12
  config.model.num_classes = num_classes
  image_shape = (8, 8, 3)
  if name.startswith("multiscale"):
    config.model.multiscale.factor = 2
    config.model.multiscale.small.num_layers = 1
  model, params = registry.build(config.model, image_shape=image_shape, num_levels=4, seed=1)
  rng = np.random.default_rng(2)
  images = jnp.asarray(rng.integers(0, 4, (3,) + image_shape), jnp.int32)
  labels = jnp.asarray(rng.integers(0, 3, 3), jnp.int32) if num_classes else None

  def outputs():
    with jax.default_matmul_precision("highest"):
      nll = lambda p: jnp.sum(model.nll_terms(p, images, labels)["nll"])
      value, grads = jax.jit(jax.value_and_grad(nll))(params)
      network = model.merged(params)
      logits = (
        None
        if name.startswith("multiscale")
        else jax.jit(lambda x: network(x, model.class_conditioning(labels, image_shape)))(images)
      )
    return value, grads, logits

  # "blocks" is the taps form with every grouped 1x1 layer blocked: it covers both CPU
  # products (a 1x1 layer left whole is one plain product, tested above).
  with convolution.masked_conv_form("blocks"):
    taps = outputs()
  with convolution.masked_conv_form("conv"):
    conv = outputs()
  np.testing.assert_allclose(taps[0], conv[0], rtol=1e-5)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), taps[1], conv[1]
  )
  if taps[2] is not None:
    np.testing.assert_allclose(taps[2], conv[2], rtol=1e-5, atol=1e-5)


def test_column_blocks_are_the_runs_of_columns_that_see_one_prefix_of_the_rows():
  # 3 channel groups: inputs 0-3, 4-7, 8-11; outputs 0-1, 2-3, 4-5.
  assert convolution.column_blocks(masks.centre_mask(12, 6, 3, "B")) == (
    (0, 2, 4),
    (2, 4, 8),
    (4, 6, 12),
  )
  assert convolution.column_blocks(masks.centre_mask(12, 6, 3, "A")) == (
    (0, 2, 0),
    (2, 4, 4),
    (4, 6, 8),
  )
  # No structure to use: one group (everything visible), gate-tiled groups (prefixes
  # that shrink again), a mask that is not a prefix.
  assert convolution.column_blocks(masks.centre_mask(4, 4, 1, "B")) is None
  gates = masks.centre_mask_from_groups(masks.channel_groups(6, 3), masks.gate_groups(3, 3, 2), "B")
  assert convolution.column_blocks(gates) is None
  assert convolution.column_blocks(np.array([[0.0, 1.0], [1.0, 1.0]])) is None


@pytest.mark.parametrize(
  "in_features, out_features, channels, mask_type",
  [(12, 6, 3, "B"), (12, 6, 3, "A"), (7, 11, 3, "B"), (6, 6, 2, "A"), (9, 5, 3, "B")],
)
def test_blocked_matmul_equals_the_product_of_the_masked_matrix_in_values_and_gradients(
  in_features, out_features, channels, mask_type
):
  rng = np.random.default_rng(in_features * out_features)
  mask = masks.centre_mask(in_features, out_features, channels, mask_type)
  blocks = convolution.column_blocks(mask)
  x = jnp.asarray(rng.normal(size=(10, in_features)), jnp.float32)
  w = jnp.asarray(rng.normal(size=mask.shape), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(10, out_features)), jnp.float32)
  with jax.default_matmul_precision("highest"):
    want, want_vjp = jax.vjp(lambda x, w: x @ (w * mask), x, w)
    got, got_vjp = jax.vjp(lambda x, w: convolution.blocked_matmul(x, w * mask, blocks), x, w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got_grads = got_vjp(cotangent)
    for a, b in zip(got_grads, want_vjp(cotangent)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # The masked entries get exactly no gradient.
  assert not np.any(np.asarray(got_grads[1])[mask == 0])


def test_the_cpu_multiplies_channel_blocks_only_where_they_are_wide():
  def products(in_features, out_features):
    mask = masks.conv_mask((1, 1), in_features, out_features, 3, "B")
    x, kernel = jnp.ones((1, 2, 2, in_features)), jnp.ones(mask.shape)
    blocks = convolution.column_blocks(mask[0, 0])
    taps = masks.visible_taps(mask)
    hlo = jax.jit(lambda x, k: convolution.masked_conv(x, k, taps, blocks)).lower(x, kernel)
    return hlo.as_text().count("dot_general")

  wide = 3 * convolution.MIN_BLOCK_COLUMNS
  assert jax.default_backend() == "cpu"
  assert products(wide, wide) == 3
  assert products(12, 6) == 1  # Blocks of 2 columns: one product of the whole matrix.
  with convolution.masked_conv_form("blocks"):
    assert products(12, 6) == 3
  for form in ("taps", "conv"):
    with convolution.masked_conv_form(form):
      assert products(wide, wide) == (1 if form == "taps" else 0)
