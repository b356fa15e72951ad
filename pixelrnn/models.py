"""Builds a model from `config.model`, and a functional view of it for jitted code."""

from __future__ import annotations

import jax
from flax import nnx, struct

from pixelrnn import multiscale, precision
from pixelrnn.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn.gated_pixelcnn import GatedPixelCNN
from pixelrnn.pixelcnn import PixelCNN
from pixelrnn.row_lstm import RowLSTM

# The single-scale model families, by `config.model.name`. Each class takes the
# keyword arguments of `create_model` plus the `config.model` keys in its `config_keys`.
MODEL_CLASSES = {"pixelcnn": PixelCNN, "row_lstm": RowLSTM, "diagonal_bilstm": DiagonalBiLSTM,
                 "gated_pixelcnn": GatedPixelCNN}


def names_with_key(key: str) -> list[str]:
  """The model names whose classes read `config.model.<key>`."""
  return [name for name, cls in MODEL_CLASSES.items() if key in cls.config_keys]


def create_model(model_config, *, num_channels: int, num_levels: int, rngs: nnx.Rngs,
                 conditioning_dim: int = 0) -> nnx.Module:
  """Instantiates the single-scale model named by `model_config.name`."""
  if model_config.name not in MODEL_CLASSES:
    raise ValueError(f"Unknown model {model_config.name!r}; valid models: {sorted(MODEL_CLASSES)}.")
  cls = MODEL_CLASSES[model_config.name]
  return cls(num_channels=num_channels, num_levels=num_levels,
             hidden_dim=model_config.hidden_dim, num_layers=model_config.num_layers,
             output_dim=model_config.output_dim, conditioning_dim=conditioning_dim, rngs=rngs,
             **{key: model_config[key] for key in cls.config_keys})


def create(model_config, *, image_shape: tuple[int, int, int], num_levels: int,
           rngs: nnx.Rngs) -> nnx.Module:
  """The model of `model_config` for images of `image_shape` (H, W, C).

  With `model_config.multiscale.factor` f >= 2, a `multiscale.MultiScale` whose small
  model is `model_config.multiscale.small` and whose large, conditional model is
  described by the rest of `model_config`; with f = 1 the single-scale model.
  """
  num_channels = image_shape[-1]
  ms = model_config.multiscale
  if ms.factor == 1:
    return create_model(model_config, num_channels=num_channels, num_levels=num_levels,
                        rngs=rngs)
  multiscale.check_factor(image_shape, ms.factor)
  small = create_model(ms.small, num_channels=num_channels, num_levels=num_levels, rngs=rngs)
  large = create_model(model_config, num_channels=num_channels, num_levels=num_levels,
                       rngs=rngs, conditioning_dim=ms.conditioning_dim)
  return multiscale.MultiScale(small, large, num_channels=num_channels, num_levels=num_levels,
                               factor=ms.factor, conditioning_dim=ms.conditioning_dim,
                               embedding_layers=ms.embedding_layers, rngs=rngs)


@struct.dataclass
class FunctionalModel:
  """A model split into its static graph and its constants (the masks).

  A pytree whose graph is static, so it can be passed to `jax.jit` as an argument
  (the masks then stay inputs rather than being baked into the program).
  `apply(params, images)` is pure.
  """
  graphdef: nnx.GraphDef = struct.field(pytree_node=False)
  constants: nnx.State

  @classmethod
  def split(cls, model: nnx.Module) -> tuple["FunctionalModel", nnx.State]:
    """Returns the functional model and the trainable `nnx.Param` state."""
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    return cls(graphdef, constants), params

  def cast(self, dtype) -> "FunctionalModel":
    """The same model with its floating constants (the masks, exact in any float
    format) cast to `dtype`: with parameters cast alike it computes in `dtype`."""
    return self.replace(constants=precision.cast_floating(self.constants, dtype))

  def merged(self, params: nnx.State) -> nnx.Module:
    """The model as an nnx.Module with `params` (e.g. the EMA parameters)."""
    return nnx.merge(self.graphdef, params, self.constants)

  def apply(self, params: nnx.State, images: jax.Array):
    """(B, H, W, C) levels -> (B, H, W, C, K) logits (a pair for a multi-scale model)."""
    return self.merged(params)(images)

  def nll_terms(self, params: nnx.State, images: jax.Array) -> dict[str, jax.Array]:
    """Per-image NLL terms in nats, each (B,): "nll" (the whole image), plus
    "small_nll" and "large_nll" for a multi-scale model."""
    return multiscale.nll_terms(self.merged(params), images)


def build(model_config, *, image_shape: tuple[int, int, int], num_levels: int,
          seed: int) -> tuple[FunctionalModel, nnx.State]:
  """Creates the model for images of `image_shape` (H, W, C) and splits it."""
  return FunctionalModel.split(create(model_config, image_shape=image_shape,
                                      num_levels=num_levels, rngs=nnx.Rngs(seed)))
