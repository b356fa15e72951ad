"""Gated PixelCNN on CIFAR-10: 3.03 bits/dim test NLL.

Source: van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN
Decoders" (arXiv:1606.05328), Table 1: Gated PixelCNN 3.03 bits/dim on CIFAR-10.
Network: 15 gated layers of p = 128 (256 pre-activations per stack, a 7x7 first
layer, then 3x3) and 1024 units in the output layer, the width of the PixelCNN row
(configs/cifar10_pixelcnn.py), so that the two rows compare the layers rather than
their size. The paper's own CIFAR-10 layer count and width are not restated here:
they have not been checked against the paper's text, so treat this size as ours.
TFDS downloads CIFAR-10 when online; offline, put cifar-10-binary.tar.gz in
--config.data.manual_dir.
"""

from pixelrnn import defaults


def get_config():
  config = defaults.base_config()
  config.data.name = "cifar10"
  config.model.name = "gated_pixelcnn"
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
