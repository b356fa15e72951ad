"""A PyTorch PixelCNN equal to pixelrnn's, to time our train step against PyTorch's.

Same network (`pixelrnn/models/pixelcnn.py`: 7x7 mask-A input layer, residual blocks of
1x1 -> 3x3 mask-B -> 1x1, the two 1x1 layers of the output head, the R, G, B masks of
`pixelrnn.masks`), loss (mean NLL per sub-pixel), optimizer with gradient clipping, and
EMA of the parameters, so one step does the same work. `load_jax_params` copies our
parameters in, and tests/test_torch_pixelcnn.py checks that the logits agree.

Used by `experiments/benchmark.py --torch`; needs torch, which pixelrnn does not install.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from pixelrnn.data import datasets
from pixelrnn.layers import masks


class MaskedConv(torch.nn.Conv2d):
  """A 'same' NCHW convolution whose weight is multiplied by pixelrnn's mask."""

  def __init__(self, in_features, out_features, size, *, num_channels, mask_type):
    super().__init__(in_features, out_features, size, padding=size // 2)
    mask = masks.conv_mask((size, size), in_features, out_features, num_channels, mask_type)
    self.register_buffer("mask", torch.from_numpy(mask.transpose(3, 2, 0, 1).copy()))

  def forward(self, x):
    return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(torch.nn.Module):
  """(B, C, H, W) integer levels -> (B, K, C, H, W) logits."""

  def __init__(self, *, num_channels, num_levels, hidden_dim, num_layers, output_dim):
    super().__init__()
    self.num_channels, self.num_levels = num_channels, num_levels
    b = dict(num_channels=num_channels, mask_type="B")
    self.input_conv = MaskedConv(
      num_channels, 2 * hidden_dim, 7, num_channels=num_channels, mask_type="A"
    )
    self.blocks = torch.nn.ModuleList(
      [
        torch.nn.ModuleDict(
          {
            "reduce": MaskedConv(2 * hidden_dim, hidden_dim, 1, **b),
            "conv": MaskedConv(hidden_dim, hidden_dim, 3, **b),
            "expand": MaskedConv(hidden_dim, 2 * hidden_dim, 1, **b),
          }
        )
        for _ in range(num_layers)
      ]
    )
    self.hidden = MaskedConv(2 * hidden_dim, output_dim, 1, **b)
    self.logits = MaskedConv(output_dim, num_channels * num_levels, 1, **b)

  def forward(self, images):
    h = self.input_conv(images.float() * (2.0 / (self.num_levels - 1)) - 1.0)
    for block in self.blocks:
      r = block["reduce"](F.relu(h))
      r = block["expand"](F.relu(block["conv"](F.relu(r))))
      h = h + r
    out = self.logits(F.relu(self.hidden(F.relu(h))))
    b, _, height, width = out.shape
    return out.view(b, self.num_channels, self.num_levels, height, width).transpose(1, 2)


def build(config, device) -> PixelCNN:
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  m = config.model
  return PixelCNN(
    num_channels=image_shape[-1],
    num_levels=num_levels,
    hidden_dim=m.hidden_dim,
    num_layers=m.num_layers,
    output_dim=m.output_dim,
  ).to(device)


def load_jax_params(model: PixelCNN, params) -> None:
  """Copies pixelrnn PixelCNN parameters (an nnx.State of the same sizes) into `model`."""

  def copy(conv, ours):
    kernel = np.asarray(ours["conv"]["kernel"][...])
    conv.weight.data.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
    conv.bias.data.copy_(torch.from_numpy(np.asarray(ours["conv"]["bias"][...])))

  copy(model.input_conv, params["input_conv"])
  for k, block in enumerate(model.blocks):
    for name in ("reduce", "conv", "expand"):
      copy(block[name], params["blocks"][k][name])
  copy(model.hidden, params["head"]["hidden"])
  copy(model.logits, params["head"]["logits"])


def make_step(model: PixelCNN, config, mode: str):
  """One train step (loss, backward, clipping, optimizer, EMA) as a function of a batch."""
  opt = config.optimizer
  parameters = list(model.parameters())
  if opt.name == "rmsprop":
    optimizer = torch.optim.RMSprop(
      parameters, lr=opt.learning_rate, alpha=opt.rmsprop_decay, eps=opt.eps, foreach=True
    )
  else:
    optimizer = torch.optim.Adam(
      parameters, lr=opt.learning_rate, betas=(opt.adam_b1, opt.adam_b2), eps=opt.eps, foreach=True
    )
  ema = [p.detach().clone() for p in parameters]
  decay = config.training.ema_decay
  network = (
    model
    if mode == "eager"
    else torch.compile(model, mode="reduce-overhead" if mode == "compile+cudagraphs" else "default")
  )

  def update():
    if opt.grad_clip_norm > 0:
      torch.nn.utils.clip_grad_norm_(parameters, opt.grad_clip_norm, foreach=True)
    optimizer.step()
    torch._foreach_lerp_(ema, [p.detach() for p in parameters], 1.0 - decay)

  update = update if mode == "eager" else torch.compile(update)

  def step(images):
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(network(images), images.long())
    loss.backward()
    update()
    return loss

  return step


def available_modes() -> list[str]:
  modes = ["eager", "compile"]
  return modes + ["compile+cudagraphs"] if torch.cuda.is_available() else modes


def benchmark(config, mode: str, warmup_steps: int, timed_steps: int) -> dict:
  """Seconds per train step of the PyTorch reference, measured like our loop: steps
  dispatched back to back on device-resident batches, then one synchronisation."""
  device = "cuda" if torch.cuda.is_available() else "cpu"
  image_shape, num_levels = datasets.IMAGE_SPECS[config.data.name]
  batch_size = config.training.batch_size
  rng = np.random.default_rng(0)
  batches = [
    torch.from_numpy(
      rng.integers(0, num_levels, (batch_size,) + image_shape).transpose(0, 3, 1, 2).copy()
    ).to(device)
    for _ in range(2)
  ]
  step = make_step(build(config, device), config, mode)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  start = time.perf_counter()
  step(batches[0])  # Compiles in the compiled modes.
  sync()
  first_s = time.perf_counter() - start
  for i in range(warmup_steps):
    step(batches[i % 2])
  sync()
  start = time.perf_counter()
  for i in range(timed_steps):
    step(batches[i % 2])
  sync()
  step_s = (time.perf_counter() - start) / timed_steps
  return {
    "torch": torch.__version__,
    "torch_mode": mode,
    "torch_device": device,
    "model": config.model.name,
    "batch_size": batch_size,
    "first_step_s": round(first_s, 3),
    "train_step_s": round(step_s, 6),
    "train_images_per_s": round(batch_size / step_s, 2),
    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    "tf32_cudnn": torch.backends.cudnn.allow_tf32,
  }
