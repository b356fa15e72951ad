"""The one entry point: trains or evaluates the model of a config, in a workdir.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=eval
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=sample

Training resumes from the workdir's latest checkpoint. Config values can be
overridden on the command line, e.g. --config.training.num_steps=1000. SIGTERM (a
cluster's preemption) or Ctrl-C saves a checkpoint at the current step and exits with
status 143 or 130; rerunning the same command continues bit for bit.
"""

import json
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from pixelrnn import defaults, figures, stopping, train

MODES = ("train", "eval", "sample", "inpaint")

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
flags.DEFINE_integer("num_completions", 4, "inpaint: completions per test image.")
flags.DEFINE_integer("observed_rows", None, "inpaint: rows kept at the top of each test image "
                     "(default: half the image height).")
flags.DEFINE_float("temperature", 1.0, "sample, inpaint: softmax temperature (> 0).")
flags.DEFINE_integer("seed", 0, "sample, inpaint: random seed.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = FLAGS.config
  try:
    defaults.validate(config)
  except defaults.ConfigError as e:
    raise app.UsageError(f"Invalid config {FLAGS['config'].value!r}: {e}") from None
  if FLAGS.mode == "sample":
    result = figures.write_samples(config, FLAGS.workdir, num_samples=FLAGS.num_samples,
                                   temperature=FLAGS.temperature, seed=FLAGS.seed)
    print(json.dumps({"mode": FLAGS.mode, **result}))
    return
  if FLAGS.mode == "inpaint":
    result = figures.write_completions(
        config, FLAGS.workdir, num_images=FLAGS.num_samples,
        num_completions=FLAGS.num_completions, observed_rows=FLAGS.observed_rows,
        temperature=FLAGS.temperature, seed=FLAGS.seed)
    print(json.dumps({"mode": FLAGS.mode, **result}))
    return
  if FLAGS.mode == "train":
    try:
      with stopping.StopRequests() as stop_requests:
        metrics = train.train_and_evaluate(config, FLAGS.workdir, should_stop=stop_requests)
    except stopping.TrainingStopped as stopped:
      print(stopped, file=sys.stderr)
      # 128 + 15: the shell's status for a process ended by SIGTERM, so a scheduler
      # sees that the run did not finish (and may requeue it).
      sys.exit(128 + signal.SIGTERM if stopped.reason == "SIGTERM" else 1)
    except KeyboardInterrupt:
      sys.exit(128 + signal.SIGINT)  # train_and_evaluate has saved and said so.
  else:
    metrics = train.evaluate_checkpoint(config, FLAGS.workdir)
  logging.info("Final eval metrics: %s", metrics)
  print(json.dumps({"mode": FLAGS.mode, "eval_split": config.data.eval_split, **metrics}))


if __name__ == "__main__":
  app.run(main)
