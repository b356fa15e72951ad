"""Multi-scale Row LSTM on binarized MNIST (the paper's Section 3.5 model).

A 14x14 Row LSTM (4 layers, h=16) models every second pixel of every second row; a
28x28 Row LSTM (7 layers, h=16, as configs/binarized_mnist_row_lstm.py, paper:
80.54 nats single-scale), conditioned on that subsample through a 32-channel
conditioning map added to every layer's input-to-state pre-activations, models the
other 588 pixels. The paper reports multi-scale results only for ImageNet.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "row_lstm"  # The large, conditional network.
  config.model.hidden_dim = 16
  config.model.num_layers = 7
  config.model.output_dim = 32
  config.model.residual = True
  config.model.skip = False
  config.model.multiscale.factor = 2  # 28x28 -> 14x14.
  config.model.multiscale.conditioning_dim = 32
  config.model.multiscale.embedding_layers = 2
  config.model.multiscale.small.name = "row_lstm"
  config.model.multiscale.small.hidden_dim = 16
  config.model.multiscale.small.num_layers = 4
  config.model.multiscale.small.output_dim = 32
  config.model.multiscale.small.residual = True
  config.model.multiscale.small.skip = False
  config.training.multiscale_objective = "joint"
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.eval_every_steps = 10_000
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return config
