"""PixelCNN++ on CIFAR-10: 2.92 bits/dim test NLL, 2.94 class-conditional (Salimans et
al. 2017, Table 1 and Section 3.3).

The network and recipe of the reference code's defaults (openai/pixel-cnn, train.py),
because its README says that default run is the one that reaches 2.92: 160 filters
(the paper's text says 192; the code and its README's result use 160), 5 gated ResNet
blocks per resolution, 3 resolutions, 10 mixture components, dropout 0.5, Adam at 1e-3
decayed by 0.999995 every step, with the code's moments (0.95, 0.9995) and no gradient
clipping, Polyak averaging (EMA) 0.9995, batch 128 (16 on each of its 8 GPUs). The code
runs up to 5,000 epochs (1.95M steps); 1M steps here, where the decay has brought the
rate to e^-5 of its start. One difference: the code adds Adam's 1e-8 inside the square
root, optax outside it.

Plain convolutions replace the code's weight normalisation with data-dependent
initialisation (pixelrnn/models/pixelcnn_pp.py says why).

`--config=configs/cifar10_pixelcnn_pp.py:conditional` is the class-conditional model
(the one-hot label projected into every block). TFDS downloads CIFAR-10 when online;
offline, put cifar-10-binary.tar.gz in --config.data.manual_dir.
"""

from pixelrnn import defaults

VARIANTS = ("unconditional", "conditional")


def get_config(variant: str = "unconditional"):
  if variant not in VARIANTS:
    raise ValueError(f"Unknown variant {variant!r}; valid: {VARIANTS}.")
  config = defaults.base_config()
  config.data.name = "cifar10"
  model = config.model
  model.name, model.likelihood = "pixelcnn_pp", "logistic_mixture"
  model.hidden_dim, model.num_layers, model.num_resolutions = 160, 5, 3
  model.num_mixtures, model.dropout = 10, 0.5
  model.num_classes = 10 if variant == "conditional" else 0
  training = config.training
  training.batch_size, training.num_steps, training.ema_decay = 128, 1_000_000, 0.9995
  training.eval_every_steps, training.eval_batch_size = 10_000, 100
  training.checkpoint_every_steps = 5_000
  optimizer = config.optimizer
  optimizer.name, optimizer.learning_rate, optimizer.grad_clip_norm = "adam", 1e-3, 0.0
  optimizer.adam_b1, optimizer.adam_b2 = 0.95, 0.9995
  optimizer.schedule, optimizer.decay_per_step = "exponential", 0.999995
  return config
