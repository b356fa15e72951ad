"""Gated PixelCNN on CIFAR-10: 3.03 bits/dim test NLL.

Source: van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN
Decoders" (arXiv:1606.05328), Table 1: Gated PixelCNN 3.03 bits/dim on CIFAR-10.

Network size: that paper does not state the size of its CIFAR-10 network. The one
size it gives (Sec. 3.1) is for the larger ImageNet model of its Table 2: 20 layers
of 384 hidden units with 5x5 filters. Its Table 1 compares the gated network with the
PixelRNN paper's CIFAR-10 PixelCNN (3.14), whose size that paper does state: 15
layers, h = 128 (configs/cifar10_pixelcnn.py). This config keeps that size, 15 gated
layers of p = 128 (256 pre-activations per stack, a 7x7 first layer, then 3x3) and
1024 units in the output layer, so that the gated layers are the one difference
between the two rows.

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
