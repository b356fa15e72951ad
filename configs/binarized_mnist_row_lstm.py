"""Row LSTM on binarized MNIST: the paper's Table 4 row, 80.54 nats test NLL.

7 Row LSTM layers of h=16 hidden units (32 features between layers), residual
connections, as for the paper's MNIST models.
"""

from pixelrnn import defaults, recipes


def get_config(recipe: str = "paper"):
  """The row on `recipe`: "paper" (the paper's batch 16 and schedule) or "large_batch"
  (`--config=<this file>:large_batch`; see `recipes.large_batch`)."""
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "row_lstm"
  config.model.hidden_dim = 16
  config.model.num_layers = 7
  config.model.output_dim = 32
  config.model.residual = True
  config.model.skip = False
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.steps_per_dispatch = 10  # Speed only: the results do not depend on it.
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return recipes.apply(recipes.validation_curve(config), recipe)
