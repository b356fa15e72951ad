"""Training on several processes (hosts) with JAX's multi-controller runtime.

Every process runs the same program on its own devices, and `jax.distributed` joins
them into one set of global devices: the train step's mesh spans all of them (see
`train.make_mesh`), so its gradient all-reduce crosses hosts. Each process builds the
same global batch indices from (seed, step) and places only its own devices' slice of
each batch (`global_array`); checkpoints are written by orbax with every process taking
part; metrics, logs and pictures come from process 0 (`is_primary`).

A single process that is not asked to join a cluster behaves as if this module did not
exist.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from pixelrnn import errors


class DistributedError(errors.UserError, RuntimeError):
  """The processes could not start together: no coordinator, or different configs."""


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  timeout_s: int = 300,
) -> None:
  """Joins this process to the cluster, before any other JAX call.

  Arguments left None come from the environment: JAX_COORDINATOR_ADDRESS ("host:port",
  read by JAX), JAX_NUM_PROCESSES and JAX_PROCESS_ID, and otherwise from JAX's detection
  of the cluster it runs in (SLURM, Open MPI, Kubernetes, Cloud TPU). Raises
  DistributedError for settings JAX refuses. When the processes have not all met within
  `timeout_s` seconds, JAX would abort the process with a C++ stack trace; instead this
  process prints "Error: ..." naming the coordinator's address and exits with status 2.
  """
  env = lambda name: int(os.environ[name]) if os.environ.get(name) else None
  num_processes = env("JAX_NUM_PROCESSES") if num_processes is None else num_processes
  process_id = env("JAX_PROCESS_ID") if process_id is None else process_id
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  where = (
    f"coordinator address {address or '(none given, and no cluster detected)'}, "
    f"process {process_id} of {num_processes}"
  )
  joined = threading.Event()

  def end_on_timeout():
    if not joined.wait(timeout_s):
      sys.stderr.write(
        f"Error: Could not join the cluster: {where}, within {timeout_s} s. Check that every "
        f"process was started, and that this host can reach the coordinator (process 0) "
        f"at that address.\n"
      )
      sys.stderr.flush()
      os._exit(2)

  threading.Thread(target=end_on_timeout, daemon=True).start()
  try:
    # JAX's own deadline comes later, so that the message above comes first.
    jax.distributed.initialize(
      address, num_processes, process_id, initialization_timeout=timeout_s + 60
    )
  except (ValueError, TypeError, RuntimeError) as e:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DistributedError(f"Could not join the cluster: {where} ({detail}).") from e
  finally:
    joined.set()


def is_primary() -> bool:
  """Whether this process writes metrics, logs and pictures (process 0)."""
  return jax.process_index() == 0


def check_same_config(config_json: str) -> None:
  """Refuses to start unless every process was given the same config.

  Each process's SHA-256 of `config_json` is gathered by every process, so all of them
  raise DistributedError together, naming the processes that differ from process 0.
  """
  if jax.process_count() == 1:
    return
  digest = np.frombuffer(hashlib.sha256(config_json.encode()).digest(), np.uint8)
  digests = np.asarray(multihost_utils.process_allgather(digest))  # (P, 32)
  differing = [p for p in range(len(digests)) if not np.array_equal(digests[p], digests[0])]
  if differing:
    raise DistributedError(
      f"The processes were given different configs: process(es) {differing} differ from "
      f"process 0 (config SHA-256 {bytes(digests[differing[0]]).hex()[:12]} vs "
      f"{bytes(digests[0]).hex()[:12]}). Start every process with the same config file "
      f"and overrides."
    )


def global_array(host_array: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
  """A global array with `sharding`, from `host_array`, which every process holds whole.

  Each process copies only the slices its own devices hold: with the batch sharded over
  all processes' devices, a process places only its part of each global batch.
  """
  return jax.make_array_from_callback(host_array.shape, sharding, lambda index: host_array[index])


def primary_only(fn: Callable) -> Callable:
  """`fn` on process 0; a no-op returning None on the others."""
  return lambda *args, **kwargs: fn(*args, **kwargs) if is_primary() else None


def on_primary(fn: Callable, what: str):
  """Runs `fn()` on process 0 only, and tells every process whether it succeeded.

  Returns its result on process 0 (None elsewhere). If it raised, process 0 re-raises
  and the others raise DistributedError saying that process 0 could not `what`, rather
  than waiting for it at their next collective.
  """
  result, error = None, None
  if is_primary():
    try:
      result = fn()
    except Exception as e:  # Re-raised below, after the others are told.
      error = e
  if jax.process_count() > 1:
    failed = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
    if failed and not is_primary():
      raise DistributedError(f"Process 0 could not {what}; its output says why.")
  if error is not None:
    raise error
  return result


def any_process(reason: str | None) -> str | None:
  """`reason` if any process has one (each process's own first; else process 0's lowest
  numbered other's), so that every process stops at the same step."""
  if jax.process_count() == 1:
    return reason
  code = np.frombuffer((reason or "").encode()[:64].ljust(64, b"\0"), np.uint8)
  codes = np.asarray(multihost_utils.process_allgather(code))
  reasons = [bytes(c).rstrip(b"\0").decode() for c in codes]
  return reason or next((r for r in reasons if r), None)
