"""Multi-scale PixelCNN on binarized MNIST (the paper's Section 3.5 model, with PixelCNNs).

A 14x14 PixelCNN models every second pixel of every second row; a 28x28 PixelCNN,
conditioned on that subsample through a 32-channel conditioning map, models the
other 588 pixels. The paper reports multi-scale results only for ImageNet; compare
with the single-scale configs/binarized_mnist_pixelcnn.py (paper: 81.30 nats).
The test NLL is of the whole 28x28 image, in the same units.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "pixelcnn"  # The large, conditional network.
  config.model.hidden_dim = 16
  config.model.num_layers = 7
  config.model.output_dim = 32
  config.model.multiscale.factor = 2  # 28x28 -> 14x14.
  config.model.multiscale.conditioning_dim = 32
  config.model.multiscale.embedding_layers = 2
  config.model.multiscale.small.name = "pixelcnn"
  config.model.multiscale.small.hidden_dim = 16
  config.model.multiscale.small.num_layers = 5
  config.model.multiscale.small.output_dim = 32
  config.training.multiscale_objective = "joint"
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.eval_every_steps = 10_000
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
