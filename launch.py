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
import runpy
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from pixelrnn import (checkpoints, data, defaults, distributed, figures, finite_guard, stopping,
                      train, workdir_lock)

MODES = ("train", "eval", "sample", "inpaint")
HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")
# Failures caused by what the user asked for: reported in one line, without a traceback.
USER_ERRORS = (defaults.ConfigError, data.DataError, checkpoints.CheckpointError,
               checkpoints.CheckpointSaveError, finite_guard.NonFiniteError,
               workdir_lock.WorkdirLockedError, figures.FigureRequestError,
               distributed.DistributedError)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
flags.DEFINE_enum("mode", "train", MODES, "train: train (resuming) and evaluate; "
                  "eval: evaluate the latest checkpoint's EMA parameters; "
                  "sample: write a PNG grid of samples from them; "
                  "inpaint: complete the lower rows of test images with them.")
flags.DEFINE_integer("num_samples", 16, "sample: number of images; inpaint: test images, "
                     "spread evenly over the eval split.")
flags.DEFINE_integer("label", None, "sample, for a class-conditional model: draw --num_samples "
                     "images of this class; without it, one row of --num_samples per class.")
flags.DEFINE_integer("num_completions", 4, "inpaint: completions per test image.")
flags.DEFINE_integer("observed_rows", None, "inpaint: rows kept at the top of each test image "
                     "(default: half the image height).")
flags.DEFINE_float("temperature", 1.0, "sample, inpaint: softmax temperature (> 0).")
flags.DEFINE_integer("seed", 0, "sample, inpaint: random seed.")
flags.DEFINE_integer("samples_after_training", 16, "train: when training finishes, write a grid "
                     "of this many samples to workdir/samples_<step>.png (0: none).")
flags.DEFINE_bool("library_logs", False, "Show the INFO logs of the libraries (orbax, absl, "
                  "TensorFlow), which are hidden by default.")
flags.DEFINE_bool("distributed", False, "Join a multi-process run through jax.distributed. The "
                  "flags below, or else JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
                  "JAX_PROCESS_ID, or else JAX's cluster detection (SLURM, Open MPI, "
                  "Kubernetes, Cloud TPU) say how; giving any of them implies --distributed.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0's coordinator, the "
                    "same for every process.")
flags.DEFINE_integer("num_processes", None, "Number of processes in the run.")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1.")
flags.DEFINE_integer("distributed_timeout_s", 300, "Seconds to wait for every process to join.")
flags.mark_flags_as_required(["config", "workdir"])
flags.register_validator("temperature", lambda t: t > 0, "--temperature must be > 0.")


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; flags are given as --name=value.")
  if not FLAGS.library_logs:
    logging.set_verbosity(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow is first imported.
  try:
    cluster = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if FLAGS.distributed or any(value is not None for value in cluster):
      distributed.initialize(*cluster, timeout_s=FLAGS.distributed_timeout_s)
    run(FLAGS.config, FLAGS.workdir)
  except USER_ERRORS as e:
    fail(str(e))
  except stopping.TrainingStopped as stopped:
    print(stopped, file=sys.stderr)
    # 128 + the signal's number: the shell's status for a process ended by it, so a
    # scheduler sees that the run did not finish (and may requeue it).
    signum = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}.get(stopped.reason)
    sys.exit(1 if signum is None else 128 + signum)
  except KeyboardInterrupt:
    sys.exit(128 + signal.SIGINT)  # What was saved, if anything, has been said.


def run(config, workdir: str) -> None:
  defaults.validate(config)  # Training and every reader check the workdir themselves.
  if FLAGS.mode == "sample":
    result = figures.write_samples(config, workdir, num_samples=FLAGS.num_samples,
                                   temperature=FLAGS.temperature, seed=FLAGS.seed,
                                   label=FLAGS.label)
  elif FLAGS.mode == "inpaint":
    result = figures.write_completions(
        config, workdir, num_images=FLAGS.num_samples, num_completions=FLAGS.num_completions,
        observed_rows=FLAGS.observed_rows, temperature=FLAGS.temperature, seed=FLAGS.seed)
  elif FLAGS.mode == "train":
    with stopping.StopRequests() as stop_requests:
      metrics = train.train_and_evaluate(config, workdir, should_stop=stop_requests)
    result = {"eval_split": config.data.eval_split, **metrics}
    if FLAGS.samples_after_training > 0:
      samples = figures.write_samples(config, workdir, num_samples=FLAGS.samples_after_training)
      distributed.primary_only(print)(f"Samples: {samples['png']}")
      result["samples_png"] = samples["png"]
  else:
    result = {"eval_split": config.data.eval_split, **train.evaluate_checkpoint(config, workdir)}
  distributed.primary_only(print)(json.dumps({"mode": FLAGS.mode, **result}))


def fail(message: str) -> None:
  print(f"Error: {message}", file=sys.stderr)
  sys.exit(2)


def flag_value(argv: list[str], name: str) -> str | None:
  """The value of --name=value or --name value in argv (the last one given)."""
  value = None
  for k, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and k + 1 < len(argv):
      value = argv[k + 1]
  return value


def command_line_error(argv: list[str]) -> str | None:
  """The one-line message for a config file or override that absl would report with a
  traceback: a missing or unloadable file, or an unknown key."""
  path = flag_value(argv, "config")
  if path is None:
    return None  # absl reports the missing required flag itself.
  if not os.path.isfile(path):
    return f"--config={path!r}: no such file; expected a config file such as configs/quickstart.py."
  try:
    config = runpy.run_path(path)["get_config"]()
  except Exception as e:  # Whatever the file raises, the user needs its type and message.
    return f"--config={path!r} could not be loaded: {type(e).__name__}: {e}"
  for arg in argv:
    if arg.startswith("--config."):
      try:
        defaults.check_key_path(config, arg.removeprefix("--config.").split("=", 1)[0])
      except defaults.ConfigError as e:
        return f"{arg}: {e}"
  return None


if __name__ == "__main__":
  if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
    try:
      app.run(main)
    except SystemExit:
      sys.exit(0)  # absl exits 1 after printing the help that was asked for.
  error = command_line_error(sys.argv[1:])
  if error is not None:
    fail(error)
  app.run(main)
