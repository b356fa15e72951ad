"""PixelCNN on binarized MNIST: the paper's Table 4 row, 81.30 nats test NLL.

The paper gives no PixelCNN-specific MNIST width; like its MNIST recurrent models we
use h=16 (32 features between blocks) and 7 residual blocks.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "pixelcnn"
  config.model.hidden_dim = 16
  config.model.num_layers = 7
  config.model.output_dim = 32
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.eval_every_steps = 10_000
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
