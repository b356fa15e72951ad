"""The datasets a config may name, and the shape and number of levels of their images.

Kept apart from `data.py` (which loads them) so that the config schema and anything
else that needs only the shapes does not import the data pipeline.
"""

# Each TFDS dataset's splits.
TFDS_SPLITS = {"mnist": ("train", "test"), "cifar10": ("train", "test")}
# MNIST from TFDS, binarized by thresholding: level 1 where the intensity is >= 128.
# Unlike the fixed binarized MNIST, it keeps the digit labels.
THRESHOLDED = {"mnist_thresholded": "mnist"}
# The first 4,000 images of CIFAR-10's training set, read from their binary records
# (data.loading.load_cifar10_first4000): real pixels where the full dataset is absent.
RECORD_FILES = ("cifar10_first4000",)
NAMES = ("binarized_mnist",) + tuple(TFDS_SPLITS) + tuple(THRESHOLDED) + RECORD_FILES
# (H, W, C) and number of levels of each dataset's images.
IMAGE_SPECS = {
  "binarized_mnist": ((28, 28, 1), 2),
  "mnist": ((28, 28, 1), 256),
  "cifar10": ((32, 32, 3), 256),
  "mnist_thresholded": ((28, 28, 1), 2),
  "cifar10_first4000": ((32, 32, 3), 256),
}
# The number of classes of the datasets whose images carry labels (binarized MNIST's
# fixed binarization has none).
NUM_CLASSES = {"mnist": 10, "cifar10": 10, "mnist_thresholded": 10, "cifar10_first4000": 10}
THRESHOLD = 128
