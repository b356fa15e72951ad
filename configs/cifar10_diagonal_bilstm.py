"""Diagonal BiLSTM on CIFAR-10: the paper's best model, 3.00 bits/dim test NLL (Table 5).

12 layers of h=128 hidden units (256 features between layers, split into R, G, B
groups), 1024 units in the output layer, residual and skip connections. TFDS
downloads CIFAR-10 when online; offline, put cifar-10-binary.tar.gz in
--config.data.manual_dir.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.name = "diagonal_bilstm"
  config.model.hidden_dim = 128
  config.model.num_layers = 12
  config.model.output_dim = 1024
  config.model.residual = True
  config.model.skip = True
  config.training.batch_size = 16
  config.training.num_steps = 500_000
  config.training.eval_every_steps = 20_000
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
