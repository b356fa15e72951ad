"""Where a train step's time goes: the top XLA operations of one or more configs' step.

  python experiments/profile_step.py --config=configs/binarized_mnist_pixelcnn.py \
      --output=experiments/results/profile_<name>.jsonl

Compiles the training loop's step (`Trainer.train_steps`, the config's steps per
dispatch) on random images of the dataset's shape, runs it under `jax.profiler.trace`
and sums the duration of every XLA operation (on a CPU, each thunk: a fusion, a
convolution, a copy) over the traced steps. Prints, per config, a table of the top
operations: milliseconds per train step, share of the step's wall time, and what the
operation computes (the HLO instructions inside it, from the compiled module's text).
Tracing charges every operation a cost of its own, so the traced step is longer than the
untraced one (timed first, in the same process, and printed beside it): read the shares
as where the traced time goes, and compare steps in `benchmark.py`.
Pause any training in the background while profiling: the durations are wall time.

On a CPU the batch is split over one device per core, as in training (`--cpu_devices=1`
for one device). Each device runs every operation on its part of the batch, so an
operation's milliseconds are its time summed over the devices divided by their number:
the time of one device's step, whose share of the wall time it is.
"""

from __future__ import annotations

import json

import jax
from absl import flags
from profiling import profile  # experiments/profiling.py, beside this script.

from pixelrnn import cli
from pixelrnn.layers import convolution

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("config", None, "Config file(s) to profile, in order.")
flags.DEFINE_integer("batch_size", None, "Overrides config.training.batch_size.")
flags.DEFINE_integer("calls", 3, "Traced calls of the step (each runs steps_per_dispatch steps).")
flags.DEFINE_integer("top", 15, "Operations listed per config.")
flags.DEFINE_list(
  "masked_conv",
  None,
  "Forms of the masked convolutions to profile, in turn "
  "(conv, taps, blocks, default; see benchmark.py); default: the backend's choice.",
)
flags.DEFINE_string("output", None, "Append one JSON object per config to this file.")
flags.mark_flag_as_required("config")


def main(argv):
  del argv
  configs = {path: cli.load_config(path) for path in FLAGS.config}
  if FLAGS.batch_size is not None:
    for config in configs.values():
      config.training.batch_size = FLAGS.batch_size
  cli.split_cpu(configs.values())  # Before JAX starts: --cpu_devices, or one per core.
  for path, form in [(p, f) for p in FLAGS.config for f in FLAGS.masked_conv or [None]]:
    config = configs[path]
    with convolution.masked_conv_form(form):
      result = {
        "config_file": path,
        "masked_conv": form or "default",
        "device_kind": jax.devices()[0].device_kind,
        **profile(config, FLAGS.calls),
      }
    print(
      f"\n{path}, masked_conv={result['masked_conv']}: {result['step_ms']} ms per traced step "
      f"({result['untraced_step_ms']} untraced; "
      f"batch {result['batch_size']} on {result['devices']} device(s)), "
      f"{100 * result['ops_share']:.1f}% of it in the operations below and the rest"
    )
    print("| kind | ms/step | share |\n| --- | --- | --- |")
    for row in result["kinds"]:
      print(f"| {row['kind']} | {row['ms_per_step']:.2f} | {100 * row['share']:.1f}% |")
    print("\n| op | ms/step | share | computes |\n| --- | --- | --- | --- |")
    for row in result["ops"][: FLAGS.top]:
      print(
        f"| {row['op']} | {row['ms_per_step']:.2f} | {100 * row['share']:.1f}% "
        f"| {row['computes']} |"
      )
    if FLAGS.output:
      with open(FLAGS.output, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
  cli.run(main)
