"""A CPU host's cores as devices: the batch split over one device per core.

On a CPU, JAX has one device by default, and XLA spreads each of its operations over the
cores. Most operations of these models at batch 16 are too small for that to pay: the
cores wait for each other between thousands of small operations. Presented as one
device per core instead, the data-parallel mesh (`trainer.make_mesh`) gives every core
its own part of each batch, as for several GPUs, and each device's operations run
alongside the others'; only the gradients are summed across them. The computation is the
same up to float rounding (the batch mean is summed in parts).

The device count must be set before JAX starts its CPU backend, so the entry points call
`configure` first. It changes nothing on an accelerator's devices, and it leaves alone a
count the user set (`XLA_FLAGS=--xla_force_host_platform_device_count`, or JAX's
`jax_num_cpu_devices`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import jax

from pixelrnn import errors

FORCED_COUNT_FLAG = "xla_force_host_platform_device_count"


class CpuDevicesError(errors.UserError, ValueError):
  """A requested CPU device count that cannot be used."""


def usable_cores() -> int:
  """The cores this process may run on (its CPU affinity), at least 1."""
  try:
    return max(len(os.sched_getaffinity(0)), 1)
  except AttributeError:  # No affinity outside Linux.
    return os.cpu_count() or 1


def device_count(batch_sizes: Iterable[int], cores: int) -> int:
  """The most devices, at most `cores`, over which every batch size splits evenly."""
  common = math.gcd(*batch_sizes)
  return max(d for d in range(1, max(cores, 1) + 1) if common % d == 0)


def user_set_count() -> bool:
  """Whether the CPU device count was already chosen, by XLA_FLAGS or JAX's config."""
  return FORCED_COUNT_FLAG in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices > 0


def configure(batch_sizes: Iterable[int], requested: int | None = None) -> int | None:
  """Sets the CPU backend's device count, before JAX starts it; returns the count, or
  None where it was left as the user set it.

  requested: a count (1 keeps JAX's single device); None: one device per usable core,
  as many as divide every batch size.
  """
  batch_sizes = list(batch_sizes)
  if requested is not None:
    if requested < 1 or any(size % requested for size in batch_sizes):
      raise CpuDevicesError(
        f"--cpu_devices={requested}: expected a count >= 1 that divides every batch size "
        f"{sorted(set(batch_sizes))}."
      )
    count = requested
  elif user_set_count():
    return None
  else:
    count = device_count(batch_sizes, usable_cores())
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError as e:  # JAX's backends already started: a caller's error.
    raise RuntimeError(f"cpu_devices.configure must run before JAX starts: {e}") from e
  return count
