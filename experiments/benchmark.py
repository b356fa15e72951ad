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
needed. On a CPU the batch is split over one device per core, as in training; compare
with `--cpu_devices=1` (one device) in separate processes, interleaved.
"""

import datetime
import json
import os
import platform
import statistics
import subprocess

import jax
from absl import app, flags
from timing import (  # experiments/timing.py, beside this script.
  benchmark_sampling,
  benchmark_train_step,
  matmul_peak_gflops,
  throughput,
)

from pixelrnn import cli, defaults
from pixelrnn.layers import convolution
from pixelrnn.models import registry

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
  "conv (XLA's convolution of the masked kernel), taps (one product of "
  "the visible taps, convolution.taps_conv), blocks (taps, and every 1x1 layer by its "
  "channel-group blocks, convolution.blocked_matmul) and default (the backend's "
  "choice, also when the flag is not given).",
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


def load_configs() -> dict:
  """Each --config, with the --batch_size and --precision overrides, validated."""
  configs = {path: load_config(path) for path in FLAGS.config}
  for config in configs.values():
    if FLAGS.batch_size is not None:
      config.training.batch_size = FLAGS.batch_size
    if FLAGS.precision is not None:
      config.training.precision = FLAGS.precision
    defaults.validate(config)
  return configs


def runs_of(configs: dict) -> list[tuple]:
  """(config path, steps per dispatch, pallas_lstm, masked-conv form) of every timed run."""
  kernels = [parse_bool(value) for value in FLAGS.pallas_lstm or []]
  return [
    (path, int(k), pallas, form)
    for path, config in configs.items()
    for k in (FLAGS.steps_per_dispatch or [config.training.steps_per_dispatch])
    for pallas in (
      kernels
      if config.model.name in registry.names_with_key("pallas_lstm") and kernels
      else [config.model.pallas_lstm]
    )
    for form in FLAGS.masked_conv or [None]
  ]


def time_run(config, run: tuple, peak: float | None, sample: bool) -> dict:
  """One run's train step (and with `sample`, its samplers): the printed record."""
  _, k, pallas, form = run
  config = config.copy_and_resolve_references()
  config.model.pallas_lstm = pallas
  with convolution.masked_conv_form(form):
    result = benchmark_train_step(config, FLAGS.warmup_steps, FLAGS.timed_steps, k)
    if sample:
      result.update(benchmark_sampling(config, FLAGS.reference_sub_pixels))
  result["masked_conv"] = form or "default"
  result.update(throughput(config, result["train_step_s"], peak))
  return result


def main(argv):
  del argv
  configs = load_configs()
  cli.split_cpu(configs.values())  # Before JAX starts: --cpu_devices, or one per core.
  header = {
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "commit": git_commit(),
    "jax": jax.__version__,
    "devices": [str(d) for d in jax.devices()],
    "machine": platform.processor() or platform.machine(),
  }
  runs = runs_of(configs)
  step_times = {run: [] for run in runs}
  torch_times, peaks = {}, []
  first_run_of = {}
  for run in runs:
    first_run_of.setdefault(run[0], run)
  emit = lambda record: print(json.dumps({**record, **header}), flush=True)
  for repeat in range(FLAGS.repeats):
    peak = matmul_peak_gflops() if FLAGS.peak else None
    if peak is not None:
      peaks.append(peak)
      emit({"repeat": repeat, "matmul_peak_gflops": round(peak, 1)})
    for run in runs:
      path, first = run[0], first_run_of[run[0]] == run
      result = time_run(configs[path], run, peak, sample=FLAGS.sample and repeat == 0 and first)
      step_times[run].append(result["train_step_s"])
      result["step_time_ratio_to_first"] = round(
        result["train_step_s"] / step_times[runs[0]][-1], 3
      )
      emit({"config": path, "repeat": repeat, **result})
      if FLAGS.torch and first and configs[path].model.name == "pixelcnn":
        for line in torch_pixelcnn_rows(configs[path], FLAGS.warmup_steps, FLAGS.timed_steps):
          if "train_step_s" in line:
            line.update(throughput(configs[path], line["train_step_s"], peak))
            torch_times.setdefault((path, line["torch_mode"]), []).append(line["train_step_s"])
          emit({"config": path, "repeat": repeat, **line})
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
