import gzip
import hashlib
import types

import numpy as np
import pytest

from pixelrnn.data import batching, tfds_build
from pixelrnn.data import loading as data_lib


@pytest.mark.parametrize(
  "split, count, mean",
  [("train", 50000, 0.1306), ("validation", 10000, 0.1311), ("test", 10000, 0.1325)],
)
def test_packaged_binarized_mnist_has_the_published_splits(split, count, mean):
  ds = data_lib.load_binarized_mnist(split)
  assert ds.images.shape == (count, 28, 28, 1)
  assert ds.images.dtype == np.uint8 and ds.num_levels == 2
  assert set(np.unique(ds.images)) == {0, 1}
  assert ds.images.mean() == pytest.approx(mean, abs=5e-5)


def write_amat(path, images, corrupt_byte: int | None = None):
  text = "\n".join(" ".join(str(v) for v in img.ravel()) for img in images) + "\n"
  raw = bytearray(text.encode())
  if corrupt_byte is not None:
    raw[corrupt_byte] = ord("1") if raw[corrupt_byte] == ord("0") else ord("0")
  with gzip.open(path, "wb") as f:
    f.write(bytes(raw))
  return hashlib.sha256(text.encode()).hexdigest()


def test_amat_parser_reads_what_was_written(tmp_path):
  images = np.random.default_rng(0).integers(0, 2, (7, 28, 28, 1), dtype=np.uint8)
  sha = write_amat(tmp_path / "x.amat.gz", images)
  np.testing.assert_array_equal(data_lib.parse_amat(str(tmp_path / "x.amat.gz"), sha), images)


def test_corrupted_binarized_mnist_file_fails_with_its_checksum(tmp_path):
  images = np.zeros((3, 28, 28, 1), np.uint8)
  sha = write_amat(tmp_path / "x.amat.gz", images, corrupt_byte=10)
  with pytest.raises(
    data_lib.DataError, match=r"x\.amat\.gz.*corrupted: sha256 .* expected " + sha
  ):
    data_lib.parse_amat(str(tmp_path / "x.amat.gz"), sha)


def test_truncated_and_malformed_files_fail_clearly(tmp_path):
  good = tmp_path / "good.amat.gz"
  write_amat(good, np.ones((2, 28, 28, 1), np.uint8))
  truncated = tmp_path / "truncated.amat.gz"
  truncated.write_bytes(good.read_bytes()[:-20])
  with pytest.raises(data_lib.DataError, match="truncated.amat.gz.*not a readable gzip"):
    data_lib.parse_amat(str(truncated))
  bad_values = tmp_path / "bad.amat.gz"
  with gzip.open(bad_values, "wb") as f:
    f.write((" ".join(["2"] * 784) + "\n").encode())
  with pytest.raises(data_lib.DataError, match="only the values 0 and 1"):
    data_lib.parse_amat(str(bad_values))
  with pytest.raises(data_lib.DataError, match="does not exist"):
    data_lib.parse_amat(str(tmp_path / "missing.amat.gz"))


def test_unknown_datasets_and_splits_list_the_valid_ones():
  class Cfg:
    name, data_dir, manual_dir = "imagenet", None, None

  with pytest.raises(
    data_lib.DataError,
    match=r"'imagenet'; valid datasets: \['binarized_mnist', 'mnist', 'cifar10', "
    r"'mnist_thresholded', 'cifar10_first4000'\]",
  ):
    data_lib.load_dataset(Cfg, "train")
  with pytest.raises(data_lib.DataError, match=r"valid splits: \['test', 'train', 'validation'\]"):
    data_lib.load_binarized_mnist("valid")
  with pytest.raises(data_lib.DataError, match=r"valid: \['train', 'test'\]"):
    data_lib.load_tfds("cifar10", "validation")


def test_mnist_builds_offline_through_tfds_manual_dir(shared_data, mnist_tfds_dir):
  # The fixture built the dataset from the original files; these loads read that build.
  data_dir, manual_dir = str(mnist_tfds_dir), str(shared_data / "mnist")
  train = data_lib.load_tfds("mnist", "train", data_dir=data_dir, manual_dir=manual_dir)
  test = data_lib.load_tfds("mnist", "test", data_dir=data_dir, manual_dir=manual_dir)
  assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
  assert train.num_levels == test.num_levels == 256 and train.images.dtype == np.uint8
  # Means recorded in ../shared/data/README.md for the original files.
  assert train.images.mean() == pytest.approx(33.318, abs=1e-3)
  assert test.images.mean() == pytest.approx(33.791, abs=1e-3)
  # The labels come along: MNIST's published class counts.
  assert np.bincount(train.labels).tolist() == [
    5923,
    6742,
    5958,
    6131,
    5842,
    5421,
    5918,
    6265,
    5851,
    5949,
  ]
  assert np.bincount(test.labels).tolist() == [
    980,
    1135,
    1032,
    1010,
    982,
    892,
    958,
    1028,
    974,
    1009,
  ]
  # mnist_thresholded: the same images at 1 where the intensity is >= 128, same labels.
  thresholded = types.SimpleNamespace(
    name="mnist_thresholded", data_dir=data_dir, manual_dir=manual_dir
  )
  binary = data_lib.load_dataset(thresholded, "test")
  assert binary.num_levels == 2 and binary.images.dtype == np.uint8
  np.testing.assert_array_equal(binary.images, test.images >= 128)
  np.testing.assert_array_equal(binary.labels, test.labels)


def test_cifar10_comes_through_tfds_as_uint8_rgb(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  # The mock replaces the download; the probe of the download host must not refuse it.
  monkeypatch.setattr(tfds_build, "_reachable", lambda host: True)
  with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
    ds = data_lib.load_tfds("cifar10", "train")
  assert ds.images.shape == (12, 32, 32, 3) and ds.images.dtype == np.uint8
  assert ds.num_levels == 256
  assert ds.labels.shape == (12,) and ds.labels.min() >= 0 and ds.labels.max() < 10


def cifar10_records(images: np.ndarray, labels) -> bytes:
  """CIFAR-10's binary layout, written independently: label byte, R plane, G, B."""
  return b"".join(
    bytes([label]) + image.transpose(2, 0, 1).tobytes() for image, label in zip(images, labels)
  )


def test_cifar10_records_parser_reads_what_was_written():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  labels = [3, 0, 9, 1, 7]
  parsed, parsed_labels = data_lib.parse_cifar10_records(cifar10_records(images, labels), "x")
  np.testing.assert_array_equal(parsed, images)
  assert parsed_labels.tolist() == labels and parsed_labels.dtype == np.int32


def test_malformed_cifar10_records_fail_with_what_was_expected():
  good = cifar10_records(np.zeros((2, 32, 32, 3), np.uint8), [1, 2])
  with pytest.raises(data_lib.DataError, match="'x': 6145 bytes is not a whole.*3073-byte"):
    data_lib.parse_cifar10_records(good[:-1], "x")
  with pytest.raises(data_lib.DataError, match="0 bytes is not a whole, non-zero number"):
    data_lib.parse_cifar10_records(b"", "x")
  bad_label = cifar10_records(np.zeros((2, 32, 32, 3), np.uint8), [1, 12])
  with pytest.raises(data_lib.DataError, match="record 1 has label 12, expected a class in 0-9"):
    data_lib.parse_cifar10_records(bad_label, "x")


def test_cifar10_first4000_is_the_shared_slice_in_fixed_splits(shared_data):
  manual_dir = str(shared_data / "cifar10_subset")
  config = types.SimpleNamespace(name="cifar10_first4000", data_dir=None, manual_dir=manual_dir)
  train, test = data_lib.load_dataset(config, "train"), data_lib.load_dataset(config, "test")
  assert train.images.shape == (3500, 32, 32, 3) and test.images.shape == (500, 32, 32, 3)
  assert train.num_levels == test.num_levels == 256 and train.images.dtype == np.uint8
  # The checks ../shared/data/README.md records for the 4,000 records.
  assert train.images[0, 0, :4, 0].tolist() == [59, 43, 50, 68]
  assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
  means = np.concatenate([train.images, test.images]).reshape(-1, 3).mean(0)
  np.testing.assert_allclose(means, [125.36, 122.85, 113.39], atol=5e-3)
  assert test.labels.shape == (500,) and set(test.labels.tolist()) == set(range(10))


def test_cifar10_first4000_refuses_a_missing_or_corrupted_file(tmp_path):
  with pytest.raises(data_lib.DataError, match="reads data_batch_1_first4000.bin.gz from --config"):
    data_lib.load_cifar10_first4000("train", None)
  with pytest.raises(data_lib.DataError, match="first4000.bin.gz' does not exist"):
    data_lib.load_cifar10_first4000("train", str(tmp_path))
  with gzip.open(tmp_path / data_lib.CIFAR10_FIRST4000_FILE, "wb") as f:
    f.write(cifar10_records(np.zeros((4000, 32, 32, 3), np.uint8), [0] * 4000))
  with pytest.raises(data_lib.DataError, match="is corrupted: sha256 .* expected 0993cf8b"):
    data_lib.load_cifar10_first4000("test", str(tmp_path))
  with pytest.raises(data_lib.DataError, match=r"split 'validation'; valid: \['train', 'test'\]"):
    data_lib.load_cifar10_first4000("validation", str(tmp_path))


def test_missing_manual_dir_is_refused(tmp_path):
  with pytest.raises(data_lib.DataError, match="manual_dir .*nowhere.* is not a directory"):
    data_lib.load_tfds("mnist", "train", manual_dir=str(tmp_path / "nowhere"))


def test_train_batches_visit_each_example_once_per_epoch_and_resume_exactly():
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  batches = batching.train_batches(images, batch_size=3, seed=7)
  steps = [next(batches).ravel() for _ in range(9)]  # 3 steps per epoch, 1 example dropped.
  for epoch in range(3):
    seen = np.concatenate(steps[3 * epoch : 3 * epoch + 3])
    assert len(set(seen.tolist())) == 9
  assert not np.array_equal(np.concatenate(steps[:3]), np.concatenate(steps[3:6])), "reshuffled"
  resumed = batching.train_batches(images, batch_size=3, seed=7, start_step=4)
  for s in range(4, 9):
    np.testing.assert_array_equal(next(resumed).ravel(), steps[s])
  other_seed = batching.train_batches(images, batch_size=3, seed=8)
  assert not np.array_equal(next(other_seed).ravel(), steps[0])


def test_eval_batches_cover_every_example_once_including_a_partial_batch():
  images = np.arange(23, dtype=np.uint8).reshape(23, 1, 1, 1)
  seen = []
  for batch, valid in batching.eval_batches(images, batch_size=5):
    assert batch.shape == (5, 1, 1, 1)
    seen.extend(batch[valid].ravel().tolist())
  assert seen == list(range(23))


def test_labels_of_the_wrong_shape_type_or_range_are_refused():
  data_lib.check_labels(np.array([0, 9, 3]), 3, 10)
  with pytest.raises(data_lib.DataError, match=r"labels have shape \(2,\), expected \(3,\)"):
    data_lib.check_labels(np.array([0, 1]), 3, 10)
  with pytest.raises(data_lib.DataError, match="labels have dtype float32, expected integer"):
    data_lib.check_labels(np.zeros(3, np.float32), 3, 10)
  with pytest.raises(
    data_lib.DataError, match=r"labels span \[0, 10\], expected classes in \[0, 10\)"
  ):
    data_lib.check_labels(np.array([0, 10, 3]), 3, 10)
