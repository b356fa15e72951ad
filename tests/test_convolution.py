import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pixelrnn import convolution
from pixelrnn.convolution import same_conv


def reference(x, kernel, padding="SAME"):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))


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
@pytest.mark.parametrize("kernel_size, padding", [((2, 3), ((1, 0), (1, 1))),
                                                  ((4, 7), ((3, 0), (3, 3))),
                                                  ((1, 2), ((0, 0), (1, 0))),
                                                  ((1, 4), ((0, 0), (3, 0)))])
def test_conv_with_causal_padding_equals_the_library_convolution(kernel_size, padding):
  assert_same_values_and_gradients(lambda x, k: convolution.conv(x, k, padding),
                                   lambda x, k: reference(x, k, padding), kernel_size)


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
