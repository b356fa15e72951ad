"""experiments/torch_pixelcnn.py computes the same function as our PixelCNN (when torch is
installed; pixelrnn does not install it, so this runs where the benchmark's peer runs)."""

import sys

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT

from pixelrnn import defaults
from pixelrnn.training import trainer as trainer_lib

torch = pytest.importorskip("torch", reason="PyTorch is not installed (only the benchmark uses it)")
sys.path.insert(0, str(REPO_ROOT / "experiments"))
import torch_pixelcnn  # noqa: E402


@pytest.mark.parametrize(
  "dataset, shape, levels", [("binarized_mnist", (28, 28, 1), 2), ("cifar10", (32, 32, 3), 256)]
)
def test_the_torch_reference_gives_our_logits_and_loss(dataset, shape, levels):
  config = defaults.base_config()
  config.data.name = dataset
  config.model.hidden_dim, config.model.num_layers, config.model.output_dim = 6, 2, 12
  trainer = trainer_lib.Trainer(
    config, shape, levels, trainer_lib.make_mesh(jax.local_devices()[:1])
  )
  params = trainer.initial_state().params
  images = np.random.default_rng(0).integers(0, levels, (2,) + shape).astype(np.uint8)
  ours = np.asarray(trainer.model.apply(params, images))  # (B, H, W, C, K)

  model = torch_pixelcnn.build(config, "cpu")
  torch_pixelcnn.load_jax_params(model, params)
  with torch.no_grad():
    theirs = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))  # (B, K, C, H, W)
  np.testing.assert_allclose(theirs.numpy().transpose(0, 3, 4, 2, 1), ours, atol=2e-5, rtol=1e-4)
