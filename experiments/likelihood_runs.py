"""The runs experiments/compare_likelihoods.py trains, by dataset, and their sizes.

Kept apart from the script, which defines command-line flags, so that tests can read
the runs without defining them twice in one process.
"""

import jax
from flax import nnx

from pixelrnn import cli
from pixelrnn.data import datasets
from pixelrnn.models import registry

# Dataset -> run name -> (config, overrides of its model keys).
RUNS = {
  # The mixture PixelCNN is the softmax one's network (7 blocks, a 256-unit output layer)
  # with the mixture head, widened from h=32 to h=40: 179,166 parameters against 179,712.
  "mnist": {
    "softmax_pixelcnn": ("configs/mnist_pixelcnn.py", {}),
    "mixture_pixelcnn": (
      "configs/mnist_pixelcnn.py",
      {"likelihood": "logistic_mixture", "num_mixtures": 10, "hidden_dim": 40},
    ),
    "mixture_pixelcnn_pp": ("configs/mnist_pixelcnn_pp.py:quick", {}),
  },
  # 7 blocks of h=48 and 768 logits per pixel (447,424 parameters); the mixture PixelCNN
  # at h=64 (452,196); PixelCNN++ with 28 filters and 10 components (442,052).
  "cifar10_first4000": {
    "softmax_pixelcnn": (
      "configs/cifar10_pixelcnn.py",
      {"hidden_dim": 48, "num_layers": 7, "output_dim": 256},
    ),
    "mixture_pixelcnn": (
      "configs/cifar10_pixelcnn.py",
      {
        "hidden_dim": 64,
        "num_layers": 7,
        "output_dim": 256,
        "likelihood": "logistic_mixture",
        "num_mixtures": 10,
      },
    ),
    "mixture_pixelcnn_pp": (
      "configs/mnist_pixelcnn_pp.py:quick",
      {"hidden_dim": 28, "num_mixtures": 10},
    ),
  },
}


def parameter_count(config_path: str, model_overrides: dict, dataset: str) -> int:
  config = cli.load_config(config_path)
  config.data.name = dataset
  config.model.update(model_overrides)
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  state = jax.eval_shape(
    lambda: nnx.state(
      registry.create(
        config.model, image_shape=image_shape, num_levels=num_levels, rngs=nnx.Rngs(0)
      ),
      nnx.Param,
    )
  )
  return int(sum(leaf.size for leaf in jax.tree.leaves(state)))
