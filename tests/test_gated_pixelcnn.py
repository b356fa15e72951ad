import causality
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixelrnn.models import gated_pixelcnn
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.pixelcnn import PixelCNN


def gated(num_channels, num_levels=4, num_layers=4, hidden_dim=24, seed=0, **kwargs):
  return GatedPixelCNN(
    num_channels=num_channels,
    num_levels=num_levels,
    hidden_dim=hidden_dim,
    num_layers=num_layers,
    output_dim=48,
    rngs=nnx.Rngs(seed),
    **kwargs,
  )


def dependencies(model, shape, num_inputs=3):
  """Within-image dependency sets, the union over random inputs (a ReLU that happens
  to be off at one input hides a path only there), each input checked for causality."""
  union = None
  pattern_of = jax.jit(lambda x: causality.dependency_pattern(model, x, as_array=True))
  for k in range(num_inputs):
    x = jax.random.uniform(jax.random.key(k), (2,) + shape, maxval=3)
    pattern = np.asarray(pattern_of(x))
    causality.assert_causal(pattern)  # Includes: no dependence across the batch.
    within = causality.within_batch(pattern)
    union = within if union is None else union | within
  return union


def strictly_earlier(h, w, c):
  order = causality.raster_order(h, w, c)
  return order[:, :, :, None, None, None] > order[None, None, None]


@pytest.mark.parametrize("num_channels", [1, 3])
def test_gated_pixelcnn_is_causal_and_has_no_blind_spot(num_channels):
  shape = (5, 6, num_channels)
  seen = dependencies(gated(num_channels), shape)
  # Four layers reach every earlier sub-pixel of a 5x6 image, and nothing else.
  np.testing.assert_array_equal(seen, strictly_earlier(*shape))
  # The paper's PixelCNN of the same depth (7x7 and three 3x3 layers) does not: from
  # (4, 1) the pixel one row up and four columns right is in its blind spot.
  pixelcnn = PixelCNN(
    num_channels=num_channels,
    num_levels=4,
    hidden_dim=24,
    num_layers=3,
    output_dim=48,
    rngs=nnx.Rngs(0),
  )
  pixelcnn_seen = dependencies(pixelcnn, shape)
  assert not (pixelcnn_seen & ~strictly_earlier(*shape)).any()
  assert not pixelcnn_seen[4, 1, :, 3, 5].any()
  assert seen[4, 1, :, 3, 5].all()


def test_each_stack_sees_its_own_window():
  model = gated(1, num_layers=1)
  seen = dependencies(model, (7, 9, 1))
  i, j = 5, 4
  # The horizontal stack: row i, columns j - 3 .. j - 1 (7-wide first layer).
  row = np.zeros(9, bool)
  row[j - 3 : j] = True
  np.testing.assert_array_equal(seen[i, j, 0, i, :, 0], row)
  # The vertical stack through the link: rows i - 4 .. i - 1, columns j - 3 .. j + 3.
  above = np.zeros((7, 9), bool)
  above[i - 4 : i, j - 3 : j + 4] = True
  np.testing.assert_array_equal(seen[i, j, 0, :i, :, 0], above[:i])


def test_gate_is_tanh_times_sigmoid_and_shift_down_drops_the_last_row():
  x = jax.random.normal(jax.random.key(0), (2, 3, 4, 6))
  np.testing.assert_allclose(
    gated_pixelcnn.gate(x), jnp.tanh(x[..., :3]) * jax.nn.sigmoid(x[..., 3:]), rtol=1e-6
  )
  shifted = gated_pixelcnn.shift_down(x)
  np.testing.assert_array_equal(shifted[:, 0], 0)
  np.testing.assert_array_equal(shifted[:, 1:], x[:, :-1])


def test_zero_layers_is_refused():
  with pytest.raises(ValueError, match="num_layers >= 1, got 0"):
    gated(1, num_layers=0)
