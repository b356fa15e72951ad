"""Sample grids and completion figures from the EMA parameters of a workdir's latest checkpoint.

Both sample with the cached samplers where the model has one, at full float32
(`precision.py`), so the same seed gives the same pictures on any hardware.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from pixelrnn import errors
from pixelrnn.data import datasets
from pixelrnn.data import loading as data_lib
from pixelrnn.models import multiscale
from pixelrnn.sampling import completion, images, samplers
from pixelrnn.training import distributed, train


class FigureRequestError(errors.UserError, ValueError):
  """A figure asked for more, or other, images than the data or the model allow."""


def spread_indices(num_available: int, count: int) -> np.ndarray:
  """`count` distinct indices spread evenly over [0, num_available), first and last included.

  Test splits can be sorted (binarized MNIST's is by digit), so the first images of a
  split would all look alike.
  """
  if not 1 <= count <= num_available:
    raise FigureRequestError(
      f"Cannot pick {count} test images from {num_available}: need 1 <= count <= {num_available}."
    )
  return np.linspace(0, num_available - 1, count).round().astype(int)


# Every process of a multi-process run draws the figures (they restore the checkpoint
# together); process 0 writes them.
save_grid = distributed.primary_only(images.save_grid)


def sample_labels(num_classes: int, num_samples: int, label: int | None) -> np.ndarray | None:
  """The classes to draw for a class-conditional model: `num_samples` of `label`, or
  without a label `num_samples` of each class in turn (one grid row per class); None
  for a model that is not class-conditional."""
  if not num_classes:
    if label is not None:
      raise FigureRequestError(
        f"label={label}: this model is not class-conditional (model.num_classes=0)."
      )
    return None
  if label is None:
    return np.repeat(np.arange(num_classes, dtype=np.int32), num_samples)
  if not 0 <= label < num_classes:
    raise FigureRequestError(f"label={label}: expected a class in [0, {num_classes}).")
  return np.full(num_samples, label, np.int32)


def write_samples(
  config,
  workdir: str,
  *,
  num_samples: int,
  temperature: float = 1.0,
  seed: int = 0,
  path: str | None = None,
  label: int | None = None,
  source: tuple | None = None,
) -> dict:
  """Samples into `path` (default workdir/samples_<step>.png), 8 to a row.

  The parameters are the EMA parameters of workdir's latest checkpoint, or `source`:
  (model, params, step, image_shape, num_levels), e.g. `pretrained.load(...).source()`.

  A multi-scale model also writes its small-scale samples to <path>_small.png. A
  class-conditional model draws `num_samples` of class `label`, or without a label
  one row of `num_samples` per class.
  """
  if num_samples < 1:
    raise FigureRequestError(f"num_samples={num_samples}: expected at least 1.")
  labels = sample_labels(config.model.num_classes, num_samples, label)
  model, params, step, image_shape, num_levels = source or train.load_ema_params(config, workdir)
  network = model.merged(params)
  total = num_samples if labels is None else labels.shape[0]
  kwargs = dict(num_samples=total, image_shape=image_shape, temperature=temperature)
  is_multiscale = isinstance(network, multiscale.MultiScale)
  if is_multiscale:
    draw = jax.jit(lambda key: multiscale.sample(network, key, **kwargs))
    cached = all(samplers.has_cached_sampler(m) for m in (network.small, network.large))
  else:
    conditioning = model.class_conditioning(labels, image_shape)
    draw = jax.jit(
      lambda key: (samplers.sample(network, key, conditioning=conditioning, **kwargs),)
    )
    cached = samplers.has_cached_sampler(network)
  start = time.perf_counter()
  samples = jax.device_get(draw(jax.random.key(seed)))
  seconds = time.perf_counter() - start
  columns = num_samples if labels is not None and label is None else min(8, num_samples)
  path = path or os.path.join(workdir, f"samples_{step}.png")
  save_grid(path, samples[-1], num_levels, columns=columns)
  result = {"png": path}
  if is_multiscale:
    result["small_png"] = path.removesuffix(".png") + "_small.png"
    save_grid(result["small_png"], samples[0], num_levels, columns=columns)
  if labels is not None:
    result["rows"] = "one per class" if label is None else f"class {label}"
  return {
    **result,
    "step": step,
    "num_samples": total,
    "cached_sampler": cached,
    "seconds": round(seconds, 2),
  }


def write_completions(
  config,
  workdir: str,
  *,
  num_images: int,
  num_completions: int,
  observed_rows: int | None = None,
  temperature: float = 1.0,
  seed: int = 0,
  path: str | None = None,
  source: tuple | None = None,
) -> dict:
  """The paper's completion figure into `path` (default workdir/completions_<step>.png),
  from the parameters `write_samples` uses.

  `num_images` test images spread evenly over the eval split (`spread_indices`), each
  shown occluded below its first `observed_rows` rows (default H // 2), then
  `num_completions` completions, then the original.
  """
  height = datasets.IMAGE_SPECS[config.data.name][0][0]
  observed_rows = height // 2 if observed_rows is None else observed_rows
  if not 0 <= observed_rows <= height:
    raise FigureRequestError(
      f"observed_rows={observed_rows}: expected 0 to {height}, the {config.data.name} image height."
    )
  if num_completions < 1:
    raise FigureRequestError(f"num_completions={num_completions}: expected at least 1.")
  model, params, step, image_shape, num_levels = source or train.load_ema_params(config, workdir)
  network = model.merged(params)
  test_data = data_lib.load_dataset(config.data, config.data.eval_split)
  indices = spread_indices(test_data.images.shape[0], num_images)
  originals = test_data.images[indices]
  kwargs = dict(
    observed_rows=observed_rows, num_completions=num_completions, temperature=temperature
  )
  if isinstance(network, multiscale.MultiScale):
    complete = multiscale.complete
  else:  # A class-conditional model completes each image given its own label.
    complete = completion.complete
    if config.model.num_classes:
      kwargs["conditioning"] = model.class_conditioning(test_data.labels[indices], image_shape)
  start = time.perf_counter()
  completions = jax.device_get(complete(network, jax.random.key(seed), originals, **kwargs))
  seconds = time.perf_counter() - start
  figure = images.completion_figure(originals, completions, num_levels, observed_rows)
  path = path or os.path.join(workdir, f"completions_{step}.png")
  save_grid(path, figure, 256, columns=num_completions + 2)
  return {
    "png": path,
    "step": step,
    "num_images": num_images,
    "test_indices": [int(i) for i in indices],
    "num_completions": num_completions,
    "observed_rows": observed_rows,
    "seconds": round(seconds, 2),
  }
