"""Train-step speed of one or more configs, measured in the same process.

  python experiments/benchmark.py --config=configs/quickstart.py \
      --config=configs/cifar10_pixelcnn.py --batch_size=16 --steps_per_dispatch=0,1,10 --torch

Prints one JSON object per config and loop: train images/s and seconds per step (wall
time of back-to-back steps, as the training loop dispatches them), the compile time,
the device kind, precision, batch size and steps per dispatch, the process's peak RSS
so far, and the ratio of its step time to the first run's (so compare in one run).
`--steps_per_dispatch=0,1,10` times the host-fed one-step loop (0) beside the
device-resident loop at k = 1 and 10. `--pallas_lstm=false,true` times a recurrent
model's jnp scan beside its Pallas kernel (pixelrnn/layers/lstm_kernel.py; on a CPU the kernel
runs in interpret mode, which says nothing about its speed). With `--torch` (and torch installed) each
PixelCNN config is also timed in PyTorch (experiments/torch_pixelcnn.py) in the same
process. Batches are random images of the dataset's shape and levels, so no dataset is
needed.
"""

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from pixelrnn import cli, defaults
from pixelrnn.data import datasets
from pixelrnn.layers import convolution, masks
from pixelrnn.models import multiscale, registry
from pixelrnn.sampling import samplers
from pixelrnn.training import trainer as trainer_lib

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("config", None, "Config file(s) to benchmark, in order.")
flags.DEFINE_integer("batch_size", None, "Overrides config.training.batch_size.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps after compilation.")
flags.DEFINE_integer("timed_steps", 20, "Timed steps (rounded up to whole dispatches).")
flags.DEFINE_list(
  "steps_per_dispatch",
  None,
  "Loops to time, side by side: k >= 1 steps per "
  "call on device-resident data, 0 for host batches one step per call "
  "(default: each config's training.steps_per_dispatch).",
)
flags.DEFINE_string("precision", None, "Overrides config.training.precision.")
flags.DEFINE_list(
  "pallas_lstm",
  None,
  "Recurrent configs: values of config.model.pallas_lstm "
  "to time side by side (e.g. false,true); default: the config's.",
)
flags.DEFINE_bool(
  "torch",
  False,
  "Also time experiments/torch_pixelcnn.py's PyTorch PixelCNN "
  "of each PixelCNN config (eager, torch.compile, and on a GPU torch.compile "
  "with CUDA graphs), when torch is installed.",
)
flags.DEFINE_integer(
  "repeats",
  1,
  "Times each config is benchmarked, interleaved with the "
  "others (and with PyTorch and the peak); the summary line gives median "
  "step times, ratios, GFLOP/s and fractions of the peak.",
)
flags.DEFINE_list(
  "masked_conv",
  None,
  "Forms of the masked convolutions to time side by side: "
  "conv (XLA's convolution of the masked kernel) and taps (one product of "
  "the visible taps, convolution.taps_conv); default: the backend's choice.",
)
flags.DEFINE_bool(
  "peak",
  True,
  "Measure the matrix-multiply peak (a 2048x2048 float32 "
  "product) in every repeat, and report each step's GFLOP/s, counting only "
  "the multiply-adds its masks let through, as a fraction of it.",
)
flags.DEFINE_bool("sample", False, "Also time the reference and cached samplers.")
flags.DEFINE_integer("reference_sub_pixels", 32, "Sub-pixels the reference sampler is timed on.")
flags.mark_flag_as_required("config")


def load_config(path: str):
  return cli.load_config(path)


def git_commit() -> str:
  """The checkout's commit (with "+changes" if the tree differs from it), or "unknown"."""
  run = lambda *args: subprocess.run(
    ["git", *args], capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__))
  )
  try:
    commit = run("rev-parse", "--short", "HEAD")
    dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
  except OSError:
    return "unknown"
  return (
    commit.stdout.strip() + ("+changes" if dirty else "") if commit.returncode == 0 else "unknown"
  )


def parse_bool(value: str) -> bool:
  if value.lower() not in ("true", "false"):
    raise app.UsageError(f"--pallas_lstm takes true or false, got {value!r}.")
  return value.lower() == "true"


def matmul_peak_gflops(size: int = 2048, calls: int = 5) -> float:
  """GFLOP/s of a (size, size) float32 matrix product: the best of `calls`."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  product = jax.jit(lambda a: a @ a)
  jax.block_until_ready(product(a))
  best = float("inf")
  for _ in range(calls):
    start = time.perf_counter()
    jax.block_until_ready(product(a))
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9


def visible_macs_per_image(config) -> int | None:
  """Multiply-adds of one forward pass that the masks let through. A PixelCNN: its
  kernels' nonzero mask entries, at every pixel. Another single-scale model: what its
  forward pass computes with the masked convolutions in the visible-taps form
  (experiments/arithmetic.py's count: the visible taps, every LSTM product); None for a
  multi-scale model."""
  if config.model.multiscale.factor > 1:
    return None
  if config.model.name != "pixelcnn":
    import arithmetic  # experiments/arithmetic.py, beside this script.

    with convolution.masked_conv_form("taps"):
      return arithmetic.forward_counts(config, batch_size=2)["forward_macs_per_image"]
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  network = registry.create(
    config.model, image_shape=image_shape, num_levels=num_levels, rngs=nnx.Rngs(0)
  )
  pixels = image_shape[0] * image_shape[1]
  return int(
    sum(
      np.asarray(layer.conv.mask[...]).sum() * pixels
      for _, layer in nnx.iter_graph(network)
      if isinstance(layer, masks.MaskedConv)
    )
  )


def throughput(config, step_s: float, peak: float | None) -> dict:
  """A train step's GFLOP/s counting only visible multiply-adds (2 flops each, forward
  and the two backward products), and its fraction of the measured peak."""
  macs = visible_macs_per_image(config)
  if macs is None:
    return {}
  gflops = 6 * macs * config.training.batch_size / step_s / 1e9
  result = {
    "visible_gflop_per_step": round(6 * macs * config.training.batch_size / 1e9, 3),
    "visible_gflops_per_s": round(gflops, 1),
  }
  if peak:
    result["fraction_of_peak"] = round(gflops / peak, 3)
  return result


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def benchmark_train_step(
  config, warmup_steps: int, timed_steps: int, steps_per_dispatch: int
) -> dict:
  """Compiles and times the training loop's step on random images of the dataset's shape.

  steps_per_dispatch k >= 1: the loop's path (`Trainer.train_steps`), the training set on
  the device, k steps per call. k = 0: each step's batch copied from the host and one
  step per call (the loop before device-resident data). Calls are dispatched without
  waiting, as the loop does, and the time per step is the wall time of all timed steps
  divided by their number.
  """
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = trainer_lib.Trainer(config, image_shape, num_levels, trainer_lib.make_mesh())
  state = trainer.initial_state()
  rng = np.random.default_rng(0)
  batch_size = config.training.batch_size
  k = max(steps_per_dispatch, 1)
  host_images = rng.integers(0, num_levels, (4 * k * batch_size,) + image_shape, dtype=np.uint8)
  # A class-conditional model also trains on (random) labels.
  host_labels = (
    rng.integers(0, config.model.num_classes, host_images.shape[0], dtype=np.int32)
    if config.model.num_classes
    else None
  )
  count = np.int32(k)
  if steps_per_dispatch == 0:
    host_batches = np.split(host_images, 4)
    label_batches = np.split(host_labels, 4) if host_labels is not None else [None] * 4
    indices = [np.arange(batch_size, dtype=np.int32)[None]] * 2
    batch_data = lambda i: trainer.device_data(
      host_batches[i % 4],  # A copy per step.
      label_batches[i % 4],
    )
  else:
    device_images = trainer.device_data(host_images, host_labels)
    indices = [
      rng.permutation(host_images.shape[0])[: k * batch_size]
      .reshape(k, batch_size)
      .astype(np.int32)
      for _ in range(2)
    ]
    batch_data = lambda i: device_images
  start = time.perf_counter()
  compiled = trainer.train_steps.lower(
    trainer.model, state, batch_data(0), indices[0], count
  ).compile()
  compile_s = time.perf_counter() - start

  def run(state, i):
    return compiled(trainer.model, state, batch_data(i), indices[i % 2], count)[0]

  calls = lambda steps: -(-steps // k)
  for i in range(calls(warmup_steps)):
    state = run(state, i)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(calls(timed_steps)):
    state = run(state, i)
  jax.block_until_ready(state)
  # Rounded once, so that the images/s recorded beside it follow from the recorded value.
  step_s = round((time.perf_counter() - start) / (calls(timed_steps) * k), 6)
  device = jax.devices()[0]
  return {
    "model": config.model.name,
    "dataset": config.data.name,
    "batch_size": batch_size,
    "hidden_dim": config.model.hidden_dim,
    "num_layers": config.model.num_layers,
    "multiscale_factor": config.model.multiscale.factor,
    "precision": config.training.precision,
    "steps_per_dispatch": steps_per_dispatch,
    "pallas_lstm": config.model.pallas_lstm,
    "loop": "host batches" if steps_per_dispatch == 0 else "device-resident data",
    "device_kind": device.device_kind,
    "platform": device.platform,
    "device_count": jax.device_count(),
    "compile_s": round(compile_s, 3),
    "train_step_s": step_s,
    "timed_steps": calls(timed_steps) * k,
    "train_images_per_s": round(batch_size / step_s, 2),
    "peak_rss_mib": round(peak_rss_mib(), 1),
  }


def timed(fn, *args) -> tuple[float, float]:
  """(compile + first run seconds, second run seconds) of a jitted function."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return first, time.perf_counter() - start


def benchmark_multiscale_sampling(network, batch: int, image_shape) -> dict:
  """Seconds for a batch of two-stage samples with the cached samplers, and for the
  small stage alone."""
  f = network.factor
  small_shape = (image_shape[0] // f, image_shape[1] // f, image_shape[2])
  key = jax.random.key(0)
  both = jax.jit(
    lambda k: multiscale.sample(network, k, num_samples=batch, image_shape=image_shape)
  )
  small = jax.jit(
    lambda k: samplers.sample(network.small, k, num_samples=batch, image_shape=small_shape)
  )
  both_first, both_s = timed(both, key)
  _, small_s = timed(small, key)
  return {
    "sample_batch": batch,
    "multiscale_cached_s_per_image_batch": round(both_s, 3),
    "multiscale_cached_s_per_image": round(both_s / batch, 4),
    "small_stage_s_per_image_batch": round(small_s, 3),
    "multiscale_cached_compile_s": round(both_first - both_s, 3),
    "peak_rss_mib": round(peak_rss_mib(), 1),
  }


def benchmark_sampling(config, reference_sub_pixels: int) -> dict:
  """Seconds per sub-pixel and per image of both samplers, on random parameters.

  The reference sampler runs only the last `reference_sub_pixels` sub-pixels (the
  earlier ones observed): its cost per sub-pixel does not depend on which one it is.
  The cached sampler generates whole images.
  """
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = trainer_lib.Trainer(
    config, image_shape, num_levels, trainer_lib.make_mesh(jax.local_devices()[:1])
  )
  network = trainer.model.merged(trainer.initial_state().ema_params)
  batch = config.training.batch_size
  if isinstance(network, multiscale.MultiScale):
    return benchmark_multiscale_sampling(network, batch, image_shape)
  total = int(np.prod(image_shape))
  key = jax.random.key(0)
  observed = np.zeros((batch,) + image_shape, np.int32)
  # A class-conditional model draws every class in turn.
  conditioning = trainer.model.class_conditioning(
    np.arange(batch) % max(config.model.num_classes, 1), image_shape
  )
  apply_fn = network if conditioning is None else (lambda x: network(x, conditioning))
  reference = jax.jit(
    lambda k: samplers.sample_reference(
      apply_fn,
      k,
      num_samples=batch,
      image_shape=image_shape,
      images=observed,
      num_observed=total - reference_sub_pixels,
    )
  )
  ref_compile, ref_s = timed(reference, key)
  result = {
    "sample_batch": batch,
    "sub_pixels_per_image": total,
    "reference_s_per_sub_pixel": round(ref_s / reference_sub_pixels, 6),
    "reference_s_per_image_batch": round(ref_s / reference_sub_pixels * total, 2),
    "reference_compile_s": round(ref_compile - ref_s, 3),
  }
  if samplers.has_cached_sampler(network):
    cached = jax.jit(
      lambda k: samplers.sample(
        network,
        k,
        num_samples=batch,
        image_shape=image_shape,
        cached=True,
        conditioning=conditioning,
      )
    )
    cached_first, cached_s = timed(cached, key)
    result.update(
      {
        "cached_s_per_sub_pixel": round(cached_s / total, 6),
        "cached_s_per_image_batch": round(cached_s, 3),
        "cached_s_per_image": round(cached_s / batch, 4),
        "cached_compile_s": round(cached_first - cached_s, 3),
        "cached_speedup_per_sub_pixel": round(ref_s / reference_sub_pixels / (cached_s / total), 1),
      }
    )
  result["peak_rss_mib"] = round(peak_rss_mib(), 1)
  return result


def main(argv):
  del argv
  header = {
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "commit": git_commit(),
    "jax": jax.__version__,
    "devices": [str(d) for d in jax.devices()],
    "machine": platform.processor() or platform.machine(),
  }
  configs = {path: load_config(path) for path in FLAGS.config}
  for config in configs.values():
    if FLAGS.batch_size is not None:
      config.training.batch_size = FLAGS.batch_size
    if FLAGS.precision is not None:
      config.training.precision = FLAGS.precision
    defaults.validate(config)
  dispatches = FLAGS.steps_per_dispatch
  kernels = [parse_bool(value) for value in FLAGS.pallas_lstm or []]
  forms = FLAGS.masked_conv or [None]
  runs = [
    (path, int(k), pallas, form)
    for path, config in configs.items()
    for k in (dispatches or [config.training.steps_per_dispatch])
    for pallas in (
      kernels
      if config.model.name in registry.names_with_key("pallas_lstm") and kernels
      else [config.model.pallas_lstm]
    )
    for form in forms
  ]
  step_times = {run: [] for run in runs}
  torch_times, peaks = {}, []
  first_run_of = {}
  for run in runs:
    first_run_of.setdefault(run[0], run)
  for repeat in range(FLAGS.repeats):
    peak = None
    if FLAGS.peak:
      peak = matmul_peak_gflops()
      peaks.append(peak)
      print(
        json.dumps({"repeat": repeat, "matmul_peak_gflops": round(peak, 1), **header}), flush=True
      )
    for path, k, pallas, form in runs:
      config = configs[path].copy_and_resolve_references()
      config.model.pallas_lstm = pallas
      with convolution.masked_conv_form(form):
        result = benchmark_train_step(config, FLAGS.warmup_steps, FLAGS.timed_steps, k)
      result["masked_conv"] = form or ("taps" if convolution.taps_preferred() else "conv")
      result.update(throughput(config, result["train_step_s"], peak))
      step_times[(path, k, pallas, form)].append(result["train_step_s"])
      result["step_time_ratio_to_first"] = round(
        result["train_step_s"] / step_times[runs[0]][-1], 3
      )
      once = repeat == 0 and first_run_of[path] == (path, k, pallas, form)
      if FLAGS.sample and once:
        with convolution.masked_conv_form(form):
          result.update(benchmark_sampling(config, FLAGS.reference_sub_pixels))
      print(json.dumps({"config": path, "repeat": repeat, **result, **header}), flush=True)
      if (
        FLAGS.torch
        and first_run_of[path] == (path, k, pallas, form)
        and config.model.name == "pixelcnn"
      ):
        for line in torch_pixelcnn_rows(config, FLAGS.warmup_steps, FLAGS.timed_steps):
          if "train_step_s" in line:
            line.update(throughput(config, line["train_step_s"], peak))
            torch_times.setdefault((path, line["torch_mode"]), []).append(line["train_step_s"])
          print(json.dumps({"config": path, "repeat": repeat, **line, **header}), flush=True)
  if FLAGS.repeats > 1:
    print(json.dumps(summary(configs, runs, step_times, torch_times, peaks, header)), flush=True)


def summary(configs, runs, step_times, torch_times, peaks, header) -> dict:
  """Median step times over the repeats, with ratios and fractions of the median peak."""
  peak = statistics.median(peaks) if peaks else None
  medians = {run: statistics.median(times) for run, times in step_times.items()}
  first = medians[runs[0]]
  rows = {}
  for (path, k, pallas, form), m in medians.items():
    rows[f"{path} k={k} pallas_lstm={pallas} masked_conv={form or 'default'}"] = {
      "median_step_s": round(m, 6),
      "ratio_to_first": round(m / first, 3),
      **throughput(configs[path], m, peak),
    }
  for (path, mode), times in torch_times.items():
    m = statistics.median(times)
    rows[f"{path} torch {mode}"] = {
      "median_step_s": round(m, 6),
      "ratio_to_first": round(m / first, 3),
      **throughput(configs[path], m, peak),
    }
  return {
    "summary": rows,
    "repeats": len(next(iter(step_times.values()))),
    "median_matmul_peak_gflops": None if peak is None else round(peak, 1),
    **header,
  }


def torch_pixelcnn_rows(config, warmup_steps: int, timed_steps: int) -> list[dict]:
  """The PyTorch reference's train step in each of its modes, or one line saying why not."""
  try:
    import torch_pixelcnn  # experiments/torch_pixelcnn.py; imports torch.
  except ImportError as e:
    return [{"torch": f"not run: {e}"}]
  return [
    torch_pixelcnn.benchmark(config, mode, warmup_steps, timed_steps)
    for mode in torch_pixelcnn.available_modes()
  ]


if __name__ == "__main__":
  cli.run(main)
