"""The rows of the paper's tables: what each trains, the number it is compared with, the
log of its pieces, its record once finished, and the table and curves written from them.

A row is trained in pieces (`experiments/reproduce.py`), each resuming the row's workdir.
Every piece appends one line to workdir/reproduce_pieces.jsonl and rewrites it at every
checkpoint, so a piece killed outright keeps its record up to its last checkpoint
(outcome "running" until the piece ends; the next piece marks it as killed).
"""

from __future__ import annotations

import dataclasses
import json
import os

from pixelrnn import recipes

TABLE4 = "Table 4: binarized MNIST, test NLL in nats per image"
TABLE5 = "Table 5: CIFAR-10, test NLL in bits/dim"
ICML_T4 = "van den Oord et al. 2016, ICML, Table 4"
ICML_T5 = "van den Oord et al. 2016, ICML, Table 5"
GATED = (
  "Gated PixelCNN (van den Oord et al. 2016b): binarized MNIST in nats per image, "
  "CIFAR-10 in bits/dim"
)
PIXELCNN_PP = "PixelCNN++ (Salimans et al. 2017): CIFAR-10, test NLL in bits/dim"


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a paper table: what to train, and the number to compare with."""

  name: str
  table: str
  model: str
  config: str  # Config file, relative to the repository root (or absolute).
  paper: float
  unit: str  # "nats" (per image) or "bits/dim".
  source: str
  large_batch_config: str | None = None  # The same network on the large-batch recipe (file:arg).


ROWS = (
  Row(
    "bmnist_pixelcnn",
    TABLE4,
    "PixelCNN",
    "configs/binarized_mnist_pixelcnn.py",
    81.30,
    "nats",
    "attributed to the paper (likely its arXiv v3) by Gulrajani et al. 2016 "
    "(PixelVAE), Table 1, and by Papers with Code; the network behind it is not given",
    "configs/binarized_mnist_pixelcnn.py:large_batch",
  ),
  Row(
    "bmnist_row_lstm",
    TABLE4,
    "Row LSTM",
    "configs/binarized_mnist_row_lstm.py",
    80.54,
    "nats",
    "unverified: found in no public source",
    "configs/binarized_mnist_row_lstm.py:large_batch",
  ),
  Row(
    "bmnist_diagonal_bilstm_1x32",
    TABLE4,
    "Diagonal BiLSTM, 1 layer, h=32",
    "configs/binarized_mnist_diagonal_bilstm_1layer.py",
    80.75,
    "nats",
    ICML_T4,
    "configs/binarized_mnist_diagonal_bilstm_1layer.py:large_batch",
  ),
  Row(
    "bmnist_diagonal_bilstm_7x16",
    TABLE4,
    "Diagonal BiLSTM, 7 layers, h=16",
    "configs/binarized_mnist_diagonal_bilstm.py",
    79.20,
    "nats",
    ICML_T4,
    "configs/binarized_mnist_diagonal_bilstm.py:large_batch",
  ),
  Row(
    "cifar10_pixelcnn", TABLE5, "PixelCNN", "configs/cifar10_pixelcnn.py", 3.14, "bits/dim", ICML_T5
  ),
  Row(
    "cifar10_row_lstm", TABLE5, "Row LSTM", "configs/cifar10_row_lstm.py", 3.07, "bits/dim", ICML_T5
  ),
  Row(
    "cifar10_diagonal_bilstm",
    TABLE5,
    "Diagonal BiLSTM",
    "configs/cifar10_diagonal_bilstm.py",
    3.00,
    "bits/dim",
    ICML_T5,
  ),
  Row(
    "bmnist_gated_pixelcnn",
    GATED,
    "Gated PixelCNN, binarized MNIST",
    "configs/binarized_mnist_gated_pixelcnn.py",
    80.10,
    "nats",
    "Gulrajani et al. 2016 (PixelVAE), Table 1; the network behind it is not given",
  ),
  Row(
    "cifar10_gated_pixelcnn",
    GATED,
    "Gated PixelCNN, CIFAR-10",
    "configs/cifar10_gated_pixelcnn.py",
    3.03,
    "bits/dim",
    'van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders", '
    "Table 1; the paper does not state this network's size (the config says which size it "
    "uses and why)",
  ),
  Row(
    "cifar10_pixelcnn_pp",
    PIXELCNN_PP,
    "PixelCNN++",
    "configs/cifar10_pixelcnn_pp.py",
    2.92,
    "bits/dim",
    "Salimans et al. 2017, ICLR, Table 1",
  ),
  Row(
    "cifar10_pixelcnn_pp_conditional",
    PIXELCNN_PP,
    "PixelCNN++, class-conditional",
    "configs/cifar10_pixelcnn_pp.py:conditional",
    2.94,
    "bits/dim",
    "Salimans et al. 2017, ICLR, the class-conditional result in its text",
  ),
)

# The rows trained in the background of every session (`--rows=next` takes the first
# one not recorded yet, skipping those held back).
CONTINUE_ORDER = (
  "bmnist_diagonal_bilstm_1x32",
  "bmnist_pixelcnn",
  "bmnist_row_lstm",
  "bmnist_diagonal_bilstm_7x16",
  "bmnist_gated_pixelcnn",
)
HELD_BACK: dict[str, str] = {}  # Name -> why `--rows=next` skips it, e.g. a network not decided.

RECIPES = recipes.NAMES
LARGE_BATCH_SUFFIX = "_large_batch"


def recipe_rows(rows, recipe: str) -> list[Row]:
  """`rows` on `recipe`: "paper" (their own configs) or "large_batch" (the rows that have
  a large-batch config, as rows of their own: name + "_large_batch", that config)."""
  if recipe == "paper":
    return list(rows)
  if recipe != "large_batch":
    raise ValueError(f"Unknown recipe {recipe!r}; valid: {list(RECIPES)}.")
  return [
    dataclasses.replace(
      row,
      name=row.name + LARGE_BATCH_SUFFIX,
      model=f"{row.model}, large-batch recipe",
      config=row.large_batch_config,
      large_batch_config=None,
    )
    for row in rows
    if row.large_batch_config is not None
  ]


def all_rows() -> list[Row]:
  return [row for recipe in RECIPES for row in recipe_rows(ROWS, recipe)]


# --- Records -------------------------------------------------------------------------


def record_path(results_dir: str, row: Row) -> str:
  return os.path.join(results_dir, "paper_rows", f"{row.name}.json")


def read_record(results_dir: str, row: Row) -> dict | None:
  path = record_path(results_dir, row)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_json(path: str, value) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2)
    f.write("\n")
  os.replace(tmp, path)


def next_row(
  results_dir: str, order=CONTINUE_ORDER, held_back=None
) -> tuple[Row | None, list[str]]:
  """The first row of `order` with no record, and a line for each row skipped before it."""
  held_back = HELD_BACK if held_back is None else held_back
  by_name = {row.name: row for row in ROWS}
  skipped = []
  for name in order:
    row = by_name[name]
    if read_record(results_dir, row) is not None:
      skipped.append(f"{name}: recorded")
    elif name in held_back:
      skipped.append(f"{name}: held back, {held_back[name]}")
    else:
      return row, skipped
  return None, skipped


# --- The pieces log ------------------------------------------------------------------


# --- The table and the curves --------------------------------------------------------
