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

import json
import os
import platform
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workroot", None, "Directory for the runs' workdirs (must not exist).")
flags.DEFINE_string("output", None, "JSONL file the results are appended to.")
flags.DEFINE_integer("steps", 1000, "Train steps per run.")
flags.DEFINE_list("seeds", ["0"], "Seeds (initialisation and data order), one pair of runs each.")
flags.DEFINE_list("precisions", ["float32", "bfloat16"], "training.precision values; float32 "
                  "first, as the reference of the gaps.")
flags.mark_flags_as_required(["workroot", "output"])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
      overrides = [f"--config.seed={seed}", f"--config.training.precision={precision}",
                   f"--config.training.num_steps={FLAGS.steps}",
                   f"--config.training.eval_every_steps={FLAGS.steps}",
                   f"--config.training.checkpoint_every_steps={FLAGS.steps}",
                   "--samples_after_training=0"]
      command = [sys.executable, "launch.py", "--config=configs/quickstart.py",
                 f"--workdir={os.path.join(FLAGS.workroot, name)}", *overrides]
      start = time.perf_counter()
      done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
      if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
      nll = json.loads(done.stdout.strip().splitlines()[-1])["nll_nats"]
      reference = nll if reference is None else reference
      record = {"run": name, "seed": int(seed), "precision": precision, "steps": FLAGS.steps,
                "test_nll_nats": nll, "gap_to_float32": round(nll / reference - 1.0, 5),
                "wall_s": round(time.perf_counter() - start, 1), "cpu": platform.processor()
                or platform.machine(), "cpu_cores": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d"), "command": " ".join(command[1:])}
      print(json.dumps(record), flush=True)
      with open(FLAGS.output, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
  app.run(main)
