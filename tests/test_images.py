import numpy as np
import pytest
from PIL import Image

from pixelrnn.sampling import images


def test_levels_map_to_the_full_byte_range():
  np.testing.assert_array_equal(
    images.to_uint8(np.array([0, 1]).reshape(1, 1, 2, 1), 2).ravel(), [0, 255]
  )
  np.testing.assert_array_equal(
    images.to_uint8(np.array([0, 128, 255]).reshape(1, 1, 3, 1), 256).ravel(), [0, 128, 255]
  )


def test_out_of_range_levels_are_refused():
  with pytest.raises(ValueError, match=r"values must be in \[0, 2\), got \[0, 2\]"):
    images.to_uint8(np.array([0, 2]).reshape(1, 1, 2, 1), 2)


@pytest.mark.parametrize("channels", [1, 3])
def test_saved_grid_has_the_expected_size_and_tiles(tmp_path, channels):
  batch = np.random.default_rng(0).integers(0, 256, (5, 4, 6, channels))
  path = tmp_path / "grid.png"
  images.save_grid(str(path), batch, 256, columns=3, scale=2)
  picture = np.asarray(Image.open(path))
  assert picture.shape[:2] == (2 * (8 + 2) + 2, 3 * (12 + 2) + 2)
  tile = picture[2:10, 2 + 14 : 14 + 14]  # Second image of the first row, upscaled 2x.
  np.testing.assert_array_equal(tile.reshape(8, 12, channels)[::2, ::2], batch[1].astype(np.uint8))
