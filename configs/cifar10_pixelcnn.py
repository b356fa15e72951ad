"""PixelCNN on CIFAR-10: the paper's Table 5 row, 3.14 bits/dim test NLL.

15 residual blocks, h=128 (256 features between blocks), 1024 units in the output
layer, 256-way softmax per sub-pixel with R, G, B masks. TFDS downloads CIFAR-10
when online; offline, put cifar-10-binary.tar.gz in --config.data.manual_dir.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.name = "pixelcnn"
  config.model.hidden_dim = 128
  config.model.num_layers = 15
  config.model.output_dim = 1024
  config.training.batch_size = 16
  config.training.num_steps = 500_000
  config.training.eval_every_steps = 20_000
  config.training.eval_batch_size = 100
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
