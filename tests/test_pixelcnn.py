import causality
import jax
import numpy as np
import pytest
from flax import nnx

from pixelrnn.models.pixelcnn import PixelCNN


def expected_pixelcnn_receptive_field(h, w, c, num_blocks):
  """Group-level dependency sets of the logits, propagated layer by layer."""
  deps = causality.conv_receptive_field(causality.identity_deps(h, w, c), (7, 7), causality.mask_a)
  for _ in range(num_blocks):
    inner = deps
    for kernel in [(1, 1), (3, 3), (1, 1)]:
      inner = causality.conv_receptive_field(inner, kernel, causality.mask_b)
    deps = deps | inner
  for _ in range(2):  # The two 1x1 mask-B output layers.
    deps = causality.conv_receptive_field(deps, (1, 1), causality.mask_b)
  return deps


@pytest.mark.parametrize("num_channels, num_levels", [(1, 2), (3, 4)])
@pytest.mark.parametrize("num_blocks", [0, 2])
def test_pixelcnn_is_causal_and_sees_its_whole_receptive_field(
  num_channels, num_levels, num_blocks
):
  h, w = 6, 9
  model = PixelCNN(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=12,
    num_layers=num_blocks,
    output_dim=24,
    rngs=nnx.Rngs(0),
  )
  x = jax.random.uniform(jax.random.key(1), (4, h, w, num_channels), maxval=num_levels - 1)
  pattern = causality.dependency_pattern(model, x)

  causality.assert_causal(pattern)  # Includes: no dependence across the batch.
  causality.assert_receptive_field(
    pattern, expected_pixelcnn_receptive_field(h, w, num_channels, num_blocks)
  )


def test_pixelcnn_sees_its_neighbours_and_earlier_channels():
  h, w, c = 5, 5, 3
  model = PixelCNN(
    num_channels=c, num_levels=4, hidden_dim=6, num_layers=1, output_dim=12, rngs=nnx.Rngs(0)
  )
  x = jax.random.uniform(jax.random.key(2), (1, h, w, c), maxval=3)
  dep = causality.within_batch(causality.dependency_pattern(model, x))
  i, j = 2, 2
  for ch in range(c):
    assert dep[i, j, ch, i, j - 1].all(), "left neighbour, all channels"
    assert dep[i, j, ch, i - 1, j].all(), "pixel above, all channels"
    assert dep[i, j, ch, i - 1, j + 1].all(), "upper right, all channels"
    np.testing.assert_array_equal(dep[i, j, ch, i, j], np.arange(c) < ch)
  # Pixel (0, 0) R has nothing before it: its logits are a constant (the prior).
  assert not dep[0, 0, 0].any()


def test_stacked_masks_leave_the_known_blind_spot():
  # Each 3x3 mask-B layer reaches only one pixel up-right, so after two blocks the
  # pixel one row up and four to the right is unseen while one three rows up is
  # seen (the PixelCNN blind spot of van den Oord et al. 2016b).
  h, w, i, j = 8, 12, 7, 3
  expected = expected_pixelcnn_receptive_field(h, w, 1, num_blocks=2)
  assert not expected[i, j, 0, i - 1, j + 4, 0]
  assert expected[i, j, 0, i - 3, j + 4, 0]
  model = PixelCNN(
    num_channels=1, num_levels=2, hidden_dim=12, num_layers=2, output_dim=24, rngs=nnx.Rngs(0)
  )
  x = jax.random.uniform(jax.random.key(3), (1, h, w, 1))
  dep = causality.within_batch(causality.dependency_pattern(model, x))
  assert not dep[i, j, 0, i - 1, j + 4, 0]
  assert dep[i, j, 0, i - 3, j + 4, 0]
