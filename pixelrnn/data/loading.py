"""Datasets as uint8 NHWC arrays, and deterministic batch iterators.

- `binarized_mnist`: Larochelle & Murray's static binarization, shipped inside the
  package (train 50000, validation 10000, test 10000; 2 levels).
- `mnist` (8-bit, 256 levels) and `cifar10` (RGB, 256 levels) through TFDS. Offline,
  TFDS builds them from `manual_dir`, a folder holding the files it would download.
- `cifar10_first4000`: the first 4,000 records of CIFAR-10's `data_batch_1.bin`
  (`data_batch_1_first4000.bin.gz` in `manual_dir`), real pixels for development on
  machines without the full dataset, read without TFDS. Fixed splits: `train` is records
  0-3499, `test` records 3500-3999. Its numbers are not CIFAR-10's.

Training batches depend only on (seed, step), so a resumed run sees exactly the data
order of an uninterrupted one. Evaluation covers every example exactly once.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os

import numpy as np

from pixelrnn import errors
from pixelrnn.data import datasets, tfds_build

BINARIZED_MNIST_DIR = os.path.join(
  os.path.dirname(os.path.dirname(__file__)), "data_files", "binarized_mnist"
)

# sha256 of the uncompressed .amat text (the values TFDS records for binarized_mnist).
BINARIZED_MNIST_FILES = {
  "train": (
    "binarized_mnist_train.amat.gz",
    50000,
    "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
  ),
  "validation": (
    "binarized_mnist_valid.amat.gz",
    10000,
    "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
  ),
  "test": (
    "binarized_mnist_test.amat.gz",
    10000,
    "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
  ),
}


# CIFAR-10's official binary layout: a label byte (0-9), then the 1024 R, 1024 G and
# 1024 B bytes of a 32x32 image, each plane row-major.
CIFAR10_RECORD_BYTES = 1 + 32 * 32 * 3
CIFAR10_FIRST4000_FILE = "data_batch_1_first4000.bin.gz"
# sha256 of the uncompressed records (the first 12,292,000 bytes of data_batch_1.bin).
CIFAR10_FIRST4000_SHA256 = "0993cf8b8e43bc207603aef9787006995746513f5e3fa5a52e06d1b069926330"
CIFAR10_FIRST4000_SPLITS = {"train": (0, 3500), "test": (3500, 4000)}


class DataError(errors.UserError, ValueError):
  """A data file or dataset request is not what was expected."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Images of one split: `images` is uint8 (N, H, W, C) with values in [0, num_levels);
  `labels`, for a labelled dataset, int32 (N,) class indices."""

  images: np.ndarray
  num_levels: int
  labels: np.ndarray | None = None

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  @property
  def num_dims(self) -> int:
    return int(np.prod(self.images.shape[1:]))


def parse_amat(path: str, expected_sha256: str | None = None, image_size: int = 28) -> np.ndarray:
  """Parses a gzipped binarized-MNIST .amat file into uint8 (N, 28, 28, 1).

  Each line holds image_size**2 values '0' or '1' separated by single spaces, so the
  digits sit at the even byte offsets; this reads them with one vectorised pass.
  """
  text = read_gzip(path, expected_sha256, "Binarized MNIST")
  pixels = image_size * image_size
  raw = np.frombuffer(text, np.uint8)
  if raw.size % (2 * pixels) != 0:
    raise DataError(
      f"{path!r}: {raw.size} bytes is not a whole number of "
      f"{pixels}-value lines of the form '0 1 ... 0\\n'."
    )
  rows = raw.reshape(-1, pixels, 2)
  separators = rows[:, :, 1]
  if not (np.all(separators[:, :-1] == ord(" ")) and np.all(separators[:, -1] == ord("\n"))):
    raise DataError(f"{path!r}: expected {pixels} space-separated values per line.")
  digits = rows[:, :, 0] - ord("0")
  if digits.max(initial=0) > 1:
    raise DataError(f"{path!r}: expected only the values 0 and 1.")
  return digits.reshape(-1, image_size, image_size, 1)


def load_binarized_mnist(split: str, data_dir: str = BINARIZED_MNIST_DIR) -> Dataset:
  """Loads a binarized MNIST split: 'train', 'validation' or 'test'."""
  if split not in BINARIZED_MNIST_FILES:
    raise DataError(
      f"Unknown binarized_mnist split {split!r}; valid splits: {sorted(BINARIZED_MNIST_FILES)}."
    )
  filename, count, sha256 = BINARIZED_MNIST_FILES[split]
  images = parse_amat(os.path.join(data_dir, filename), sha256)
  if images.shape[0] != count:
    raise DataError(f"{filename}: expected {count} images, found {images.shape[0]}.")
  return Dataset(images=images, num_levels=2)


def load_tfds(
  name: str, split: str, data_dir: str | None = None, manual_dir: str | None = None
) -> Dataset:
  """Loads a whole TFDS split as uint8 (N, H, W, C), building it first if needed.

  `manual_dir` is passed as `DownloadConfig(manual_dir=...)`: with the dataset's
  original archives there, TFDS builds it with no network access. Missing, truncated
  or unreachable sources and concurrent builds are handled by `tfds_build.prepared_builder`.
  """
  if name not in datasets.TFDS_SPLITS:
    raise DataError(f"Unknown TFDS dataset {name!r}; valid: {sorted(datasets.TFDS_SPLITS)}.")
  if split not in datasets.TFDS_SPLITS[name]:
    raise DataError(f"Unknown {name} split {split!r}; valid: {list(datasets.TFDS_SPLITS[name])}.")
  if manual_dir is not None and not os.path.isdir(manual_dir):
    raise DataError(f"manual_dir {manual_dir!r} is not a directory.")
  import tensorflow_datasets as tfds  # Imported here: it pulls in TensorFlow.

  data = tfds_build.prepared_builder(name, data_dir, manual_dir).as_dataset(split=split)
  # Whole split in fixed-size chunks: batch_size=-1 aborts under tfds.testing.mock_data.
  chunks = list(tfds.as_numpy(data.batch(10_000)))
  if not chunks:
    raise DataError(f"TFDS {name}/{split} is empty.")
  images = np.concatenate([batch["image"] for batch in chunks])
  if images.dtype != np.uint8 or images.ndim != 4:
    raise DataError(
      f"TFDS {name}/{split} gave images {images.shape} {images.dtype}, expected uint8 (N, H, W, C)."
    )
  labels = np.concatenate([batch["label"] for batch in chunks]).astype(np.int32)
  return Dataset(images=images, num_levels=256, labels=labels)


def read_gzip(path: str, expected_sha256: str | None, what: str) -> bytes:
  """The uncompressed content of `path`, checked against its sha256 unless that is None."""
  try:
    with gzip.open(path, "rb") as f:
      content = f.read()
  except FileNotFoundError:
    raise DataError(f"{what} file {path!r} does not exist.") from None
  except (OSError, EOFError) as e:
    raise DataError(f"{what} file {path!r} is not a readable gzip file: {e}") from None
  if expected_sha256 is not None:
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
      raise DataError(
        f"{what} file {path!r} is corrupted: sha256 of its uncompressed "
        f"content is {actual}, expected {expected_sha256}."
      )
  return content


def parse_cifar10_records(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
  """CIFAR-10 binary records -> uint8 (N, 32, 32, 3) images and int32 (N,) labels."""
  if not raw or len(raw) % CIFAR10_RECORD_BYTES:
    raise DataError(
      f"{source!r}: {len(raw)} bytes is not a whole, non-zero number of "
      f"{CIFAR10_RECORD_BYTES}-byte CIFAR-10 records (a label byte, then 3072 pixel bytes)."
    )
  records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
  labels = records[:, 0].astype(np.int32)
  if labels.max() > 9:
    bad = int(np.argmax(labels > 9))
    raise DataError(f"{source!r}: record {bad} has label {labels[bad]}, expected a class in 0-9.")
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def load_cifar10_first4000(split: str, manual_dir: str | None) -> Dataset:
  """Split 'train' (records 0-3499) or 'test' (3500-3999) of manual_dir's
  data_batch_1_first4000.bin.gz."""
  if split not in CIFAR10_FIRST4000_SPLITS:
    raise DataError(
      f"Unknown cifar10_first4000 split {split!r}; valid: {list(CIFAR10_FIRST4000_SPLITS)}."
    )
  if manual_dir is None:
    raise DataError(
      f"cifar10_first4000 reads {CIFAR10_FIRST4000_FILE} from --config.data.manual_dir, "
      "and none was given (e.g. ../shared/data/cifar10_subset)."
    )
  path = os.path.join(manual_dir, CIFAR10_FIRST4000_FILE)
  raw = read_gzip(path, CIFAR10_FIRST4000_SHA256, "cifar10_first4000")
  images, labels = parse_cifar10_records(raw, path)
  start, stop = CIFAR10_FIRST4000_SPLITS[split]
  return Dataset(images=images[start:stop], num_levels=256, labels=labels[start:stop])


def threshold(dataset: Dataset) -> Dataset:
  """Binary images: level 1 where the 8-bit intensity is >= `datasets.THRESHOLD`."""
  return dataclasses.replace(
    dataset, images=(dataset.images >= datasets.THRESHOLD).astype(np.uint8), num_levels=2
  )


def load_dataset(data_config, split: str) -> Dataset:
  """Loads `split` of the dataset named by `data_config.name`."""
  name = data_config.name
  if name == "binarized_mnist":
    return load_binarized_mnist(split)
  if name in datasets.TFDS_SPLITS:
    return load_tfds(name, split, data_config.data_dir, data_config.manual_dir)
  if name == "cifar10_first4000":
    return load_cifar10_first4000(split, data_config.manual_dir)
  if name in datasets.THRESHOLDED:
    return threshold(
      load_tfds(datasets.THRESHOLDED[name], split, data_config.data_dir, data_config.manual_dir)
    )
  raise DataError(f"Unknown dataset {name!r}; valid datasets: {list(datasets.NAMES)}.")


def check_images(images: np.ndarray, image_shape: tuple[int, int, int], num_levels: int) -> None:
  """Raises DataError unless `images` is an integer (N, *image_shape) array in [0, K)."""
  images = np.asarray(images)
  if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
    raise DataError(
      f"images have shape {images.shape}, expected (N, {', '.join(map(str, image_shape))})."
    )
  if not np.issubdtype(images.dtype, np.integer):
    raise DataError(f"images have dtype {images.dtype}, expected integer levels (e.g. uint8).")
  if images.size and (images.min() < 0 or images.max() >= num_levels):
    raise DataError(
      f"image values span [{images.min()}, {images.max()}], expected levels in [0, {num_levels})."
    )


def check_labels(labels: np.ndarray, num_images: int, num_classes: int) -> None:
  """Raises DataError unless `labels` is an integer (N,) array of classes in [0, num_classes)."""
  labels = np.asarray(labels)
  if labels.shape != (num_images,):
    raise DataError(f"labels have shape {labels.shape}, expected ({num_images},), one per image.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f"labels have dtype {labels.dtype}, expected integer classes.")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataError(
      f"labels span [{labels.min()}, {labels.max()}], expected classes in [0, {num_classes})."
    )
