"""figures.py: test images spread over a (possibly sorted) split; bad requests named."""

import numpy as np
import pytest

from pixelrnn.sampling import figures


def test_spread_indices_are_distinct_even_and_include_both_ends():
  np.testing.assert_array_equal(figures.spread_indices(10_000, 3), [0, 5000, 9999])
  picked = figures.spread_indices(10, 10)
  np.testing.assert_array_equal(picked, np.arange(10))


@pytest.mark.parametrize("count", [0, 11])
def test_more_images_than_the_split_holds_or_none_is_refused(count):
  with pytest.raises(figures.FigureRequestError, match=f"Cannot pick {count} test images from 10"):
    figures.spread_indices(10, count)
