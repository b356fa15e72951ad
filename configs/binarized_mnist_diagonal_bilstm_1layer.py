"""A single-layer Diagonal BiLSTM (h=32) on binarized MNIST: 80.75 nats test NLL in the
paper's Table 4, showing how much one layer with the complete context already does."""

from pixelrnn import defaults, recipes


def get_config(recipe: str = "paper"):
  """The row on `recipe`: "paper" (the paper's batch 16 and schedule) or "large_batch"
  (`--config=<this file>:large_batch`; see `recipes.large_batch`)."""
  config = defaults.base_config()
  config.data.name = "binarized_mnist"
  config.model.name = "diagonal_bilstm"
  config.model.hidden_dim = 32
  config.model.num_layers = 1
  config.model.output_dim = 64
  config.model.residual = True
  config.model.skip = False
  config.training.batch_size = 16
  config.training.num_steps = 200_000
  config.training.steps_per_dispatch = 10  # Speed only: the results do not depend on it.
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 1e-3
  return recipes.apply(recipes.validation_curve(config), recipe)
