"""A small class-conditional Gated PixelCNN on labelled binary MNIST, for 2 CPU cores.

`mnist_thresholded` (MNIST thresholded at 128, labels kept) comes through TFDS:
offline, add --config.data.manual_dir=../shared/data/mnist. The samples after
training are one row per digit. The same network unconditional, for comparison:
--config.model.num_classes=0.

Ten layers (a 7x7 window, then 3x3) let a pixel's logits see 13 rows up and 12 columns
to either side, enough for a whole digit: with five (8 rows, 7 columns) the rows of
0 and 1 were not their digits, and 4 only in part. About 30 min alone on 2 cores.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "mnist_thresholded"
  config.model.name = "gated_pixelcnn"
  config.model.num_classes = 10
  config.model.hidden_dim = 16
  config.model.num_layers = 10
  config.model.output_dim = 32
  config.training.batch_size = 32
  config.training.num_steps = 3_000
  config.training.log_every_steps = 50
  config.training.eval_every_steps = 1_000
  config.training.eval_batch_size = 500
  config.training.checkpoint_every_steps = 500
  config.training.steps_per_dispatch = 10
  config.training.ema_decay = 0.999
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  return config
