"""What experiments/benchmark.py measures: the training loop's step, both samplers, the
matrix-product peak of the machine, and the visible multiply-adds a step's GFLOP/s
counts. Batches are random images of the dataset's shape and levels."""

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixelrnn import distributions
from pixelrnn.data import datasets
from pixelrnn.layers import convolution, masks
from pixelrnn.models import multiscale, registry
from pixelrnn.sampling import samplers
from pixelrnn.training import trainer as trainer_lib


def matmul_peak_gflops(size: int = 2048, calls: int = 5) -> float:
  """GFLOP/s of a (size, size) float32 matrix product: the best of `calls`."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  product = jax.jit(lambda a: a @ a)
  jax.block_until_ready(product(a))
  best = float("inf")
  for _ in range(calls):
    start = time.perf_counter()
    jax.block_until_ready(product(a))
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9


def visible_macs_per_image(config) -> int | None:
  """Multiply-adds of one forward pass that the masks let through. A PixelCNN: its
  kernels' nonzero mask entries, at every pixel. Another single-scale model: what its
  forward pass computes with the masked convolutions in the visible-taps form
  (experiments/arithmetic.py's count: the visible taps, every LSTM product); None for a
  multi-scale model."""
  if config.model.multiscale.factor > 1:
    return None
  if config.model.name != "pixelcnn":
    import arithmetic  # experiments/arithmetic.py, beside this script.

    with convolution.masked_conv_form("taps"):
      return arithmetic.forward_counts(config, batch_size=2)["forward_macs_per_image"]
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  network = registry.create(
    config.model, image_shape=image_shape, num_levels=num_levels, rngs=nnx.Rngs(0)
  )
  pixels = image_shape[0] * image_shape[1]
  return int(
    sum(
      np.asarray(layer.conv.mask[...]).sum() * pixels
      for _, layer in nnx.iter_graph(network)
      if isinstance(layer, masks.MaskedConv)
    )
  )


def throughput(config, step_s: float, peak: float | None) -> dict:
  """A train step's GFLOP/s counting only visible multiply-adds (2 flops each, forward
  and the two backward products), and its fraction of the measured peak."""
  macs = visible_macs_per_image(config)
  if macs is None:
    return {}
  gflops = 6 * macs * config.training.batch_size / step_s / 1e9
  result = {
    "visible_gflop_per_step": round(6 * macs * config.training.batch_size / 1e9, 3),
    "visible_gflops_per_s": round(gflops, 1),
  }
  if peak:
    result["fraction_of_peak"] = round(gflops / peak, 3)
  return result


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def benchmark_train_step(
  config, warmup_steps: int, timed_steps: int, steps_per_dispatch: int
) -> dict:
  """Compiles and times the training loop's step on random images of the dataset's shape.

  steps_per_dispatch k >= 1: the loop's path (`Trainer.train_steps`), the training set on
  the device, k steps per call. k = 0: each step's batch copied from the host and one
  step per call (the loop before device-resident data). Calls are dispatched without
  waiting, as the loop does, and the time per step is the wall time of all timed steps
  divided by their number.
  """
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = trainer_lib.Trainer(config, image_shape, num_levels, trainer_lib.make_mesh())
  state = trainer.initial_state()
  k = max(steps_per_dispatch, 1)
  batch_data, indices = _train_inputs(trainer, config, steps_per_dispatch, image_shape, num_levels)
  count = np.int32(k)
  start = time.perf_counter()
  compiled = trainer.train_steps.lower(
    trainer.model, state, batch_data(0), indices[0], count
  ).compile()
  compile_s = time.perf_counter() - start

  def run(state, i):
    return compiled(trainer.model, state, batch_data(i), indices[i % 2], count)[0]

  calls = lambda steps: -(-steps // k)
  for i in range(calls(warmup_steps)):
    state = run(state, i)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(calls(timed_steps)):
    state = run(state, i)
  jax.block_until_ready(state)
  # Rounded once, so that the images/s recorded beside it follow from the recorded value.
  step_s = round((time.perf_counter() - start) / (calls(timed_steps) * k), 6)
  return _step_record(config, steps_per_dispatch, compile_s, step_s, calls(timed_steps) * k)


def _train_inputs(trainer, config, steps_per_dispatch: int, image_shape, num_levels):
  """(batch_data(i), two index arrays): the data of call i and the batches it gathers;
  random images (and labels, for a class-conditional model) of the dataset's shape."""
  rng = np.random.default_rng(0)
  batch_size = config.training.batch_size
  k = max(steps_per_dispatch, 1)
  host_images = rng.integers(0, num_levels, (4 * k * batch_size,) + image_shape, dtype=np.uint8)
  host_labels = (
    rng.integers(0, config.model.num_classes, host_images.shape[0], dtype=np.int32)
    if config.model.num_classes
    else None
  )
  if steps_per_dispatch == 0:
    host_batches = np.split(host_images, 4)
    label_batches = np.split(host_labels, 4) if host_labels is not None else [None] * 4
    indices = [np.arange(batch_size, dtype=np.int32)[None]] * 2
    # A copy per step.
    return lambda i: trainer.device_data(host_batches[i % 4], label_batches[i % 4]), indices
  device_images = trainer.device_data(host_images, host_labels)
  indices = [
    rng.permutation(host_images.shape[0])[: k * batch_size].reshape(k, batch_size).astype(np.int32)
    for _ in range(2)
  ]
  return lambda i: device_images, indices


def _step_record(config, steps_per_dispatch: int, compile_s: float, step_s: float, timed: int):
  device = jax.devices()[0]
  batch_size = config.training.batch_size
  return {
    "model": config.model.name,
    "dataset": config.data.name,
    "batch_size": batch_size,
    "hidden_dim": config.model.hidden_dim,
    "num_layers": config.model.num_layers,
    "multiscale_factor": config.model.multiscale.factor,
    "precision": config.training.precision,
    "steps_per_dispatch": steps_per_dispatch,
    "pallas_lstm": config.model.pallas_lstm,
    "loop": "host batches" if steps_per_dispatch == 0 else "device-resident data",
    "device_kind": device.device_kind,
    "platform": device.platform,
    "device_count": jax.device_count(),
    "compile_s": round(compile_s, 3),
    "train_step_s": step_s,
    "timed_steps": timed,
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
  both = jax.jit(
    lambda k: multiscale.sample(network, k, num_samples=batch, image_shape=image_shape)
  )
  small = jax.jit(
    lambda k: samplers.sample(network.small, k, num_samples=batch, image_shape=small_shape)
  )
  both_first, both_s = timed(both, key)
  _, small_s = timed(small, key)
  return {
    "sample_batch": batch,
    "multiscale_cached_s_per_image_batch": round(both_s, 3),
    "multiscale_cached_s_per_image": round(both_s / batch, 4),
    "small_stage_s_per_image_batch": round(small_s, 3),
    "multiscale_cached_compile_s": round(both_first - both_s, 3),
    "peak_rss_mib": round(peak_rss_mib(), 1),
  }


def benchmark_sampling(config, reference_sub_pixels: int) -> dict:
  """Seconds per sub-pixel and per image of both samplers, on random parameters.

  The reference sampler runs only the last `reference_sub_pixels` sub-pixels (the
  earlier ones observed): its cost per sub-pixel does not depend on which one it is.
  The cached sampler generates whole images.
  """
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  trainer = trainer_lib.Trainer(
    config, image_shape, num_levels, trainer_lib.make_mesh(jax.local_devices()[:1])
  )
  network = trainer.model.merged(trainer.initial_state().ema_params)
  batch = config.training.batch_size
  if isinstance(network, multiscale.MultiScale):
    return benchmark_multiscale_sampling(network, batch, image_shape)
  total = int(np.prod(image_shape))
  distribution = distributions.of(network)
  if distribution.draws_whole_pixels:  # Whole pixels only: round up to a multiple of C.
    reference_sub_pixels = -(-reference_sub_pixels // image_shape[-1]) * image_shape[-1]
  key = jax.random.key(0)
  observed = np.zeros((batch,) + image_shape, np.int32)
  # A class-conditional model draws every class in turn.
  conditioning = trainer.model.class_conditioning(
    np.arange(batch) % max(config.model.num_classes, 1), image_shape
  )
  apply_fn = network if conditioning is None else (lambda x: network(x, conditioning))
  reference = jax.jit(
    lambda k: samplers.sample_reference(
      apply_fn,
      k,
      num_samples=batch,
      image_shape=image_shape,
      images=observed,
      num_observed=total - reference_sub_pixels,
      distribution=distribution,
    )
  )
  ref_compile, ref_s = timed(reference, key)
  result = {
    "sample_batch": batch,
    "sub_pixels_per_image": total,
    "reference_s_per_sub_pixel": round(ref_s / reference_sub_pixels, 6),
    "reference_s_per_image_batch": round(ref_s / reference_sub_pixels * total, 2),
    "reference_compile_s": round(ref_compile - ref_s, 3),
  }
  if samplers.has_cached_sampler(network):
    ref_per_sub_pixel = ref_s / reference_sub_pixels
    result.update(
      _cached_sampler_times(network, key, batch, image_shape, conditioning, ref_per_sub_pixel)
    )
  result["peak_rss_mib"] = round(peak_rss_mib(), 1)
  return result


def _cached_sampler_times(network, key, batch, image_shape, conditioning, ref_per_sub_pixel):
  total = int(np.prod(image_shape))
  cached = jax.jit(
    lambda k: samplers.sample(
      network,
      k,
      num_samples=batch,
      image_shape=image_shape,
      cached=True,
      conditioning=conditioning,
    )
  )
  cached_first, cached_s = timed(cached, key)
  return {
    "cached_s_per_sub_pixel": round(cached_s / total, 6),
    "cached_s_per_image_batch": round(cached_s, 3),
    "cached_s_per_image": round(cached_s / batch, 4),
    "cached_compile_s": round(cached_first - cached_s, 3),
    "cached_speedup_per_sub_pixel": round(ref_per_sub_pixel / (cached_s / total), 1),
  }
