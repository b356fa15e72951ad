import jax
import pytest

from pixelrnn.training import steps


def test_ema_decay_warms_up_then_saturates():
  assert float(steps.ema_decay_at(jax.numpy.array(0), 0.999)) == pytest.approx(0.1)
  assert float(steps.ema_decay_at(jax.numpy.array(10**6), 0.999)) == pytest.approx(0.999)
