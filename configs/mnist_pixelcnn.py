"""PixelCNN on 8-bit MNIST (256-way softmax per pixel), built offline through TFDS.

Offline: --config.data.manual_dir=../shared/data/mnist (the four original .gz files).
Reported in bits/dim. The paper does not report this setting.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "mnist"
  config.model.name = "pixelcnn"
  config.model.hidden_dim = 32
  config.model.num_layers = 7
  config.model.output_dim = 256
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.eval_every_steps = 10_000
  return config
