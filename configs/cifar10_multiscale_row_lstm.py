"""Multi-scale Row LSTM on CIFAR-10 (the paper's Section 3.5 model).

A 16x16 Row LSTM (6 layers, h=128) models every second pixel of every second row; a
32x32 Row LSTM (12 layers, h=128, residual and skip connections, as
configs/cifar10_row_lstm.py, paper: 3.07 bits/dim single-scale), conditioned on that
subsample through a 64-channel conditioning map added to every layer's
input-to-state pre-activations, models the other 768 pixels. TFDS downloads
CIFAR-10 when online; offline, put cifar-10-binary.tar.gz in --config.data.manual_dir.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.name = "row_lstm"  # The large, conditional network.
  config.model.hidden_dim = 128
  config.model.num_layers = 12
  config.model.output_dim = 1024
  config.model.residual = True
  config.model.skip = True
  config.model.multiscale.factor = 2  # 32x32 -> 16x16.
  config.model.multiscale.conditioning_dim = 64
  config.model.multiscale.embedding_layers = 3
  config.model.multiscale.small.name = "row_lstm"
  config.model.multiscale.small.hidden_dim = 128
  config.model.multiscale.small.num_layers = 6
  config.model.multiscale.small.output_dim = 1024
  config.model.multiscale.small.residual = True
  config.model.multiscale.small.skip = True
  config.training.multiscale_objective = "joint"
  config.training.batch_size = 16
  config.training.num_steps = 500_000
  config.training.eval_every_steps = 20_000
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
