"""PixelCNN++ on 8-bit MNIST (a discretized logistic mixture per pixel), reported in
bits/dim. Neither paper reports this setting: the CIFAR-10 recipe
(configs/cifar10_pixelcnn_pp.py) at a width fit for 28x28 grey digits.

3 resolutions (28, 14, 7), 64 filters, 5 blocks per resolution, 5 components, dropout
0.5, batch 16.

`--config=configs/mnist_pixelcnn_pp.py:quick` visibly learns in minutes on 2 CPU cores:
18 filters, one block per resolution (182k parameters, as many as
configs/mnist_pixelcnn.py's softmax PixelCNN: experiments/compare_likelihoods.py trains
them side by side), no dropout (a run this short does not overfit), 3,000 steps of Adam
1e-3: test NLL from about 8 bits/dim (uniform) to 1.18, in 9.5 minutes on 2 cores beside a
background job, compilation, evaluation and samples included.

Offline: --config.data.manual_dir=../shared/data/mnist (the four original .gz files).
"""

from pixelrnn import defaults

VARIANTS = ("full", "quick")


def get_config(variant: str = "full"):
  if variant not in VARIANTS:
    raise ValueError(f"Unknown variant {variant!r}; valid: {VARIANTS}.")
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
  if variant == "quick":
    model.hidden_dim, model.num_layers, model.dropout = 18, 1, 0.0
    training.num_steps, training.ema_decay, training.log_every_steps = 3_000, 0.999, 100
    training.eval_every_steps, training.eval_batch_size = 1_500, 500
    training.checkpoint_every_steps = 500
    optimizer.schedule, optimizer.grad_clip_norm = "constant", 1.0
  return config
