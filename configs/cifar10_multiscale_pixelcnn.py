"""Multi-scale PixelCNN on CIFAR-10 (the paper's Section 3.5 model, with PixelCNNs).

A 16x16 PixelCNN (8 blocks, h=128) models every second pixel of every second row; a
32x32 PixelCNN (15 blocks, h=128, as configs/cifar10_pixelcnn.py, paper: 3.14
bits/dim single-scale), conditioned on that subsample through a 64-channel
conditioning map, models the other 768 pixels. Bits/dim are of the whole 32x32x3
image. TFDS downloads CIFAR-10 when online; offline, put cifar-10-binary.tar.gz in
--config.data.manual_dir.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.name = "pixelcnn"  # The large, conditional network.
  config.model.hidden_dim = 128
  config.model.num_layers = 15
  config.model.output_dim = 1024
  config.model.multiscale.factor = 2  # 32x32 -> 16x16.
  config.model.multiscale.conditioning_dim = 64
  config.model.multiscale.embedding_layers = 3
  config.model.multiscale.small.name = "pixelcnn"
  config.model.multiscale.small.hidden_dim = 128
  config.model.multiscale.small.num_layers = 8
  config.model.multiscale.small.output_dim = 1024
  config.training.multiscale_objective = "joint"
  config.training.batch_size = 16
  config.training.num_steps = 500_000
  config.training.eval_every_steps = 20_000
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
