"""The quickstart PixelCNN as a multi-scale model: the single-scale/multi-scale comparison.

The large, conditional network and the training schedule are configs/quickstart.py's
(PixelCNN 4 blocks h=16, 2,500 steps of batch 32); a second 4-block PixelCNN models
the 14x14 subsample first. experiments/compare_multiscale.py trains both configs and
records their test NLL.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "pixelcnn"
  config.model.hidden_dim = 16
  config.model.num_layers = 4
  config.model.output_dim = 32
  config.model.multiscale.factor = 2
  config.model.multiscale.conditioning_dim = 16
  config.model.multiscale.embedding_layers = 2
  config.model.multiscale.small.name = "pixelcnn"
  config.model.multiscale.small.hidden_dim = 16
  config.model.multiscale.small.num_layers = 4
  config.model.multiscale.small.output_dim = 32
  config.training.multiscale_objective = "joint"
  config.training.batch_size = 32
  config.training.num_steps = 2_500
  config.training.log_every_steps = 50
  config.training.eval_every_steps = 1_250
  config.training.eval_batch_size = 500
  config.training.checkpoint_every_steps = 500
  config.training.ema_decay = 0.999
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  return config
