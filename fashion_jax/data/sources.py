"""Sources: read a dataset into a `Table` of image references and raw label strings.

A source knows one on-disk or hub layout and nothing about tasks or vocabularies. Every
source returns the same `Table`, so the rest of the pipeline is shared. Problems in the
data (malformed rows, missing images, empty labels) are counted in a `DataReport` and the
affected rows are skipped or their labels left empty (masked later), never raised
mid-epoch.
"""

import csv
import dataclasses
import io
import os
from typing import Callable, Sequence

import numpy as np
from absl import logging

from fashion_jax.data.report import DataReport
from fashion_jax.errors import DataError

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample")
_FREE_TEXT_COLUMN = "productDisplayName"


class FileImages:
  """Images stored one file each; returns encoded bytes."""

  def __init__(self, paths: Sequence[str]):
    self.paths = list(paths)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> bytes:
    with open(self.paths[index], "rb") as f:
      return f.read()

  def describe(self, index: int) -> str:
    return self.paths[index]

  def __repr__(self) -> str:  # Deterministic: grain compares reprs on restore.
    return f"FileImages(n={len(self.paths)}, first={self.paths[:1]})"


class HFImages:
  """Images in a Hugging Face `datasets.Dataset` column; returns encoded bytes."""

  def __init__(self, dataset, column: str = "image"):
    import datasets  # Lazy: only this source needs it.
    self.dataset = dataset.cast_column(column, datasets.Image(decode=False))
    self.column = column

  def __len__(self) -> int:
    return len(self.dataset)

  def __getitem__(self, index: int) -> bytes:
    image = self.dataset[int(index)][self.column]
    if not image:
      raise ValueError("no image in this row")
    if image.get("bytes"):
      return image["bytes"]
    with open(image["path"], "rb") as f:
      return f.read()

  def describe(self, index: int) -> str:
    return f"{self.dataset.info.dataset_name or 'hf'}[{index}]"

  def __repr__(self) -> str:
    return f"HFImages(n={len(self.dataset)}, fingerprint={self.dataset._fingerprint})"


@dataclasses.dataclass
class Table:
  """Rows of a dataset: where each image is, its id, and its raw label strings.

  `columns[c][i]` is the raw value of column c for row i; '' means missing.
  `images[rows[i]]` fetches the encoded image of row i.
  """

  images: FileImages | HFImages
  rows: np.ndarray
  ids: np.ndarray
  columns: dict[str, np.ndarray]
  # The dataset's own train/val/test assignment, when it defines one (DeepFashion);
  # otherwise the pipeline makes a stratified split.
  splits: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.rows)

  def subset(self, indices: np.ndarray) -> "Table":
    indices = np.asarray(indices, dtype=np.int64)
    return Table(images=self.images, rows=self.rows[indices], ids=self.ids[indices],
                 columns={k: v[indices] for k, v in self.columns.items()},
                 splits=None if self.splits is None else self.splits[indices])

  def image(self, i: int) -> bytes:
    return self.images[int(self.rows[i])]


def _read_text(path: str) -> str:
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise DataError(f"Cannot read {path}: {e.strerror}") from e
  try:
    return raw.decode("utf-8-sig")  # utf-8-sig drops a BOM that would corrupt the 'id' header.
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(
        f"{path}:{line}: not UTF-8 ({e.reason}). Re-save the file as UTF-8.") from e


def read_styles_csv(csv_path: str, image_dir: str, columns: Sequence[str],
                    report: DataReport) -> tuple[list[str], dict[str, list[str]], list[str]]:
  """Parses a Kaggle `styles.csv`, keeping rows whose image exists.

  The real file has rows with unquoted commas inside the last column
  (`productDisplayName`); those are rejoined. Other rows with the wrong number of
  fields are reported and skipped.

  Returns:
    (ids, {column: values}, image paths), aligned.
  """
  text = _read_text(csv_path)
  lines = text.splitlines()
  if not lines:
    raise DataError(f"{csv_path} is empty.")
  header = next(csv.reader([lines[0]]))
  header = [h.strip() for h in header]
  missing = [c for c in ["id", *columns] if c not in header]
  if missing:
    raise DataError(f"{csv_path}: missing column(s) {missing}; the header has {header}.")
  col_index = {c: header.index(c) for c in columns}
  try:
    present = set(os.listdir(image_dir))
  except OSError as e:
    raise DataError(f"Cannot list the image folder {image_dir}: {e.strerror}") from e

  ids, paths = [], []
  values = {c: [] for c in columns}
  free_text_last = header[-1] == _FREE_TEXT_COLUMN
  for line_no, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    fields = next(csv.reader(io.StringIO(line)))
    if len(fields) > len(header) and free_text_last:
      fields = fields[:len(header) - 1] + [",".join(fields[len(header) - 1:])]
    if len(fields) != len(header):
      report.add("malformed rows (wrong number of fields)", f"{csv_path}:{line_no}")
      continue
    row_id = fields[0].strip()
    if not row_id:
      report.add("rows without an id", f"{csv_path}:{line_no}")
      continue
    file_name = f"{row_id}.jpg"
    if file_name not in present:
      report.add("ids without an image file", f"{row_id} ({csv_path}:{line_no})")
      continue
    for c in columns:
      value = fields[col_index[c]].strip()
      if not value:
        report.add(f"empty '{c}' labels (masked for that task)", f"{csv_path}:{line_no}")
      values[c].append(value)
    ids.append(row_id)
    paths.append(os.path.join(image_dir, file_name))
  return ids, values, paths


def _make_table(images, ids, values: dict[str, list[str]], source: str,
                splits: np.ndarray | None = None) -> Table:
  if not ids:
    raise DataError(f"{source}: no usable rows (see the warnings above for why).")
  return Table(images=images, rows=np.arange(len(ids)), ids=np.asarray(ids, dtype=object),
               columns={c: np.asarray(v, dtype=object) for c, v in values.items()},
               splits=splits)


def load_product_images(data_config, columns: Sequence[str]) -> tuple[Table, DataReport]:
  """Kaggle layout: `<root>/styles.csv` and `<root>/images/<id>.jpg`.

  An empty `data_config.root` means the small real subset shipped with the package.
  """
  root = data_config.root or SAMPLE_DIR
  csv_path = os.path.join(root, data_config.get("csv_name", "styles.csv"))
  report = DataReport(source=csv_path)
  ids, values, paths = read_styles_csv(csv_path, os.path.join(root, "images"), columns, report)
  report.log()
  return _make_table(FileImages(paths), ids, values, csv_path), report


def _open_hf_dataset(name_or_path: str, split: str):
  """Opens a hub name, a `save_to_disk` folder, a parquet/arrow file or an imagefolder."""
  import datasets  # Lazy: heavy, and only this source needs it.
  if os.path.isdir(name_or_path) and os.path.exists(
      os.path.join(name_or_path, "dataset_info.json")):
    loaded = datasets.load_from_disk(name_or_path)
  elif os.path.isfile(name_or_path):
    kind = {".parquet": "parquet", ".arrow": "arrow"}.get(os.path.splitext(name_or_path)[1])
    if kind is None:
      raise DataError(f"{name_or_path}: expected a .parquet or .arrow file or a folder.")
    loaded = datasets.load_dataset(kind, data_files=name_or_path)
  else:
    loaded = datasets.load_dataset(name_or_path)
  if isinstance(loaded, datasets.DatasetDict):
    if split not in loaded:
      raise DataError(f"{name_or_path}: no split '{split}' (has {list(loaded)}); "
                    "set config.data.hf_split.")
    loaded = loaded[split]
  return loaded


def load_hugging_face(data_config, columns: Sequence[str]) -> tuple[Table, DataReport]:
  """`ashraq/fashion-product-images-small` from the hub, or the same columns on disk."""
  name = data_config.root or "ashraq/fashion-product-images-small"
  report = DataReport(source=name)
  dataset = _open_hf_dataset(name, data_config.get("hf_split", "train"))
  missing = [c for c in ["image", *columns] if c not in dataset.column_names]
  if missing:
    raise DataError(f"{name}: missing column(s) {missing}; it has {dataset.column_names}.")
  labels = dataset.select_columns(columns + (["id"] if "id" in dataset.column_names else []))
  raw = labels.to_dict()
  raw_ids = raw.get("id", list(range(len(dataset))))
  values = {c: [] for c in columns}
  for i, row_id in enumerate(raw_ids):
    for c in columns:
      value = raw[c][i]
      value = "" if value is None else str(value).strip()
      if not value:
        report.add(f"empty '{c}' labels (masked for that task)", f"{name}[{i}] id={row_id}")
      values[c].append(value)
  report.log()
  return _make_table(HFImages(dataset), [str(i) for i in raw_ids], values, name), report


def load_deepfashion_category(data_config, columns: Sequence[str]) -> tuple[Table, DataReport]:
  """DeepFashion Category and Attribute Prediction, with its official partition.

  Columns: 'category' (name), 'category_type' (1 upper, 2 lower, 3 full body) and
  'attributes' (positive attribute names joined by '|', for a sigmoid task).
  `config.data.deepfashion_annotations` picks the coarse (Anno/) or fine (Anno_fine/)
  annotations.
  """
  from fashion_jax.data import deepfashion  # Only this source needs it.
  if not data_config.root:
    raise DataError("config.data.root is empty: point it at the unpacked DeepFashion "
                    "'Category and Attribute Prediction Benchmark' folder.")
  annotations = data_config.deepfashion_annotations
  loaders = {"coarse": deepfashion.load_category_attribute, "fine": deepfashion.load_fine}
  if annotations not in loaders:
    raise DataError(f"config.data.deepfashion_annotations={annotations!r} is not one of "
                    f"{sorted(loaders)}.")
  data = loaders[annotations](data_config.root)
  available = {
      "category": lambda: [data.categories[i] for i in data.category_labels],
      "category_type": lambda: [str(data.category_types[i]) for i in data.category_labels],
      "attributes": lambda: ["|".join(data.attributes[j] for j in np.flatnonzero(row))
                             for row in data.attribute_labels],
  }
  missing = [c for c in columns if c not in available]
  if missing:
    raise DataError(f"DeepFashion category/attribute data has no column(s) {missing}; "
                    f"it has {sorted(available)}.")
  paths = [os.path.join(data_config.root, name) for name in data.image_names]
  table = _make_table(FileImages(paths), data.image_names,
                      {c: available[c]() for c in columns}, data_config.root, data.splits)
  return table, DataReport(source=data_config.root)


SOURCES: dict[str, Callable] = {
    "product_images": load_product_images,
    "hugging_face": load_hugging_face,
    "deepfashion_category": load_deepfashion_category,
}


def load_source(data_config, columns: Sequence[str]) -> tuple[Table, DataReport]:
  """Reads `data_config.source` with the label `columns` the tasks need."""
  if data_config.source not in SOURCES:
    raise DataError(f"config.data.source={data_config.source!r} is not one of "
                       f"{sorted(SOURCES)}.")
  logging.info("Reading %s from %s", data_config.source, data_config.root or "the embedded sample")
  return SOURCES[data_config.source](data_config, list(columns))
