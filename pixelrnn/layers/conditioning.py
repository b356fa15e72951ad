"""Conditioning inputs for the models: a (B, H, W, c) map added as a bias.

A conditional network (the second stage of the multi-scale model, `multiscale.py`, or
a class-conditional model, whose map is the one-hot label at every pixel) receives,
besides the image it models, a conditioning map s of c channels at every pixel. Each
conditioned layer adds a learned linear projection V s(i, j) to its pre-activations at
pixel (i, j), as in conditional PixelCNN (van den Oord et al., 2016b). The map is an
input known in full before the image is generated, so it is not masked: every pixel of
every channel group may read all of it.

Models built with `conditioning_dim = 0` are unconditional and have no projections.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pixelrnn import likelihood
from pixelrnn.layers import convolution

_UNCONDITIONAL = (
  "This model was built without conditioning (conditioning_dim=0) but was given a conditioning map."
)


def projection(conditioning_dim: int, features: int, rngs: nnx.Rngs) -> nnx.Linear | None:
  """The c -> features bias projection of one layer, or None when unconditional."""
  if conditioning_dim < 0:
    raise ValueError(f"conditioning_dim must be >= 0, got {conditioning_dim}.")
  if conditioning_dim == 0:
    return None
  return nnx.Linear(conditioning_dim, features, use_bias=False, rngs=rngs)


def add_bias(
  pre_activation: jax.Array, layer_projection: nnx.Linear | None, conditioning: jax.Array | None
) -> jax.Array:
  """pre_activation (..., F) + layer_projection(conditioning (..., c)).

  The leading axes of the two must match (a whole map, a row, or a pixel).
  """
  if layer_projection is None:
    if conditioning is not None:
      raise ValueError(_UNCONDITIONAL)
    return pre_activation
  if conditioning is None:
    raise ValueError(
      f"This model is conditional: it needs a conditioning map with "
      f"{layer_projection.in_features} channels."
    )
  return pre_activation + layer_projection(conditioning)


def check_map(
  conditioning: jax.Array | None, images_shape: tuple[int, ...], conditioning_dim: int
) -> None:
  """Checks a (B, H, W, c) conditioning map against (B, H, W, C) images."""
  if conditioning is None:
    return
  if conditioning_dim == 0:
    raise ValueError(_UNCONDITIONAL)
  expected = tuple(images_shape[:3]) + (conditioning_dim,)
  if tuple(conditioning.shape) != expected:
    raise ValueError(
      f"The conditioning map must have shape {expected} for images of shape "
      f"{tuple(images_shape)}, got {tuple(conditioning.shape)}."
    )


class ConditioningNetwork(nnx.Module):
  """Small image (B, s, s, C) levels -> conditioning map (B, s*f, s*f, c).

  A convolutional embedding (`num_layers` unmasked 3x3 convolutions with ReLU) of the
  small image, then a learned transposed convolution with stride f (kernel f x f) up
  to the large image's size. Nothing is masked: the small image is given in full.
  """

  def __init__(
    self,
    *,
    num_channels: int,
    num_levels: int,
    factor: int,
    conditioning_dim: int,
    num_layers: int,
    rngs: nnx.Rngs,
  ):
    if factor < 2:
      raise ValueError(f"The upsampling factor must be >= 2, got {factor}.")
    self.num_levels = num_levels
    self.embedding = nnx.List(
      [
        nnx.Conv(
          num_channels if k == 0 else conditioning_dim,
          conditioning_dim,
          (3, 3),
          padding="SAME",
          rngs=rngs,
        )
        for k in range(num_layers)
      ]
    )
    self.upsample = nnx.ConvTranspose(
      conditioning_dim if num_layers else num_channels,
      conditioning_dim,
      kernel_size=(factor, factor),
      strides=(factor, factor),
      padding="VALID",
      rngs=rngs,
    )

  def __call__(self, small_images: jax.Array) -> jax.Array:
    h = likelihood.to_model_input(small_images, self.num_levels, self.upsample.kernel.dtype)
    for conv in self.embedding:
      h = jax.nn.relu(convolution.same_conv(h, conv.kernel[...]) + conv.bias[...])
    # The transposed convolution with stride = kernel size = f, as one product: small
    # pixel (i, j) becomes the f x f block at (i f, j f), through the kernel flipped as
    # nnx.ConvTranspose applies it. Its gradients are plain products (see convolution.py).
    batch, height, width, _ = h.shape
    kernel = self.upsample.kernel[...][::-1, ::-1]
    blocks = jnp.einsum("bijk,acko->biajco", h, kernel)
    factor = kernel.shape[0]
    return blocks.reshape(batch, height * factor, width * factor, -1) + self.upsample.bias[...]


def class_map(
  labels: jax.Array, num_classes: int, height: int, width: int, dtype=jnp.float32
) -> jax.Array:
  """Class labels (B,) -> their one-hot vectors at every pixel, (B, H, W, num_classes):
  the conditioning map of a class-conditional model."""
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
  return jnp.broadcast_to(one_hot[:, None, None], (one_hot.shape[0], height, width, num_classes))


def pixel(conditioning: jax.Array | None, i, j) -> jax.Array | None:
  """The (B, c) conditioning at pixel (i, j), for the incremental samplers."""
  return None if conditioning is None else conditioning[:, i, j]


def row(conditioning: jax.Array | None, i) -> jax.Array | None:
  """The (B, W, c) conditioning of row i."""
  return None if conditioning is None else jnp.take(conditioning, i, axis=1)
