"""The one entry point: trains or evaluates the model of a config, in a workdir.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=eval
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=sample

Training resumes from the workdir's latest checkpoint. Config values can be
overridden on the command line, e.g. --config.training.num_steps=1000. SIGTERM (a
cluster's preemption) or Ctrl-C saves a checkpoint at the current step and exits with
status 143 or 130; rerunning the same command continues bit for bit. Bad input (a missing
config file, an unknown key or value, a workdir that is a file) is reported in one line.
Library INFO logs are hidden unless --library_logs is given.

Several processes (hosts) train one model together when asked (README: "Training on
several machines"): every process runs the same command with --distributed, and
--coordinator_address, --num_processes and --process_id (or the environment variables
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, or a cluster JAX detects,
such as SLURM) say how they meet.
"""

import json
import os
import signal
import sys

from absl import flags
from ml_collections import config_flags

from pixelrnn import cli, modes, pretrained
from pixelrnn.training import distributed, stopping

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Experiment config file (configs/*.py).", lock_config=False
)
flags.DEFINE_string(
  "workdir",
  None,
  "Directory for checkpoints, metrics and outputs. With "
  "--pretrained: where figures are written (default: the current directory).",
)
flags.DEFINE_string(
  "pretrained",
  None,
  "eval, sample, inpaint: use this pretrained model "
  "installed with the package (a recorded row, e.g. "
  "bmnist_diagonal_bilstm_1x32) instead of a workdir's checkpoint; its own "
  "config is used, and --config is not needed.",
)
flags.DEFINE_enum(
  "mode",
  "train",
  modes.MODES,
  "train: train (resuming) and evaluate; "
  "eval: evaluate the latest checkpoint's EMA parameters; "
  "sample: write a PNG grid of samples from them; "
  "inpaint: complete the lower rows of test images with them.",
)
flags.DEFINE_integer(
  "num_samples",
  16,
  "sample: number of images; inpaint: test images, spread evenly over the eval split.",
)
flags.DEFINE_integer(
  "label",
  None,
  "sample, for a class-conditional model: draw --num_samples "
  "images of this class; without it, one row of --num_samples per class.",
)
flags.DEFINE_integer("num_completions", 4, "inpaint: completions per test image.")
flags.DEFINE_integer(
  "observed_rows",
  None,
  "inpaint: rows kept at the top of each test image (default: half the image height).",
)
flags.DEFINE_float(
  "temperature",
  1.0,
  "sample, inpaint: > 0; divides a softmax's logits, scales a mixture's logistics.",
)
flags.DEFINE_integer("seed", 0, "sample, inpaint: random seed.")
flags.DEFINE_integer(
  "samples_after_training",
  16,
  "train: when training finishes, write a grid "
  "of this many samples to workdir/samples_<step>.png (0: none).",
)
flags.DEFINE_bool(
  "distributed",
  False,
  "Join a multi-process run through jax.distributed. The "
  "flags below, or else JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
  "JAX_PROCESS_ID, or else JAX's cluster detection (SLURM, Open MPI, "
  "Kubernetes, Cloud TPU) say how; giving any of them implies --distributed.",
)
flags.DEFINE_string(
  "coordinator_address", None, "host:port of process 0's coordinator, the same for every process."
)
flags.DEFINE_integer("num_processes", None, "Number of processes in the run.")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1.")
flags.DEFINE_integer("distributed_timeout_s", 300, "Seconds to wait for every process to join.")
flags.register_validator(
  "pretrained",
  lambda name: name is None or not FLAGS["config"].present,
  "--pretrained uses the pretrained model's own config: drop --config.",
)
flags.register_validator("temperature", lambda t: t > 0, "--temperature must be > 0.")


def check_sources() -> None:
  """A workdir run needs --config and --workdir; a pretrained one, a mode other than train."""
  if FLAGS.pretrained is not None:
    if FLAGS.mode == "train":
      cli.fail(
        f"--pretrained={FLAGS.pretrained} with --mode=train: a pretrained model is "
        "evaluated or sampled; expected --mode=eval, sample or inpaint."
      )
    return
  missing = [f"--{name}" for name in ("config", "workdir") if getattr(FLAGS, name) is None]
  if missing:
    cli.fail(
      f"{' and '.join(missing)} not given: expected --config=<file> and "
      "--workdir=<dir>, or --pretrained=<row> with --mode=eval, sample or inpaint."
    )


def figure_options() -> modes.FigureOptions:
  return modes.FigureOptions(
    num_samples=FLAGS.num_samples,
    label=FLAGS.label,
    num_completions=FLAGS.num_completions,
    observed_rows=FLAGS.observed_rows,
    temperature=FLAGS.temperature,
    seed=FLAGS.seed,
  )


def main(argv):
  del argv  # cli.run refuses positional arguments.
  check_sources()
  try:
    cluster = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if FLAGS.distributed or any(value is not None for value in cluster):
      distributed.initialize(*cluster, timeout_s=FLAGS.distributed_timeout_s)
    elif FLAGS.pretrained is None:
      cli.split_cpu([FLAGS.config])
    if FLAGS.pretrained is not None:
      loaded = pretrained.load(FLAGS.pretrained)
      out_dir = FLAGS.workdir or os.getcwd()
      result = modes.run_pretrained(FLAGS.mode, loaded, out_dir, figure_options())
    else:
      result = modes.run_workdir(
        FLAGS.mode, FLAGS.config, FLAGS.workdir, figure_options(), FLAGS.samples_after_training
      )
    distributed.primary_only(print)(json.dumps(result))
  except stopping.TrainingStopped as stopped:
    print(stopped, file=sys.stderr)
    sys.exit(modes.exit_status(stopped))
  except KeyboardInterrupt:
    sys.exit(128 + signal.SIGINT)  # What was saved, if anything, has been said.


if __name__ == "__main__":
  cli.run(main)
