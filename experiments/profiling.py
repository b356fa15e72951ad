"""A train step's XLA operations, timed from a `jax.profiler` trace: the pieces of
experiments/profile_step.py.

`profile(config, calls)` compiles a config's training step, times it untraced and then
traced, and returns its operations, longest first, with the milliseconds of one device's
step and what each computes (from the compiled module's text), and totals per kind.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import numpy as np

from pixelrnn.data import datasets
from pixelrnn.training import trainer as trainer_lib

# Profiler events that are not XLA operations (the runtime, Python, the profiler itself,
# the host waiting for a dispatched step).
_NOT_OPS = re.compile(
  r"^(\$|ThunkExecutor|PjitFunction|CommonPjRt|PythonRefManager|Handle "
  r"inputs|ParseArguments|AllocateOutputBuffers|end: |TfrtCpu|PjRt|Wait for LaunchOnDevice)"
)
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = \S+(?: \S+)*? ([a-z][\w\-]*)\(")


def hlo_contents(hlo_text: str) -> dict[str, str]:
  """For each instruction of a compiled module, what it computes: its opcode, or for a
  fusion the opcodes inside its fused computation ("fusion: convolution, add")."""
  computations: dict[str, list[str]] = {}
  current = None
  opcodes, calls = {}, {}
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if header:
      current = header.group(1)
      computations[current] = []
      continue
    match = _INSTRUCTION.match(line)
    if match and current is not None:
      name, opcode = match.groups()
      opcodes[name] = opcode
      computations[current].append(opcode)
      called = re.search(r"calls=%?([\w.\-]+)", line)
      if called:
        calls[name] = called.group(1)
  described = {}
  boring = {
    "parameter",
    "constant",
    "bitcast",
    "broadcast",
    "tuple",
    "get-tuple-element",
    "reshape",
    "convert",
    "copy",
  }
  for name, opcode in opcodes.items():
    inner = computations.get(calls.get(name, ""), [])
    kinds = list(dict.fromkeys(op for op in inner if op not in boring)) or inner[:1]
    described[name] = f"{opcode}: {', '.join(kinds[:4])}" if inner else opcode
  return described


def kind(op: str, computes: str) -> str:
  """A coarse class of what an operation computes, for the per-kind totals; "waiting"
  for a device's wait on the others (the runtime's rendezvous before a collective)."""
  if op.startswith(("Rendezvous", "Wait: ", "SlinkyThreadPool::Await")):
    return "waiting"
  for name in (
    "all-reduce",
    "convolution",
    "dot",
    "reduce",
    "transpose",
    "copy",
    "dynamic-slice",
    "dynamic-update-slice",
    "gather",
    "scatter",
    "pad",
  ):
    if name in computes:
      return name
  return "elementwise"


def op_rows(
  durations: dict[str, float], contents: dict[str, str], devices: int, steps: int, wall_us: float
) -> list[dict]:
  """One row per operation, longest first: milliseconds of one device's train step (the
  traced microseconds summed over `devices` devices, divided by their number and by the
  traced steps), share of the step's wall time, and what the operation computes."""
  rows = [
    {
      "op": name,
      "ms_per_step": round(us / devices / steps / 1000, 3),
      "share": round(us / devices / wall_us, 4),
      "computes": contents.get(name, "?"),
    }
    for name, us in durations.items()
  ]
  return sorted(rows, key=lambda row: -row["ms_per_step"])


def trace_durations(trace_dir: str) -> dict[str, float]:
  """Total microseconds per event name in the newest Perfetto trace under trace_dir."""
  (path,) = sorted(
    glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
  )[-1:]
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  totals = collections.Counter()
  for event in events:
    if event.get("ph") == "X" and not _NOT_OPS.match(event["name"]):
      totals[event["name"]] += event.get("dur", 0)
  return totals


def profile(config, calls: int) -> dict:
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = trainer_lib.Trainer(config, image_shape, num_levels, trainer_lib.make_mesh())
  state = trainer.initial_state()
  k = config.training.steps_per_dispatch
  batch_size = config.training.batch_size
  rng = np.random.default_rng(0)
  images = rng.integers(0, num_levels, (2 * k * batch_size,) + image_shape, dtype=np.uint8)
  labels = (
    rng.integers(0, config.model.num_classes, images.shape[0], dtype=np.int32)
    if config.model.num_classes
    else None
  )
  data = trainer.device_data(images, labels)
  indices = (
    rng.permutation(images.shape[0])[: k * batch_size].reshape(k, batch_size).astype(np.int32)
  )
  compiled = trainer.train_steps.lower(trainer.model, state, data, indices, np.int32(k)).compile()
  step = lambda state: compiled(trainer.model, state, data, indices, np.int32(k))[0]

  def timed_calls(state):
    """`calls` calls of the step, and their wall microseconds."""
    start = time.perf_counter()
    for _ in range(calls):
      state = step(state)
    jax.block_until_ready(state)
    return state, (time.perf_counter() - start) * 1e6

  state = jax.block_until_ready(step(state))  # Warm-up.
  state, untraced_us = timed_calls(state)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      state, wall_us = timed_calls(state)  # The trace's start and writing are not the step's.
    durations = trace_durations(trace_dir)
  steps = calls * k
  devices = trainer.mesh.size
  rows = op_rows(durations, hlo_contents(compiled.as_text()), devices, steps, wall_us)
  step_ms = wall_us / steps / 1000
  kinds = collections.Counter()
  for row in rows:
    kinds[kind(row["op"], row["computes"])] += row["ms_per_step"]
  return {
    "config": config.model.name,
    "dataset": config.data.name,
    "hidden_dim": config.model.hidden_dim,
    "num_layers": config.model.num_layers,
    "batch_size": batch_size,
    "devices": devices,
    "steps_per_dispatch": k,
    "traced_steps": steps,
    "step_ms": round(step_ms, 2),
    "untraced_step_ms": round(untraced_us / steps / 1000, 2),
    "ops_share": round(sum(r["share"] for r in rows), 4),
    "kinds": [
      {"kind": k, "ms_per_step": round(ms, 2), "share": round(ms / step_ms, 4)}
      for k, ms in kinds.most_common()
    ],
    "ops": rows,
  }
