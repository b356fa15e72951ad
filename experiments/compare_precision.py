"""bfloat16 against float32 training: the test NLL each reaches with the same network,
data order and step budget.

  python experiments/compare_precision.py --workroot=/tmp/precision --seeds=0,1 \
      --output=experiments/results/precision_comparison_cpu_<date>.jsonl

For each seed, trains configs/quickstart.py (4 blocks of h=16, batch 32, Adam with a
cosine decay) for --steps steps once per `training.precision` in --precisions, with
launch.py in fresh workdirs, and appends one JSON line per run: the final test NLL
(EMA parameters, evaluated at full float32 whatever the training precision), its gap
to the float32 run of the same seed, and the wall time.
"""

import os
import platform

import launch_runs  # experiments/launch_runs.py
from absl import app, flags

from pixelrnn import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workroot", None, "Directory for the runs' workdirs (must not exist).")
flags.DEFINE_string("output", None, "JSONL file the results are appended to.")
flags.DEFINE_integer("steps", 1000, "Train steps per run.")
flags.DEFINE_list("seeds", ["0"], "Seeds (initialisation and data order), one pair of runs each.")
flags.DEFINE_list(
  "precisions",
  ["float32", "bfloat16"],
  "training.precision values; float32 first, as the reference of the gaps.",
)
flags.mark_flags_as_required(["workroot", "output"])


def main(argv):
  del argv
  if os.path.exists(FLAGS.workroot):
    raise app.UsageError(f"--workroot {FLAGS.workroot!r} exists; give a new directory.")
  if FLAGS.precisions[0] != "float32":
    raise app.UsageError(f"--precisions must start with float32, got {FLAGS.precisions}.")
  for seed in FLAGS.seeds:
    reference = None
    for precision in FLAGS.precisions:
      name = f"seed{seed}_{precision}"
      overrides = [
        f"--config.seed={seed}",
        f"--config.training.precision={precision}",
        f"--config.training.num_steps={FLAGS.steps}",
        f"--config.training.eval_every_steps={FLAGS.steps}",
        f"--config.training.checkpoint_every_steps={FLAGS.steps}",
        "--samples_after_training=0",
      ]
      row = launch_runs.train(
        name, "configs/quickstart.py", os.path.join(FLAGS.workroot, name), overrides
      )
      reference = row["nll_nats"] if reference is None else reference
      launch_runs.record(
        FLAGS.output,
        {
          **row,
          "seed": int(seed),
          "precision": precision,
          "steps": FLAGS.steps,
          "gap_to_float32": round(row["nll_nats"] / reference - 1.0, 5),
          "cpu": platform.processor() or platform.machine(),
          "cpu_cores": os.cpu_count(),
        },
      )


if __name__ == "__main__":
  cli.run(main)
