"""Builds a model from `config.model`, and a functional view of it for jitted code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from pixelrnn import distributions
from pixelrnn.layers import conditioning
from pixelrnn.models import multiscale
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.pixelcnn_pp import PixelCNNPP
from pixelrnn.models.row_lstm import RowLSTM
from pixelrnn.training import precision

# The single-scale model families, by `config.model.name`. Each class takes the keyword
# arguments of `create_model` plus the `config.model` keys it declares, with their
# defaults, in `config_defaults`.
MODEL_CLASSES = {
  "pixelcnn": PixelCNN,
  "row_lstm": RowLSTM,
  "diagonal_bilstm": DiagonalBiLSTM,
  "gated_pixelcnn": GatedPixelCNN,
  "pixelcnn_pp": PixelCNNPP,
}


def names_with_key(key: str) -> list[str]:
  """The model names whose classes read `config.model.<key>`."""
  return [name for name, cls in MODEL_CLASSES.items() if key in cls.config_defaults]


def likelihoods_of(name: str) -> tuple[str, ...]:
  """The `config.model.likelihood` values model `name` supports."""
  return getattr(MODEL_CLASSES[name], "likelihoods", distributions.KINDS)


def check_family(model_config, image_shape: tuple[int, int, int]) -> None:
  """Raises ValueError, in one line, if the family cannot take `model_config` for
  images of `image_shape`: an unsupported likelihood, or its own `check_config`."""
  supported = likelihoods_of(model_config.name)
  if model_config.likelihood not in supported:
    raise ValueError(
      f"model.likelihood={model_config.likelihood!r}: {model_config.name} supports {supported}."
    )
  check = getattr(MODEL_CLASSES[model_config.name], "check_config", None)
  if check is not None:
    check(model_config, image_shape)


def family_key_defaults() -> dict:
  """Every `config.model` key a family declares, with its default: the schema's
  family-owned keys. Two families may share a key only with the same default."""
  merged = {}
  for name, cls in MODEL_CLASSES.items():
    for key, default in cls.config_defaults.items():
      if key in merged and merged[key] != default:
        raise ValueError(
          f"Model {name!r} declares config.model.{key}={default!r}, another family {merged[key]!r}."
        )
      merged[key] = default
  return merged


def create_model(
  model_config, *, num_channels: int, num_levels: int, rngs: nnx.Rngs, conditioning_dim: int = 0
) -> nnx.Module:
  """Instantiates the single-scale model named by `model_config.name`."""
  if model_config.name not in MODEL_CLASSES:
    raise ValueError(f"Unknown model {model_config.name!r}; valid models: {sorted(MODEL_CLASSES)}.")
  cls = MODEL_CLASSES[model_config.name]
  return cls(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=model_config.hidden_dim,
    num_layers=model_config.num_layers,
    output_dim=model_config.output_dim,
    conditioning_dim=conditioning_dim,
    distribution=distributions.from_config(model_config, num_levels),
    rngs=rngs,
    **{key: model_config[key] for key in cls.config_defaults},
  )


def create(
  model_config, *, image_shape: tuple[int, int, int], num_levels: int, rngs: nnx.Rngs
) -> nnx.Module:
  """The model of `model_config` for images of `image_shape` (H, W, C).

  With `model_config.num_classes` > 0, a class-conditional model (its conditioning map
  is `conditioning.class_map`). With `model_config.multiscale.factor` f >= 2, a
  `multiscale.MultiScale` whose small
  model is `model_config.multiscale.small` and whose large, conditional model is
  described by the rest of `model_config`; with f = 1 the single-scale model.
  """
  num_channels = image_shape[-1]
  ms = model_config.multiscale
  if ms.factor == 1:
    return create_model(
      model_config,
      num_channels=num_channels,
      num_levels=num_levels,
      rngs=rngs,
      conditioning_dim=model_config.num_classes,
    )
  multiscale.check_factor(image_shape, ms.factor)
  small = create_model(ms.small, num_channels=num_channels, num_levels=num_levels, rngs=rngs)
  large = create_model(
    model_config,
    num_channels=num_channels,
    num_levels=num_levels,
    rngs=rngs,
    conditioning_dim=ms.conditioning_dim,
  )
  return multiscale.MultiScale(
    small,
    large,
    num_channels=num_channels,
    num_levels=num_levels,
    factor=ms.factor,
    conditioning_dim=ms.conditioning_dim,
    embedding_layers=ms.embedding_layers,
    rngs=rngs,
  )


@struct.dataclass
class FunctionalModel:
  """A model split into its static graph and its constants (the masks).

  A pytree whose graph is static, so it can be passed to `jax.jit` as an argument
  (the masks then stay inputs rather than being baked into the program).
  `apply(params, images)` is pure.
  """

  graphdef: nnx.GraphDef = struct.field(pytree_node=False)
  constants: nnx.State
  num_classes: int = struct.field(pytree_node=False, default=0)  # > 0: class-conditional.

  @classmethod
  def split(cls, model: nnx.Module, num_classes: int = 0) -> tuple["FunctionalModel", nnx.State]:
    """Returns the functional model and the trainable `nnx.Param` state."""
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    return cls(graphdef, constants, num_classes), params

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

  def class_conditioning(
    self, labels: jax.Array | None, image_shape, dtype=jnp.float32
  ) -> jax.Array | None:
    """The conditioning map (B, H, W, num_classes) of labels (B,) for images of
    `image_shape` (H, W, ...); None for a model that is not class-conditional."""
    if not self.num_classes:
      return None
    if labels is None:
      raise ValueError(
        f"This model is class-conditional ({self.num_classes} classes): "
        f"it needs the images' labels."
      )
    return conditioning.class_map(labels, self.num_classes, image_shape[0], image_shape[1], dtype)

  def nll_terms(
    self,
    params: nnx.State,
    images: jax.Array,
    labels: jax.Array | None = None,
    dropout_key: jax.Array | None = None,
  ) -> dict[str, jax.Array]:
    """Per-image NLL terms in nats, each (B,): "nll" (the whole image), plus
    "small_nll" and "large_nll" for a multi-scale model. `labels` (B,): the classes of a
    class-conditional model's images. `dropout_key`: a training step's key for a model
    with dropout (`uses_dropout`); without it the network runs deterministically."""
    model = self.merged(params)
    if not self.num_classes and not uses_dropout(model):
      return multiscale.nll_terms(model, images)
    dtype = jax.tree.leaves(params)[0].dtype
    kwargs = {"dropout_key": dropout_key} if uses_dropout(model) else {}
    outputs = model(images, self.class_conditioning(labels, images.shape[1:], dtype), **kwargs)
    return {"nll": distributions.of(model).nll_per_image(outputs, images)}


def uses_dropout(model: nnx.Module) -> bool:
  """Whether a training step must pass the model a dropout key."""
  return getattr(model, "dropout_rate", 0.0) > 0


def build(
  model_config, *, image_shape: tuple[int, int, int], num_levels: int, seed: int
) -> tuple[FunctionalModel, nnx.State]:
  """Creates the model for images of `image_shape` (H, W, C) and splits it."""
  return FunctionalModel.split(
    create(model_config, image_shape=image_shape, num_levels=num_levels, rngs=nnx.Rngs(seed)),
    num_classes=model_config.num_classes,
  )
