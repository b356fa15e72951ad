"""The masked output head every model family shares: features (B, H, W, F) -> logits
(B, H, W, C, K), each sub-pixel's logits seeing only the features its channel group may."""

from __future__ import annotations

import jax
from flax import nnx

from pixelrnn.layers import masks


class OutputHead(nnx.Module):
  """ReLU -> 1x1 mask-B conv -> ReLU -> 1x1 mask-B conv -> (B, H, W, C, K) logits.

  Input (B, H, W, in_features) whose channel group g at pixel p has seen input
  channels < g of p. Logit group c (the K logits of channel c) reads hidden groups
  <= c, so the logits of channel c see the input channels < c of the current pixel
  and nothing at or after it.
  """

  def __init__(
    self,
    in_features: int,
    hidden_features: int,
    *,
    num_channels: int,
    num_levels: int,
    rngs: nnx.Rngs,
  ):
    self.num_channels = num_channels
    self.num_levels = num_levels
    self.hidden = masks.MaskedConv(
      in_features, hidden_features, (1, 1), num_channels=num_channels, mask_type="B", rngs=rngs
    )
    self.logits = masks.MaskedConv(
      hidden_features,
      num_channels * num_levels,
      (1, 1),
      num_channels=num_channels,
      mask_type="B",
      rngs=rngs,
    )

  def __call__(self, h: jax.Array) -> jax.Array:
    h = self.hidden(jax.nn.relu(h))
    out = self.logits(jax.nn.relu(h))
    return out.reshape(*out.shape[:-1], self.num_channels, self.num_levels)
