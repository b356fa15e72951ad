"""PixelCNN++ on 8-bit MNIST (a discretized logistic mixture per pixel), reported in
bits/dim. Neither paper reports this setting: the CIFAR-10 recipe
(configs/cifar10_pixelcnn_pp.py) at a width fit for 28x28 grey digits.

3 resolutions (28, 14, 7), 64 filters, 5 blocks per resolution, 5 components (one
channel has no colour coefficients to share them), dropout 0.5, batch 16.

Offline: --config.data.manual_dir=../shared/data/mnist (the four original .gz files).
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "mnist"
  model = config.model
  model.name, model.likelihood = "pixelcnn_pp", "logistic_mixture"
  model.hidden_dim, model.num_layers, model.num_resolutions = 64, 5, 3
  model.num_mixtures, model.dropout = 5, 0.5
  training = config.training
  training.batch_size, training.num_steps, training.ema_decay = 16, 200_000, 0.9995
  training.eval_every_steps = 10_000
  optimizer = config.optimizer
  optimizer.name, optimizer.learning_rate, optimizer.grad_clip_norm = "adam", 1e-3, 0.0
  optimizer.schedule, optimizer.decay_per_step = "exponential", 0.99999
  return config
