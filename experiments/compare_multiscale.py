"""Single-scale against multi-scale on binarized MNIST, at the same step budget.

  python experiments/compare_multiscale.py --workroot=/tmp/compare \
      --output=experiments/results/multiscale_comparison_cpu_<date>.jsonl

Trains each pair of configs below with launch.py (fresh workdirs under --workroot)
and appends one JSON line per run: the final test NLL (and its two parts for the
multi-scale model), the step budget and the wall time. The Row LSTM pair uses the
paper-size configs cut to --row_lstm_steps steps.
"""

import os

import launch_runs  # experiments/launch_runs.py
from absl import app, flags

from pixelrnn import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workroot", None, "Directory for the runs' workdirs (must not exist).")
flags.DEFINE_string("output", None, "JSONL file the results are appended to.")
flags.DEFINE_integer("row_lstm_steps", 1000, "Step budget of the Row LSTM pair.")
flags.mark_flags_as_required(["workroot", "output"])


def runs():
  row_lstm = [
    f"--config.training.num_steps={FLAGS.row_lstm_steps}",
    f"--config.training.eval_every_steps={FLAGS.row_lstm_steps}",
    "--config.training.checkpoint_every_steps=500",
    "--config.training.eval_batch_size=500",
    "--config.training.ema_decay=0.999",
  ]
  return [
    ("pixelcnn_single", "configs/quickstart.py", []),
    ("pixelcnn_multiscale", "configs/quickstart_multiscale.py", []),
    ("row_lstm_single", "configs/binarized_mnist_row_lstm.py", row_lstm),
    ("row_lstm_multiscale", "configs/binarized_mnist_multiscale_row_lstm.py", row_lstm),
  ]


def main(argv):
  del argv
  if os.path.exists(FLAGS.workroot):
    raise app.UsageError(f"--workroot {FLAGS.workroot!r} exists; give a new directory.")
  for name, config, overrides in runs():
    launch_runs.record(
      FLAGS.output, launch_runs.train(name, config, os.path.join(FLAGS.workroot, name), overrides)
    )


if __name__ == "__main__":
  cli.run(main)
