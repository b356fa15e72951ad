import causality
import jax
import numpy as np
import pytest
from flax import nnx

from pixelrnn.layers import masks


def test_channel_groups_are_contiguous_and_balanced():
  np.testing.assert_array_equal(masks.channel_groups(6, 3), [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(masks.channel_groups(3, 3), [0, 1, 2])
  np.testing.assert_array_equal(masks.channel_groups(4, 1), [0, 0, 0, 0])
  # 256 features (CIFAR's 2h) do not divide by 3; every group must still be used.
  assert np.bincount(masks.channel_groups(256, 3)).tolist() == [86, 85, 85]


def test_too_few_features_for_channel_groups_is_refused():
  with pytest.raises(ValueError, match="2 features cannot be split into 3"):
    masks.channel_groups(2, 3)


def test_centre_masks_for_rgb_match_the_paper():
  # in: R, G, B input channels; out: two features per group (R R G G B B).
  expected_a = np.array(
    [
      [0, 0, 1, 1, 1, 1],  # R feeds G and B
      [0, 0, 0, 0, 1, 1],  # G feeds B
      [0, 0, 0, 0, 0, 0],
    ]
  )  # B feeds nothing at the centre
  expected_b = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]])
  np.testing.assert_array_equal(masks.centre_mask(3, 6, 3, "A"), expected_a)
  np.testing.assert_array_equal(masks.centre_mask(3, 6, 3, "B"), expected_b)


@pytest.mark.parametrize("mask_type, centre", [("A", 0.0), ("B", 1.0)])
def test_single_channel_masks_degenerate_to_spatial_masks(mask_type, centre):
  mask = masks.conv_mask((3, 5), 4, 4, 1, mask_type)
  spatial = np.array([[1, 1, 1, 1, 1], [1, 1, centre, 0, 0], [0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(mask, np.broadcast_to(spatial[:, :, None, None], mask.shape))


def test_even_kernels_and_unknown_mask_types_are_refused():
  with pytest.raises(ValueError, match="odd sizes"):
    masks.conv_mask((2, 3), 1, 1, 1, "A")
  with pytest.raises(ValueError, match="mask_type must be one of"):
    masks.conv_mask((3, 3), 1, 1, 1, "C")


@pytest.mark.parametrize("num_channels", [1, 3])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_gradients_follow_the_mask(num_channels, mask_type):
  h = w = 5
  conv = masks.MaskedConv(
    num_channels,
    num_channels * 2,
    (3, 3),
    num_channels=num_channels,
    mask_type=mask_type,
    rngs=nnx.Rngs(0),
  )

  def logits(x):  # Out group g is read as the "logits" of channel g: (B,H,W,C,2).
    out = conv(x)
    return out.reshape(*out.shape[:3], num_channels, 2)

  x = jax.random.normal(jax.random.key(1), (2, h, w, num_channels))
  pattern = causality.dependency_pattern(logits, x)
  rule = causality.mask_a if mask_type == "A" else causality.mask_b
  expected = causality.conv_receptive_field(
    causality.identity_deps(h, w, num_channels), (3, 3), rule
  )
  np.testing.assert_array_equal(causality.within_batch(pattern, 0), expected)
  np.testing.assert_array_equal(causality.within_batch(pattern, 1), expected)
  assert not pattern[0, :, :, :, 1].any() and not pattern[1, :, :, :, 0].any(), (
    "leak across the batch"
  )
  if mask_type == "A":
    causality.assert_causal(pattern)
  else:
    # Mask B lets channel g see itself at the centre; that is its purpose in hidden layers.
    assert all(
      pattern[0, i, j, c, 0, i, j, c]
      for i in range(h)
      for j in range(w)
      for c in range(num_channels)
    )
