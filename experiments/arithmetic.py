"""Multiply-accumulates and transcendental functions of one forward pass, per image.

  python experiments/arithmetic.py --config=configs/binarized_mnist_pixelcnn.py \
      --config=configs/binarized_mnist_row_lstm.py --config=configs/binarized_mnist_diagonal_bilstm.py

Counts what the implementation computes, from the model's jaxpr: every `dot_general` and
convolution (dense, so masked-out weights count too), and every element of tanh, logistic,
exp and log. Loops count once per iteration (`scan` bodies times their length), which
XLA's own cost analysis does not do. Prints one JSON object per config, with the ratio of
its multiply-accumulates to the first config's: a lower bound on the ratio of train-step
times when both run at the same arithmetic efficiency.
"""

import json
import math

import jax
import jax.numpy as jnp
from absl import flags
from flax import nnx

from pixelrnn import cli
from pixelrnn.data import datasets
from pixelrnn.models import registry

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags, defined only when run as a script: benchmark.py imports
  this module for its counts and has flags of the same names."""
  flags.DEFINE_multi_string("config", None, "Config file(s), in order.")
  flags.DEFINE_integer("batch_size", 4, "Images traced; the counts are divided by it.")
  flags.mark_flag_as_required("config")


TRANSCENDENTAL = frozenset({"tanh", "logistic", "exp", "exp2", "log", "log1p", "expm1"})


def _sub_jaxprs(params):
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jax.extend.core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jax.extend.core.Jaxpr):
        yield item


def count(jaxpr) -> tuple[int, int]:
  """(multiply-accumulates, transcendental elements) of a jaxpr, loops unrolled."""
  macs = transcendental = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    out = eqn.outvars[0].aval.shape if eqn.outvars else ()
    if name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      macs += math.prod(out) * math.prod(lhs[d] for d in lhs_contract)
    elif name == "conv_general_dilated":
      rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
      kernel = eqn.invars[1].aval.shape
      macs += math.prod(out) * kernel[rhs_spec[1]] * math.prod(kernel[d] for d in rhs_spec[2:])
    elif name in TRANSCENDENTAL:
      transcendental += math.prod(out)
    elif name == "while":
      raise ValueError("a while loop's trip count is unknown; use lax.scan")
    else:
      repeat = eqn.params["length"] if name == "scan" else 1
      inner = [count(sub) for sub in _sub_jaxprs(eqn.params)]
      if name == "cond":  # One branch runs: count the dearest.
        inner = [max(inner)] if inner else []
      macs += repeat * sum(m for m, _ in inner)
      transcendental += repeat * sum(t for _, t in inner)
  return macs, transcendental


def forward_counts(config, batch_size: int) -> dict:
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  if config.model.multiscale.factor != 1:
    raise ValueError(
      f"{config.model.name}: multi-scale configs are not counted; count their "
      "small and large networks' single-scale configs instead."
    )
  model = registry.create(
    config.model, image_shape=image_shape, num_levels=num_levels, rngs=nnx.Rngs(0)
  )
  images = jnp.zeros((batch_size,) + image_shape, jnp.float32)
  graph, state = nnx.split(model)
  jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graph, s)(x))(state, images)
  macs, transcendental = count(jaxpr.jaxpr)
  return {
    "forward_macs_per_image": macs // batch_size,
    "forward_transcendentals_per_image": transcendental // batch_size,
  }


def main(argv):
  del argv
  first = None
  for path in FLAGS.config:
    config = cli.load_config(path)
    result = {
      "config": path,
      "model": config.model.name,
      "num_layers": config.model.num_layers,
      "hidden_dim": config.model.hidden_dim,
      **forward_counts(config, FLAGS.batch_size),
    }
    first = first or result["forward_macs_per_image"]
    result["macs_ratio_to_first"] = round(result["forward_macs_per_image"] / first, 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
