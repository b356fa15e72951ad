"""Gated PixelCNN on binarized MNIST: 80.10 nats test NLL.

Source: Gulrajani et al. 2016 (PixelVAE), Table 1, reports a Gated PixelCNN at 80.10
nats on statically binarized MNIST; the network behind that number is not given
there. This one: 15 gated layers of p = 32 (a 7x7 first layer, then 3x3, so a
pixel's logits see the rows above and its own row within 17 columns of it, with no
blind spot), with the PixelCNN row's recipe (RMSProp 1e-3, batch 16).
"""

from pixelrnn import defaults, recipes


def get_config():
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "gated_pixelcnn"
  config.model.hidden_dim = 32
  config.model.num_layers = 15
  config.model.output_dim = 64
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.steps_per_dispatch = 10  # Speed only: the results do not depend on it.
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return recipes.validation_curve(config)
