"""The discretized logistic mixture against the 256-way softmax on 8-bit images: test
bits/dim of networks of (nearly) the same size, trained the same steps on the same batches.

  python experiments/compare_likelihoods.py --dataset=mnist --workroot=/tmp/likelihoods \
      --manual_dir=../shared/data/mnist \
      --output=experiments/results/likelihood_comparison_cpu_<date>.jsonl \
      --samples=experiments/results/likelihoods_mnist

  python experiments/compare_likelihoods.py --dataset=cifar10_first4000 \
      --workroot=/tmp/likelihoods_cifar --manual_dir=../shared/data/cifar10_subset \
      --steps=2000 --output=... --samples=experiments/results/likelihoods_cifar

Trains, with launch.py in fresh workdirs, each run of --runs
(`likelihood_runs.RUNS[--dataset]`): a PixelCNN with 256 logits per sub-pixel, the same
network with the mixture head (widened to spend the parameters the logits took), and a
PixelCNN++ of configs/mnist_pixelcnn_pp.py:quick's shape, on one recipe: --steps steps of
batch 16, Adam 1e-3, EMA 0.999, seed 0 (the same batches for all), then evaluates each on
the test split. Appends one JSON line per run (test bits/dim, parameters, wall time, bits
per sub-pixel by level) and copies its 16-sample grid to <samples>_<run>.png.

`cifar10_first4000` is 3,500 training and 500 test images of CIFAR-10's first training
batch (`pixelrnn.data.loading`): natural images, where the full CIFAR-10 is absent.
"""

import os
import shutil

import jax.numpy as jnp
import launch_runs  # experiments/launch_runs.py
import likelihood_runs  # experiments/likelihood_runs.py
import numpy as np
from absl import app, flags

from pixelrnn import cli, distributions, likelihood, logistic_mixture, pretrained
from pixelrnn.data import datasets
from pixelrnn.data import loading as data_lib
from pixelrnn.reproduction import curves
from pixelrnn.training import train
from pixelrnn.workdir.metric_writers import read_metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("workroot", None, "Directory for the runs' workdirs (must not exist).")
flags.DEFINE_string("output", None, "JSONL file the results are appended to.")
flags.DEFINE_string("samples", None, "Sample grids are copied to <samples>_<run>.png.")
flags.DEFINE_enum(
  "dataset", "mnist", list(likelihood_runs.RUNS), "The 8-bit dataset the runs train on."
)
flags.DEFINE_string(
  "manual_dir", None, "data.manual_dir: MNIST's four .gz files, or the CIFAR-10 records file."
)
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's own).")
flags.DEFINE_integer("steps", 3000, "Train steps per run.")
flags.DEFINE_list("runs", list(likelihood_runs.RUNS["mnist"]), "Which runs, in order.")
flags.DEFINE_bool(
  "breakdown_only", False, "Only break down the NLL of runs in --workroot and redraw the curves."
)
flags.DEFINE_integer("breakdown_images", 2000, "Test images the NLL breakdown reads.")
flags.mark_flags_as_required(["workroot", "output", "samples"])


# Pixel levels, in the groups the breakdown reports: background, the tails, the rest.
LEVEL_GROUPS = {"0": (0, 1), "1-127": (1, 128), "128-251": (128, 252), "252-255": (252, 256)}


def nll_by_level(workdir: str) -> dict | None:
  """Bits per pixel of the run's EMA model on the first --breakdown_images test images,
  by the pixel's level (`LEVEL_GROUPS`), and each group's share of the pixels. None for
  colour images, whose mixture scores a pixel's three levels together."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = pretrained.config_from_json(f.read())
  if datasets.IMAGE_SPECS[config.data.name][0][-1] != 1:
    return None
  model, params, *_ = train.load_ema_params(config, workdir)
  images = data_lib.load_dataset(config.data, "test").images[: FLAGS.breakdown_images]
  network = model.merged(params)
  distribution = distributions.of(network)
  nats = []
  for start in range(0, len(images), 250):
    batch = jnp.asarray(images[start : start + 250], jnp.int32)
    outputs = network(batch)
    if distribution.draws_whole_pixels:
      per_pixel = -logistic_mixture.log_prob(outputs, batch, distribution.num_components)
    else:
      per_pixel = -likelihood.log_probs(outputs, batch).sum(-1)
    nats.append(np.asarray(per_pixel))
  bits, levels = np.concatenate(nats) / np.log(2), images[..., 0]
  result = {}
  for name, (low, high) in LEVEL_GROUPS.items():
    inside = (levels >= low) & (levels < high)
    result[name] = {
      "bits": round(float(bits[inside].mean()), 4),
      "share": round(float(inside.mean()), 4),
    }
  return result


def write_curves(names: list[str], path: str) -> str:
  """Train bits/dim (binned means) of each run in --workroot against step, its test
  bits/dim a dashed line, in one chart at `path`."""
  series, references = [], []
  for name, color in zip(names, curves.COLORS):
    rows = read_metrics(os.path.join(FLAGS.workroot, name))
    train_points = [(r["step"], r["bits_per_dim"]) for r in rows if r["split"] == "train"]
    series.append(curves.Series(name, curves.binned_means(train_points, bins=40), color))
    tests = [r["bits_per_dim"] for r in rows if r["split"] == "eval"]
    if tests:
      references.append(curves.Reference(f"{name} test: {tests[-1]:.3f}", tests[-1], color))
  # The axis starts at the highest first point, 8 bits/dim (uniform) at most.
  y_max = min([s.points[0][1] for s in series if s.points] + [8.0])
  return curves.save_chart(
    path,
    series,
    references,
    title=f"{FLAGS.dataset}: train bits/dim (binned means), test bits/dim dashed",
    y_label="bits/dim",
    y_max=y_max,
  )


def overrides() -> list[str]:
  """The recipe every run shares."""
  steps = FLAGS.steps
  data = (
    [f"--config.data.manual_dir={os.path.abspath(FLAGS.manual_dir)}"] if FLAGS.manual_dir else []
  )
  if FLAGS.data_dir:
    data.append(f"--config.data.data_dir={os.path.abspath(FLAGS.data_dir)}")
  return data + [
    f"--config.data.name={FLAGS.dataset}",
    "--config.seed=0",
    "--config.data.eval_split=test",
    f"--config.training.num_steps={steps}",
    f"--config.training.eval_every_steps={steps}",
    f"--config.training.checkpoint_every_steps={steps}",
    "--config.training.batch_size=16",
    "--config.training.eval_batch_size=500",
    "--config.training.ema_decay=0.999",
    "--config.training.log_every_steps=100",
    "--config.optimizer.name=adam",
    "--config.optimizer.learning_rate=0.001",
    "--config.optimizer.schedule=constant",
    "--config.optimizer.grad_clip_norm=1.0",
    "--samples_after_training=16",
  ]


def main(argv):
  del argv
  if os.path.exists(FLAGS.workroot) and not FLAGS.breakdown_only:
    raise app.UsageError(f"--workroot {FLAGS.workroot!r} exists; give a new directory.")
  runs = likelihood_runs.RUNS[FLAGS.dataset]
  unknown = sorted(set(FLAGS.runs) - set(runs))
  if unknown:
    raise app.UsageError(f"Unknown --runs {unknown}; valid: {list(runs)}.")
  if FLAGS.breakdown_only:
    for name in FLAGS.runs:
      row = {"run": name, "nll_bits_by_level": nll_by_level(os.path.join(FLAGS.workroot, name))}
      launch_runs.record(FLAGS.output, row)
    print("Wrote", write_curves(FLAGS.runs, f"{FLAGS.samples}_curves.png"))
    return
  counts = {name: likelihood_runs.parameter_count(*runs[name], FLAGS.dataset) for name in runs}
  for name in FLAGS.runs:
    path, model_overrides = runs[name]
    workdir = os.path.join(FLAGS.workroot, name)
    extra = [f"--config.model.{key}={value}" for key, value in model_overrides.items()]
    row = launch_runs.train(name, path, workdir, overrides() + extra)
    target = f"{FLAGS.samples}_{name}.png"
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    shutil.copyfile(os.path.join(workdir, f"samples_{FLAGS.steps}.png"), target)
    launch_runs.record(
      FLAGS.output,
      {
        **row,
        "parameters": counts[name],
        "parameters_vs_softmax": round(counts[name] / counts["softmax_pixelcnn"], 3),
        "steps": FLAGS.steps,
        "samples": target,
        "nll_bits_by_level": nll_by_level(workdir),
      },
    )
  print("Wrote", write_curves(FLAGS.runs, f"{FLAGS.samples}_curves.png"))


if __name__ == "__main__":
  cli.run(main)
