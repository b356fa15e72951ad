"""Class-conditional Gated PixelCNN on labelled binary MNIST.

The fixed binarized MNIST (the paper's data) has no labels, so this config uses
`mnist_thresholded`: TFDS MNIST with each pixel 1 where its intensity is >= 128, and
the digit labels kept (deterministic thresholding, not sampled binarization; its NLL
is therefore not comparable with the binarized-MNIST table). Every layer of both
stacks adds a projection of the one-hot label. Compare with the same network
unconditional: --config.model.num_classes=0.

Offline: --config.data.manual_dir=../shared/data/mnist (the four original .gz files).
`--mode=sample` draws one row per digit; `--label=k` draws digit k only.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "mnist_thresholded"
  config.model.name = "gated_pixelcnn"
  config.model.num_classes = 10
  config.model.hidden_dim = 32
  config.model.num_layers = 15
  config.model.output_dim = 64
  config.training.batch_size = 16
  config.training.num_steps = 100_000
  config.training.eval_every_steps = 10_000
  config.training.steps_per_dispatch = 10  # Speed only: the results do not depend on it.
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
