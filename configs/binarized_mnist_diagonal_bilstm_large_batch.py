"""Diagonal BiLSTM (7 layers, h=16) on binarized MNIST, large-batch recipe.

The network of `binarized_mnist_diagonal_bilstm.py` trained with batch 128 for 30k steps
(Adam 2e-3, warm-up and cosine decay; see `defaults.large_batch_recipe`), meant to reach
the paper's test NLL in a fraction of the paper recipe's wall time on a GPU.
"""

import os
import runpy

from pixelrnn import defaults


def get_config():
  paper = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "binarized_mnist_diagonal_bilstm.py"
  )
  return defaults.large_batch_recipe(runpy.run_path(paper)["get_config"]())
