"""experiments/benchmark.py: the loops side by side, with what a reader needs to compare them."""

import json
import subprocess
import sys

from conftest import REPO_ROOT, experiment


def test_the_benchmark_times_both_loops_and_records_device_precision_and_dispatch():
  done = subprocess.run(
    [
      sys.executable,
      "experiments/benchmark.py",
      "--config=configs/quickstart.py",
      "--batch_size=4",
      "--steps_per_dispatch=0,3",
      "--warmup_steps=1",
      "--timed_steps=3",
      "--precision=float32",
      "--torch",
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  lines = [json.loads(line) for line in done.stdout.splitlines()]
  host, device = (line for line in lines if "steps_per_dispatch" in line)
  assert (host["loop"], host["steps_per_dispatch"]) == ("host batches", 0)
  assert (device["loop"], device["steps_per_dispatch"], device["timed_steps"]) == (
    "device-resident data",
    3,
    3,
  )
  head = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
  ).stdout.strip()
  for line in (host, device):
    assert line["commit"].startswith(head or "unknown")
    assert line["precision"] == "float32" and line["batch_size"] == 4
    assert line["platform"] == "cpu" and line["device_kind"]
    assert line["train_step_s"] > 0 and line["train_images_per_s"] == round(
      4 / line["train_step_s"], 2
    )
  # The PyTorch peer is timed where torch is installed, and says why not elsewhere.
  torch_lines = [line for line in lines if "torch" in line or "torch_mode" in line]
  assert torch_lines and all(
    "torch_mode" in line or line["torch"].startswith("not run") for line in torch_lines
  )


def load_benchmark():
  return experiment("benchmark")


def timing():
  """experiments/timing.py, the measurements benchmark.py imports."""
  load_benchmark()
  return sys.modules["timing"]


def test_visible_multiply_adds_count_only_what_the_masks_let_through():
  benchmark = load_benchmark()
  config = benchmark.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  h, layers, out = config.model.hidden_dim, config.model.num_layers, config.model.output_dim
  # Per pixel, one channel: the 7x7 mask-A input layer sees 24 taps, a block's 3x3 mask-B
  # convolution 5, its two 1x1s and the head's two 1x1s every input.
  per_pixel = 24 * 2 * h + layers * (2 * h * h + 5 * h * h + h * 2 * h) + 2 * h * out + out * 2
  assert timing().visible_macs_per_image(config) == 28 * 28 * per_pixel
  config.model.multiscale.factor = 2
  assert timing().visible_macs_per_image(config) is None


def test_a_recurrent_model_counts_its_visible_taps_and_every_lstm_product():
  benchmark = load_benchmark()
  config = benchmark.load_config(str(REPO_ROOT / "configs" / "binarized_mnist_row_lstm.py"))
  h, layers, out = config.model.hidden_dim, config.model.num_layers, config.model.output_dim
  # Per pixel: the 7x7 mask-A input layer (24 taps); per layer the 1x3 input-to-state
  # (mask B: the left tap and the centre) and the 1x3 state-to-state over the row above
  # into the four gates, and the 1x1 output; the head's two 1x1s.
  per_layer = 2 * (2 * h) * 4 * h + 3 * h * 4 * h + h * 2 * h
  per_pixel = 24 * 2 * h + layers * per_layer + 2 * h * out + out * 2
  assert timing().visible_macs_per_image(config) == 28 * 28 * per_pixel


def test_the_benchmark_times_both_masked_conv_forms_interleaved_against_the_peak():
  done = subprocess.run(
    [
      sys.executable,
      "experiments/benchmark.py",
      "--config=configs/quickstart.py",
      "--batch_size=4",
      "--warmup_steps=1",
      "--timed_steps=2",
      "--masked_conv=conv,taps",
      "--repeats=2",
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  lines = [json.loads(line) for line in done.stdout.splitlines()]
  peaks = [line["matmul_peak_gflops"] for line in lines if "matmul_peak_gflops" in line]
  steps = [line for line in lines if "train_step_s" in line]
  assert len(peaks) == 2 and all(p > 0 for p in peaks)
  assert [(line["repeat"], line["masked_conv"]) for line in steps] == [
    (0, "conv"),
    (0, "taps"),
    (1, "conv"),
    (1, "taps"),
  ]
  for line in steps:
    peak = peaks[line["repeat"]]
    gflops = line["visible_gflop_per_step"] / line["train_step_s"]
    assert abs(line["visible_gflops_per_s"] - gflops) <= 0.051 + 0.01 * gflops
    assert abs(line["fraction_of_peak"] - gflops / peak) <= 0.002 + 0.01 * gflops / peak
  (summary,) = [line["summary"] for line in lines if "summary" in line]
  assert sorted(summary) == [
    "configs/quickstart.py k=1 pallas_lstm=False masked_conv=conv",
    "configs/quickstart.py k=1 pallas_lstm=False masked_conv=taps",
  ]
