"""Which PixelCNN can reach the paper's binarized-MNIST row: depth and width at a fixed budget.

  python experiments/ablate_pixelcnn.py --workroot=/tmp/ablate \
      --output=experiments/results/pixelcnn_ablation_cpu_<date>.jsonl

Trains each variant below from scratch with the paper's recipe (RMSProp 1e-3, batch 16)
for --steps steps on the training split, then reports, for its EMA parameters, the
NLL on the validation split (never the test split: this chooses a config) and on the
first 10,000 training images. Equal train and validation NLL means the network
underfits at this budget, so capacity or receptive field, not overfitting, limits it.
One JSON line per variant is appended to --output, with its wall time, the number of
rows above a pixel that its logits can see (3 for the 7x7 mask-A layer, plus one per
3x3 block) and `context_seen`: the fraction of the earlier pixels of a 28x28 image
that the logits of a pixel depend on, averaged over the pixels (from the exact
Jacobian of the untrained network; 1.0 would be the full context the likelihood
allows). `--context_only` reports only that, without training.
"""

import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from pixelrnn import cli, defaults
from pixelrnn.data import loading as data_lib
from pixelrnn.models import registry
from pixelrnn.training import train

FLAGS = flags.FLAGS
flags.DEFINE_string("workroot", None, "Directory for the variants' workdirs (must not exist).")
flags.DEFINE_string("output", None, "JSONL file the results are appended to.")
flags.DEFINE_integer("steps", 2000, "Training steps of every variant.")
flags.DEFINE_list("variants", None, "Variant names to run (default: all).")
flags.DEFINE_bool(
  "context_only",
  False,
  "Only report each variant's context_seen, and that of "
  "the paper's recurrent MNIST configs for comparison.",
)

RECURRENT_CONFIGS = (
  "configs/binarized_mnist_row_lstm.py",
  "configs/binarized_mnist_diagonal_bilstm.py",
)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.mark_flags_as_required(["workroot", "output"])

# name: (residual blocks, h). Features between blocks are 2h.
VARIANTS = {
  "blocks7_h16": (7, 16),
  "blocks15_h16": (15, 16),
  "blocks7_h32": (7, 32),
}


def variant_config(num_blocks: int, hidden_dim: int, steps: int):
  config = defaults.base_config()
  config.data.eval_split = "validation"
  config.model.num_layers = num_blocks
  config.model.hidden_dim = hidden_dim
  config.model.output_dim = 2 * hidden_dim
  training = config.training
  training.num_steps = steps
  training.eval_every_steps = training.checkpoint_every_steps = steps
  training.log_every_steps = 100
  training.eval_batch_size = 500
  return config


def context_seen(config, height: int = 28, width: int = 28) -> float:
  """Mean over pixels of the fraction of earlier pixels their logits depend on."""
  model, params = registry.build(config.model, image_shape=(height, width, 1), num_levels=2, seed=0)
  x = jax.random.uniform(jax.random.key(1), (1, height, width, 1))  # No structured zeros.
  logits = lambda v: jnp.sum(model.apply(params, v.reshape(1, height, width, 1)), -1).reshape(-1)
  depends = np.asarray(jax.jacrev(logits)(x.reshape(-1)) != 0)  # (out pixel, in pixel)
  earlier = np.tri(height * width, k=-1, dtype=bool)
  counts = earlier.sum(1)
  has_context = counts > 0
  return float(np.mean((depends & earlier).sum(1)[has_context] / counts[has_context]))


def main(argv):
  del argv
  if FLAGS.context_only:
    configs = {
      name: variant_config(*VARIANTS[name], FLAGS.steps) for name in FLAGS.variants or VARIANTS
    }
    for path in RECURRENT_CONFIGS:
      configs[path] = cli.load_config(os.path.join(REPO, path))
    for name, config in configs.items():
      record = {
        "variant": name,
        "model": config.model.name,
        "layers": config.model.num_layers,
        "hidden_dim": config.model.hidden_dim,
        "context_seen": round(context_seen(config), 4),
      }
      print(json.dumps(record), flush=True)
      with open(FLAGS.output, "a") as f:
        f.write(json.dumps(record) + "\n")
    return
  if os.path.exists(FLAGS.workroot):
    raise app.UsageError(f"--workroot {FLAGS.workroot!r} exists; give a new directory.")
  train_images = data_lib.load_binarized_mnist("train").images[:10_000]
  for name in FLAGS.variants or VARIANTS:
    num_blocks, hidden_dim = VARIANTS[name]
    config = variant_config(num_blocks, hidden_dim, FLAGS.steps)
    workdir = os.path.join(FLAGS.workroot, name)
    start = time.perf_counter()
    validation = train.train_and_evaluate(config, workdir, progress=False)
    wall_s = time.perf_counter() - start
    context = context_seen(config)
    trainer, state = train.restore_latest(config, workdir)
    on_train = trainer.evaluate(state.ema_params, train_images)
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    record = {
      "variant": name,
      "num_blocks": num_blocks,
      "hidden_dim": hidden_dim,
      "features": 2 * hidden_dim,
      "params": int(num_params),
      "rows_above_seen": 3 + num_blocks,
      "context_seen": round(context, 4),
      "steps": FLAGS.steps,
      "batch_size": 16,
      "recipe": "rmsprop 1e-3, ema 0.9995",
      "validation_nll_nats": round(validation["nll_nats"], 3),
      "train10k_nll_nats": round(on_train["nll_nats"], 3),
      "wall_s": round(wall_s, 1),
      "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
      "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(record), flush=True)
    with open(FLAGS.output, "a") as f:
      f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
  cli.run(main)
