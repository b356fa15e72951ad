"""The masked output head every model family shares: features (B, H, W, F) -> the
distribution's outputs, each seeing only the features its channel group may."""

from __future__ import annotations

import jax
from flax import nnx

from pixelrnn.layers import masks


class OutputHead(nnx.Module):
  """ReLU -> 1x1 mask-B conv -> ReLU -> 1x1 mask-B conv -> the distribution's outputs.

  Input (B, H, W, in_features) in `distribution.mask_groups(num_channels)` groups. For
  the softmax (C groups), group g at pixel p has seen input channels < g of p; logit
  group c (the K logits of channel c) reads hidden groups <= c, so the logits
  (B, H, W, C, K) of channel c see the input channels < c of the current pixel and
  nothing at or after it. For a whole-pixel distribution (one group, which has seen
  nothing of p), the outputs (B, H, W, P) see nothing of p.
  """

  def __init__(
    self,
    in_features: int,
    hidden_features: int,
    *,
    num_channels: int,
    distribution,
    rngs: nnx.Rngs,
  ):
    self.num_channels = num_channels
    self.distribution = distribution
    kw = dict(num_channels=distribution.mask_groups(num_channels), mask_type="B", rngs=rngs)
    self.hidden = masks.MaskedConv(in_features, hidden_features, (1, 1), **kw)
    self.logits = masks.MaskedConv(
      hidden_features, distribution.outputs_per_pixel(num_channels), (1, 1), **kw
    )

  def __call__(self, h: jax.Array) -> jax.Array:
    h = self.hidden(jax.nn.relu(h))
    return self.distribution.shape_outputs(self.logits(jax.nn.relu(h)), self.num_channels)
