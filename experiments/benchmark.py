"""Train-step speed of one or more configs, measured in the same process.

  python experiments/benchmark.py --config=configs/quickstart.py \
      --config=configs/cifar10_pixelcnn.py --batch_size=16

Prints one JSON object per config: train images/s (median over timed steps after
warm-up), the step's compile time, the process's peak RSS so far, and the ratio of
its median step time to the first config's (so compare models in one run). Batches
are random images of the dataset's shape and levels, so no dataset is needed.
"""

import datetime
import json
import platform
import resource
import runpy
import statistics
import time

import jax
import numpy as np
from absl import app, flags

from pixelrnn import data as data_lib
from pixelrnn import defaults, multiscale, sampling, train

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("config", None, "Config file(s) to benchmark, in order.")
flags.DEFINE_integer("batch_size", None, "Overrides config.training.batch_size.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps after compilation.")
flags.DEFINE_integer("timed_steps", 10, "Timed steps; the median is reported.")
flags.DEFINE_integer("repeats", 1, "Times each config is benchmarked, interleaved with the "
                     "others; the summary line gives median step times and ratios.")
flags.DEFINE_bool("sample", False, "Also time the reference and cached samplers.")
flags.DEFINE_integer("reference_sub_pixels", 32, "Sub-pixels the reference sampler is timed on.")
flags.mark_flag_as_required("config")


def load_config(path: str):
  return runpy.run_path(path)["get_config"]()


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def benchmark_train_step(config, warmup_steps: int, timed_steps: int) -> dict:
  """Compiles and times the jitted train step on random batches."""
  image_shape, num_levels = data_lib.IMAGE_SPECS[config.data.name]
  trainer = train.Trainer(config, image_shape, num_levels, train.make_mesh())
  state = trainer.initial_state()
  rng = np.random.default_rng(0)
  batch_size = config.training.batch_size
  batches = [trainer.shard_batch(rng.integers(0, num_levels, (batch_size,) + image_shape,
                                              dtype=np.uint8)) for _ in range(2)]
  start = time.perf_counter()
  compiled = trainer.train_step.lower(trainer.model, state, batches[0]).compile()
  compile_s = time.perf_counter() - start
  for i in range(warmup_steps):
    state, metrics = compiled(trainer.model, state, batches[i % 2])
  jax.block_until_ready(state)
  times = []
  for i in range(timed_steps):
    start = time.perf_counter()
    state, metrics = compiled(trainer.model, state, batches[i % 2])
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  return {
      "model": config.model.name, "dataset": config.data.name, "batch_size": batch_size,
      "hidden_dim": config.model.hidden_dim, "num_layers": config.model.num_layers,
      "multiscale_factor": config.model.multiscale.factor, "compile_s": round(compile_s, 3), "train_step_s_median": round(step_s, 5),
      "train_step_s_min": round(min(times), 5), "train_step_s_max": round(max(times), 5),
      "train_images_per_s": round(batch_size / step_s, 2),
      "peak_rss_mib": round(peak_rss_mib(), 1),
  }


def timed(fn, *args) -> tuple[float, float]:
  """(compile + first run seconds, second run seconds) of a jitted function."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return first, time.perf_counter() - start


def benchmark_multiscale_sampling(network, batch: int, image_shape) -> dict:
  """Seconds for a batch of two-stage samples with the cached samplers, and for the
  small stage alone."""
  f = network.factor
  small_shape = (image_shape[0] // f, image_shape[1] // f, image_shape[2])
  key = jax.random.key(0)
  both = jax.jit(lambda k: multiscale.sample(network, k, num_samples=batch,
                                             image_shape=image_shape))
  small = jax.jit(lambda k: sampling.sample(network.small, k, num_samples=batch,
                                            image_shape=small_shape))
  both_first, both_s = timed(both, key)
  _, small_s = timed(small, key)
  return {"sample_batch": batch, "multiscale_cached_s_per_image_batch": round(both_s, 3),
          "multiscale_cached_s_per_image": round(both_s / batch, 4),
          "small_stage_s_per_image_batch": round(small_s, 3),
          "multiscale_cached_compile_s": round(both_first - both_s, 3),
          "peak_rss_mib": round(peak_rss_mib(), 1)}


def benchmark_sampling(config, reference_sub_pixels: int) -> dict:
  """Seconds per sub-pixel and per image of both samplers, on random parameters.

  The reference sampler runs only the last `reference_sub_pixels` sub-pixels (the
  earlier ones observed): its cost per sub-pixel does not depend on which one it is.
  The cached sampler generates whole images.
  """
  image_shape, num_levels = data_lib.IMAGE_SPECS[config.data.name]
  trainer = train.Trainer(config, image_shape, num_levels, train.make_mesh(jax.local_devices()[:1]))
  network = trainer.model.merged(trainer.initial_state().ema_params)
  batch = config.training.batch_size
  if isinstance(network, multiscale.MultiScale):
    return benchmark_multiscale_sampling(network, batch, image_shape)
  total = int(np.prod(image_shape))
  key = jax.random.key(0)
  observed = np.zeros((batch,) + image_shape, np.int32)
  reference = jax.jit(lambda k: sampling.sample_reference(
      network, k, num_samples=batch, image_shape=image_shape, images=observed,
      num_observed=total - reference_sub_pixels))
  ref_compile, ref_s = timed(reference, key)
  result = {"sample_batch": batch, "sub_pixels_per_image": total,
            "reference_s_per_sub_pixel": round(ref_s / reference_sub_pixels, 6),
            "reference_s_per_image_batch": round(ref_s / reference_sub_pixels * total, 2),
            "reference_compile_s": round(ref_compile - ref_s, 3)}
  if sampling.has_cached_sampler(network):
    cached = jax.jit(lambda k: sampling.sample(
        network, k, num_samples=batch, image_shape=image_shape, cached=True))
    cached_first, cached_s = timed(cached, key)
    result.update({
        "cached_s_per_sub_pixel": round(cached_s / total, 6),
        "cached_s_per_image_batch": round(cached_s, 3),
        "cached_s_per_image": round(cached_s / batch, 4),
        "cached_compile_s": round(cached_first - cached_s, 3),
        "cached_speedup_per_sub_pixel": round(ref_s / reference_sub_pixels / (cached_s / total), 1),
    })
  result["peak_rss_mib"] = round(peak_rss_mib(), 1)
  return result


def main(argv):
  del argv
  header = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
            "machine": platform.processor() or platform.machine()}
  configs = {path: load_config(path) for path in FLAGS.config}
  for config in configs.values():
    if FLAGS.batch_size is not None:
      config.training.batch_size = FLAGS.batch_size
    defaults.validate(config)
  first_step_s = None
  step_times = {path: [] for path in configs}
  for repeat in range(FLAGS.repeats):
    for path, config in configs.items():
      result = benchmark_train_step(config, FLAGS.warmup_steps, FLAGS.timed_steps)
      first_step_s = first_step_s or result["train_step_s_median"]
      result["step_time_ratio_to_first"] = round(result["train_step_s_median"] / first_step_s, 3)
      step_times[path].append(result["train_step_s_median"])
      if FLAGS.sample and repeat == 0:
        result.update(benchmark_sampling(config, FLAGS.reference_sub_pixels))
      print(json.dumps({"config": path, "repeat": repeat, **result, **header}), flush=True)
  if FLAGS.repeats > 1:
    medians = {path: statistics.median(times) for path, times in step_times.items()}
    first = medians[FLAGS.config[0]]
    print(json.dumps({"summary": {path: {"median_step_s": round(m, 5),
                                         "ratio_to_first": round(m / first, 3)}
                                  for path, m in medians.items()},
                      "repeats": FLAGS.repeats, **header}), flush=True)

if __name__ == "__main__":
  app.run(main)
