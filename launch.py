"""The one entry point: trains or evaluates the model of a config, in a workdir.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=eval
  python launch.py --config=configs/quickstart.py --workdir=/tmp/quickstart --mode=sample

Training resumes from the workdir's latest checkpoint. Config values can be
overridden on the command line, e.g. --config.training.num_steps=1000.
"""

import json
import os
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from pixelrnn import data, defaults, images, multiscale, sampling, train

MODES = ("train", "eval", "sample", "inpaint")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
flags.DEFINE_enum("mode", "train", MODES, "train: train (resuming) and evaluate; "
                  "eval: evaluate the latest checkpoint's EMA parameters; "
                  "sample: write a PNG grid of samples from them; "
                  "inpaint: complete the lower half of test images with them.")
flags.DEFINE_integer("num_samples", 16, "sample: number of images; inpaint: test images.")
flags.DEFINE_integer("num_completions", 4, "inpaint: completions per test image.")
flags.DEFINE_float("temperature", 1.0, "sample: softmax temperature (> 0).")
flags.DEFINE_integer("seed", 0, "sample: random seed.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = FLAGS.config
  try:
    defaults.validate(config)
  except defaults.ConfigError as e:
    raise app.UsageError(f"Invalid config {FLAGS['config'].value!r}: {e}") from None
  if FLAGS.mode in ("sample", "inpaint"):
    run = sample if FLAGS.mode == "sample" else inpaint
    print(json.dumps({"mode": FLAGS.mode, **run(config, FLAGS.workdir)}))
    return
  if FLAGS.mode == "train":
    metrics = train.train_and_evaluate(config, FLAGS.workdir)
  else:
    metrics = train.evaluate_checkpoint(config, FLAGS.workdir)
  logging.info("Final eval metrics: %s", metrics)
  print(json.dumps({"mode": FLAGS.mode, "eval_split": config.data.eval_split, **metrics}))


def sample(config, workdir: str) -> dict:
  """Samples from the latest checkpoint's EMA parameters into workdir/samples_<step>.png.

  A multi-scale model also writes its small-scale samples to samples_<step>_small.png.
  """
  model, params, step, image_shape, num_levels = train.load_ema_params(config, workdir)
  network = model.merged(params)
  kwargs = dict(num_samples=FLAGS.num_samples, image_shape=image_shape,
                temperature=FLAGS.temperature)
  is_multiscale = isinstance(network, multiscale.MultiScale)
  if is_multiscale:
    draw = jax.jit(lambda key: multiscale.sample(network, key, **kwargs))
    cached = all(sampling.has_cached_sampler(m) for m in (network.small, network.large))
  else:
    draw = jax.jit(lambda key: (sampling.sample(network, key, **kwargs),))
    cached = sampling.has_cached_sampler(network)
  start = time.perf_counter()
  samples = jax.device_get(draw(jax.random.key(FLAGS.seed)))
  seconds = time.perf_counter() - start
  columns = min(8, FLAGS.num_samples)
  path = os.path.join(workdir, f"samples_{step}.png")
  images.save_grid(path, samples[-1], num_levels, columns=columns)
  result = {"png": path}
  if is_multiscale:
    result["small_png"] = os.path.join(workdir, f"samples_{step}_small.png")
    images.save_grid(result["small_png"], samples[0], num_levels, columns=columns)
  logging.info("Wrote %d samples to %s in %.1f s.", FLAGS.num_samples, path, seconds)
  return {**result, "step": step, "num_samples": FLAGS.num_samples, "cached_sampler": cached,
          "seconds": round(seconds, 2)}


def inpaint(config, workdir: str) -> dict:
  """Completes the lower half of the first test images: workdir/completions_<step>.png."""
  model, params, step, image_shape, num_levels = train.load_ema_params(config, workdir)
  network = model.merged(params)
  originals = data.load_dataset(config.data, config.data.eval_split).images[:FLAGS.num_samples]
  observed_rows = image_shape[0] // 2
  start = time.perf_counter()
  complete = (multiscale.complete if isinstance(network, multiscale.MultiScale)
              else sampling.complete)
  completions = jax.device_get(complete(
      network, jax.random.key(FLAGS.seed), originals, observed_rows=observed_rows,
      num_completions=FLAGS.num_completions, temperature=FLAGS.temperature))
  seconds = time.perf_counter() - start
  figure = images.completion_figure(originals, completions, num_levels, observed_rows)
  path = os.path.join(workdir, f"completions_{step}.png")
  images.save_grid(path, figure, 256, columns=FLAGS.num_completions + 2)
  logging.info("Wrote %d x %d completions to %s in %.1f s.", len(originals),
               FLAGS.num_completions, path, seconds)
  return {"png": path, "step": step, "num_images": len(originals),
          "num_completions": FLAGS.num_completions, "observed_rows": observed_rows,
          "seconds": round(seconds, 2)}


if __name__ == "__main__":
  app.run(main)
