"""The `Trainer`: model, optimizer, mesh and compiled steps of one configuration.

Parameters are replicated and the batch is sharded across all devices of a 1-D `data`
mesh: every process's devices when several processes train together (see
`distributed.py`). The steps themselves are pure functions (`steps.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pixelrnn import defaults, likelihood
from pixelrnn.data import batching
from pixelrnn.data import loading as data_lib
from pixelrnn.models import multiscale, registry
from pixelrnn.training import distributed, optimizers, precision, steps


def make_mesh(devices=None) -> Mesh:
  """A 1-D `data` mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.array(devices), ("data",))


def check_divisible(name: str, batch_size: int, mesh: Mesh) -> None:
  if batch_size % mesh.size:
    processes = len({d.process_index for d in mesh.devices.flat})
    over = f" over {processes} processes" if processes > 1 else ""
    raise defaults.ConfigError(
      f"{name}={batch_size} must be divisible by the number of devices ({mesh.size}{over}) "
      f"to shard the batch; it is the global batch, split evenly over all devices."
    )


@dataclasses.dataclass
class Trainer:
  """Holds the model, optimizer, mesh and compiled steps for one configuration, which
  the entry points (`train.train_and_evaluate`, `train.restore_latest`) have validated."""

  config: ml_collections.ConfigDict
  image_shape: tuple[int, int, int]
  num_levels: int
  mesh: Mesh

  def __post_init__(self):
    training = self.config.training
    check_divisible("training.batch_size", training.batch_size, self.mesh)
    check_divisible("training.eval_batch_size", training.eval_batch_size, self.mesh)
    self.model, params = registry.build(
      self.config.model,
      image_shape=self.image_shape,
      num_levels=self.num_levels,
      seed=self.config.seed,
    )
    self.tx = optimizers.make(self.config)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    self.model = self.replicate(self.model)
    self._initial_params = params
    policy = precision.policy(training.precision)
    step_fn = precision.traced_with(
      policy.matmul_precision,
      functools.partial(
        steps.train_step,
        tx=self.tx,
        ema_decay=training.ema_decay,
        weights=steps.loss_weights(self.config, self.image_shape),
        compute_dtype=policy.compute_dtype,
        skip_nonfinite=training.skip_nonfinite_updates > 0,
        dropout_seed=self.config.seed,
      ),
    )
    # Up to `steps_per_dispatch` steps on batches gathered from `device_data`.
    self.train_steps = jax.jit(
      functools.partial(steps.train_steps, step_fn=step_fn, batch_sharding=self.batch_sharding),
      in_shardings=(
        self.replicated,
        self.replicated,
        self.replicated,
        self.replicated,
        self.replicated,
      ),
      out_shardings=(self.replicated, self.replicated),
      donate_argnums=(1,),
    )
    # Whatever training.precision says: reported likelihoods are full float32.
    self.eval_step = jax.jit(
      precision.full_precision(steps.eval_step),
      in_shardings=(self.replicated, self.replicated, self.batch_sharding, self.batch_sharding),
      out_shardings=self.replicated,
    )

  def initial_state(self) -> steps.TrainState:
    """The state before step 1, replicated; fresh buffers on every call (the train step
    donates the state's buffers)."""
    return self.replicate(self._unplaced_initial_state())

  def _unplaced_initial_state(self) -> steps.TrainState:
    params = self._initial_params
    return steps.TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      ema_params=params,
      opt_state=self.tx.init(params),
    )

  def replicate(self, tree):
    """`tree` with every array leaf copied to all devices of the mesh."""
    return jax.tree.map(lambda x: distributed.global_array(np.asarray(x), self.replicated), tree)

  def abstract_state(self) -> steps.TrainState:
    return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated),
      jax.eval_shape(self._unplaced_initial_state),
    )

  def shard_batch(self, batch):
    """A batch (arrays (B, ...), or a dict of them) split over the devices; each process
    places only its part."""
    return jax.tree.map(lambda rows: distributed.global_array(rows, self.batch_sharding), batch)

  def labels(self, dataset: data_lib.Dataset) -> np.ndarray | None:
    """The dataset's labels (N,) for a class-conditional model, checked; else None."""
    num_classes = self.config.model.num_classes
    if not num_classes:
      return None
    if dataset.labels is None:
      raise data_lib.DataError(f"model.num_classes={num_classes}, but these images have no labels.")
    data_lib.check_labels(dataset.labels, dataset.images.shape[0], num_classes)
    return dataset.labels

  def _batch(self, images, labels) -> dict:
    batch = {"images": images}
    if self.config.model.num_classes:
      if labels is None:
        raise data_lib.DataError(
          f"model.num_classes={self.config.model.num_classes}: the images need their labels."
        )
      batch["labels"] = np.asarray(labels, np.int32)
    return batch

  def train_step(
    self,
    model: registry.FunctionalModel,
    state: steps.TrainState,
    images: jax.Array,
    labels: jax.Array | None = None,
  ) -> tuple[steps.TrainState, dict[str, jax.Array]]:
    """One step on a batch (B, H, W, C) (and its labels (B,) for a class-conditional
    model), the training loop's computation bit for bit: `train_steps` with k = 1.
    Returns the new state and the step's scalar metrics."""
    indices = np.arange(images.shape[0], dtype=np.int32)[None]
    state, stacked = self.train_steps(
      model, state, self.device_data(images, labels), indices, np.int32(1)
    )
    return state, jax.tree.map(lambda rows: rows[0], stacked)

  def device_data(self, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """The training set, "images" (N, H, W, C) and for a class-conditional model
    "labels" (N,), copied once to every device for `train_steps`."""
    return jax.tree.map(
      lambda rows: distributed.global_array(rows, self.replicated), self._batch(images, labels)
    )

  def evaluate(
    self, params: nnx.State, images: np.ndarray, labels: np.ndarray | None = None
  ) -> dict[str, float]:
    """NLL over every image of `images` (N, H, W, C): nats per image and bits/dim.

    For a multi-scale model also each part: "small_nll_nats" (the subsample) and
    "large_nll_nats" (the other sub-pixels), which sum to "nll_nats", and their
    bits per sub-pixel they score. A class-conditional model needs the images' labels
    (N,), and also reports each class's mean NLL, "class_<k>_nll_nats".
    """
    data_lib.check_images(images, self.image_shape, self.num_levels)
    batch_size = self.config.training.eval_batch_size
    label_batches = (
      batching.eval_batches(labels, batch_size)
      if labels is not None
      else itertools.repeat((None, None))
    )
    totals = {}
    for (batch, valid), (batch_labels, _) in zip(
      batching.eval_batches(images, batch_size), label_batches
    ):
      sums = self.eval_step(
        self.model,
        params,
        self.shard_batch(self._batch(batch, batch_labels)),
        self.shard_batch(valid),
      )
      for k, v in jax.device_get(sums).items():
        totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    class_nll, class_count = totals.pop("class_nll", None), totals.pop("class_count", None)
    dims = multiscale.part_dims(self.image_shape, self.config.model.multiscale.factor)
    metrics = {}
    for k in sorted(totals, key=lambda k: (k != "nll", k)):  # The whole image's NLL first.
      nats = float(totals[k]) / images.shape[0]
      prefix = "" if k == "nll" else k.removesuffix("_nll") + "_"
      metrics[f"{k}_nats"] = nats
      metrics[f"{prefix}bits_per_dim"] = likelihood.bits_per_dim(nats, dims[k])
    if class_nll is not None:
      for k in range(class_nll.shape[0]):
        if class_count[k]:
          metrics[f"class_{k}_nll_nats"] = float(class_nll[k] / class_count[k])
    return metrics


def load_data(config) -> tuple[data_lib.Dataset, data_lib.Dataset]:
  train = data_lib.load_dataset(config.data, config.data.train_split)
  test = data_lib.load_dataset(config.data, config.data.eval_split)
  return train, test
