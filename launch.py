"""The one entry point: trains or evaluates the model of a config, in a workdir.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=eval

Training resumes from the workdir's latest checkpoint. Config values can be
overridden on the command line, e.g. --config.training.num_steps=1000.
"""

import json

from absl import app, flags, logging
from ml_collections import config_flags

from pixelrnn import defaults, train

MODES = ("train", "eval")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
flags.DEFINE_enum("mode", "train", MODES, "train: train (resuming) and evaluate; "
                  "eval: evaluate the latest checkpoint's EMA parameters.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = FLAGS.config
  try:
    defaults.validate(config)
  except defaults.ConfigError as e:
    raise app.UsageError(f"Invalid config {FLAGS['config'].value!r}: {e}") from None
  if FLAGS.mode == "train":
    metrics = train.train_and_evaluate(config, FLAGS.workdir)
  else:
    metrics = train.evaluate_checkpoint(config, FLAGS.workdir)
  logging.info("Final eval metrics: %s", metrics)
  print(json.dumps({"mode": FLAGS.mode, "eval_split": config.data.eval_split, **metrics}))


if __name__ == "__main__":
  app.run(main)
