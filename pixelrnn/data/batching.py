"""Deterministic batch order: training batches depend only on (seed, step), so a
resumed run sees exactly the data order of an uninterrupted one; evaluation covers
every example exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pixelrnn.data.loading import DataError


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order in which training examples are visited in `epoch`."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_batch_indices(
  num_examples: int, batch_size: int, seed: int, start_step: int = 0
) -> Iterator[np.ndarray]:
  """Yields the (batch_size,) int32 example indices of steps start_step, start_step + 1, ...

  Each epoch is a fresh permutation drawn from (seed, epoch); the last incomplete
  batch of an epoch is dropped. The batch of step s depends only on (seed, s).
  """
  steps_per_epoch = num_examples // batch_size
  if steps_per_epoch == 0:
    raise DataError(f"batch_size {batch_size} exceeds the {num_examples} training images.")
  step = start_step
  epoch, perm = None, None
  while True:
    if step // steps_per_epoch != epoch:
      epoch = step // steps_per_epoch
      perm = epoch_permutation(num_examples, seed, epoch).astype(np.int32)
    offset = (step % steps_per_epoch) * batch_size
    yield perm[offset : offset + batch_size]
    step += 1


def train_batches(
  images: np.ndarray, batch_size: int, seed: int, start_step: int = 0
) -> Iterator[np.ndarray]:
  """Yields the training batches (B, H, W, C) of steps start_step, start_step + 1, ...:
  images[indices] for `train_batch_indices`."""
  for indices in train_batch_indices(images.shape[0], batch_size, seed, start_step):
    yield images[indices]


def eval_batches(images: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (batch, valid) covering every image exactly once, in order.

  Every batch has `batch_size` rows so one compiled step serves them all: the last
  batch is padded with zeros and `valid` (bool, (batch_size,)) marks its real rows.
  """
  for start in range(0, images.shape[0], batch_size):
    batch = images[start : start + batch_size]
    valid = np.ones(batch_size, bool)
    if batch.shape[0] < batch_size:
      valid[batch.shape[0] :] = False
      pad = np.zeros((batch_size - batch.shape[0],) + batch.shape[1:], batch.dtype)
      batch = np.concatenate([batch, pad])
    yield batch, valid
