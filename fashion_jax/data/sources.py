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

from fashion_jax import checks
from fashion_jax.data.report import DataReport
from fashion_jax.data.vocab import RARE_POLICIES
from fashion_jax.errors import ConfigError, DataError

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample")
# Retrieval role of a row (Table.roles), as the int the batches carry: 'query' rows search
# the 'gallery' ones; with no queries in a split, every row searches all the others.
ROLES = {"": 0, "query": 1, "gallery": 2}
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
  # Retrieval role per row: 'query', 'gallery' or '' (each sample against all others).
  roles: np.ndarray | None = None
  boxes: np.ndarray | None = None  # [N, 4] x1, y1, x2, y2 in pixels, when the data has them.

  def __len__(self) -> int:
    return len(self.rows)

  def subset(self, indices: np.ndarray) -> "Table":
    indices = np.asarray(indices, dtype=np.int64)
    pick = lambda a: None if a is None else a[indices]  # noqa: E731
    return Table(images=self.images, rows=self.rows[indices], ids=self.ids[indices],
                 columns={k: v[indices] for k, v in self.columns.items()},
                 splits=pick(self.splits), roles=pick(self.roles), boxes=pick(self.boxes))

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


def make_table(images, ids, values: dict[str, list[str]], source: str, **extra) -> Table:
  if not ids:
    raise DataError(f"{source}: no usable rows (see the warnings above for why).")
  return Table(images=images, rows=np.arange(len(ids)), ids=np.asarray(ids, dtype=object),
               columns={c: np.asarray(v, dtype=object) for c, v in values.items()}, **extra)


def load_product_images(data_config, columns: Sequence[str], seed: int,
                        where: str) -> tuple[Table, DataReport]:
  """Kaggle layout: `<root>/styles.csv` and `<root>/images/<id>.jpg`.

  An empty `data_config.root` means the small real subset shipped with the package.
  """
  root = data_config.root or SAMPLE_DIR
  csv_path = os.path.join(root, data_config.csv_name)
  report = DataReport(source=csv_path)
  ids, values, paths = read_styles_csv(csv_path, os.path.join(root, "images"), columns, report)
  report.log()
  return make_table(FileImages(paths), ids, values, csv_path), report


def _open_hf_dataset(name_or_path: str, split: str, where: str):
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
    loaded = _load_from_hub(name_or_path, where)
  if isinstance(loaded, datasets.DatasetDict):
    if split not in loaded:
      raise DataError(f"{name_or_path}: no split '{split}' (has {list(loaded)}); "
                    f"set {where}.hf_split.")
    loaded = loaded[split]
  return loaded


def _load_from_hub(name: str, where: str):
  """A hub dataset (or its local cache); no network -> one message with the ways out."""
  import datasets
  try:
    return datasets.load_dataset(name)
  except ConnectionError as e:
    raise DataError(
        f"{where}.root={name!r}: no local folder or file has that name, and the Hugging "
        f"Face hub cannot be reached to download it ({e}). Either point {where}.root at "
        "a local copy - a folder written by datasets' save_to_disk() or a .parquet/.arrow "
        "file, made where there is network - or, if this dataset was downloaded here "
        "before, set HF_DATASETS_OFFLINE=1 to read it from the local cache.") from e
  except FileNotFoundError as e:  # datasets' DatasetNotFoundError: no such hub dataset.
    raise DataError(f"{where}.root={name!r} is neither a local folder or file nor a dataset "
                    f"on the Hugging Face hub ({e}).") from e


def load_hugging_face(data_config, columns: Sequence[str], seed: int,
                      where: str) -> tuple[Table, DataReport]:
  """`ashraq/fashion-product-images-small` from the hub, or the same columns on disk."""
  name = data_config.root or "ashraq/fashion-product-images-small"
  report = DataReport(source=name)
  dataset = _open_hf_dataset(name, data_config.hf_split, where)
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
  return make_table(HFImages(dataset), [str(i) for i in raw_ids], values, name), report


def _deepfashion_root(data_config, where: str, benchmark: str) -> str:
  if not data_config.root:
    raise DataError(f"{where}.root is empty: point it at the unpacked DeepFashion "
                    f"'{benchmark}' folder.")
  return data_config.root


def _check_columns(columns: Sequence[str], available, what: str) -> None:
  missing = [c for c in columns if c not in available]
  if missing:
    raise DataError(f"{what} has no column(s) {missing}; it has {sorted(available)}.")


def load_deepfashion_category(data_config, columns: Sequence[str], seed: int,
                              where: str) -> tuple[Table, DataReport]:
  """DeepFashion Category and Attribute Prediction, with its official partition.

  Columns: 'category' (name), 'category_type' (1 upper, 2 lower, 3 full body) and
  'attributes' (positive attribute names joined by '|', for a sigmoid task). With the
  fine annotations, attributes are named '<group>/<name>' and each group is also a
  single-label column 'attribute_<group>' (e.g. attribute_sleeve), to train as a softmax.
  `<where>.annotations` picks the coarse (Anno/) or fine (Anno_fine/) annotations.
  """
  from fashion_jax.data import deepfashion  # Only these sources need it.
  root = _deepfashion_root(data_config, where, "Category and Attribute Prediction Benchmark")
  annotations = data_config.annotations
  loaders = {"coarse": deepfashion.load_category_attribute, "fine": deepfashion.load_fine}
  data = loaders[annotations](root)
  groups = (deepfashion.fine_attribute_groups(data.attribute_types) if annotations == "fine"
            else [])
  names = ([f"{group}/{name}" for group, name in zip(groups, data.attributes)] if groups
           else list(data.attributes))
  available = {
      "category": lambda: [data.categories[i] for i in data.category_labels],
      "category_type": lambda: [str(data.category_types[i]) for i in data.category_labels],
      "attributes": lambda: ["|".join(names[j] for j in np.flatnonzero(row))
                             for row in data.attribute_labels],
  }
  for group in dict.fromkeys(groups):
    index = [j for j, g in enumerate(groups) if g == group]
    available[f"attribute_{group}"] = (
        lambda index=index: [_single_active(row[index], data.attributes, index)
                             for row in data.attribute_labels])
  _check_columns(columns, available, f"DeepFashion {annotations} category/attribute data")
  paths = [os.path.join(root, name) for name in data.image_names]
  table = make_table(FileImages(paths), data.image_names,
                      {c: available[c]() for c in columns}, root, splits=data.splits,
                      boxes=data.bboxes)
  return table, DataReport(source=root)


def _single_active(flags: np.ndarray, names: list[str], index: list[int]) -> str:
  """The name of the one active attribute of a group, '' (masked) if none or several."""
  active = np.flatnonzero(flags)
  return names[index[active[0]]] if len(active) == 1 else ""


def load_deepfashion_inshop(data_config, columns: Sequence[str], seed: int,
                            where: str) -> tuple[Table, DataReport]:
  """DeepFashion In-shop Clothes Retrieval.

  Column 'item_id' (the identity, for an embedding task) and 'clothes_group' (e.g.
  'WOMEN/Dresses', from the image path). The official train images train; the
  official query/gallery sets are the test split. The release has no validation
  set, so `<where>.val_items_fraction` of the training items (those with 2+ images)
  are held out as one, with each held-out item's first image as its query.
  """
  from fashion_jax.data import deepfashion
  root = _deepfashion_root(data_config, where, "In-shop Clothes Retrieval Benchmark")
  data = deepfashion.load_inshop(root)
  available = {"item_id": lambda: list(data.item_ids),
               "clothes_group": lambda: ["/".join(n.split("/")[1:3]) for n in data.image_names]}
  _check_columns(columns, available, "DeepFashion In-shop data")
  splits = np.where(data.splits == "train", "train", "test").astype(object)
  roles = np.where(data.splits == "train", "", data.splits).astype(object)
  fraction = data_config.val_items_fraction
  train_items, counts = np.unique(data.item_ids[splits == "train"], return_counts=True)
  candidates = train_items[counts >= 2]
  num_val = min(len(candidates), max(1, round(fraction * len(train_items)))) if fraction else 0
  held_out = set(np.random.default_rng(seed).choice(candidates, num_val, replace=False).tolist())
  first_seen = set()
  for i, item in enumerate(data.item_ids):
    if splits[i] == "train" and item in held_out:
      splits[i] = "val"
      roles[i] = "gallery" if item in first_seen else "query"
      first_seen.add(item)
  paths = [os.path.join(root, name) for name in data.image_names]
  table = make_table(FileImages(paths), data.image_names,
                      {c: available[c]() for c in columns}, root, splits=splits, roles=roles,
                      boxes=data.bboxes)
  return table, DataReport(source=root)


def _load_packed(data_config, columns, seed, where):
  from fashion_jax.data import packed  # Imports grain's ArrayRecord reader.
  return packed.load_packed(data_config, columns, seed, where)


def _load_tfds(data_config, columns, seed, where):
  from fashion_jax.data import tfds_builder  # tensorflow-datasets: the optional [tfds] extra.
  return tfds_builder.load_tfds(data_config, columns, seed, where)


@dataclasses.dataclass(frozen=True)
class Source:
  load: Callable  # (dataset config, label columns, seed, where) -> (Table, DataReport)
  options: dict  # The source's own config fields and their defaults.


# Fields every dataset has. `sampler`: 'auto' = P identities x K images per batch
# ('pk', K = images_per_identity) when an embedding task reads this dataset, else
# 'random'. Boxes crop with `box_margin` (fraction of the box size) when crop_to_box.
DATASET_FIELDS = {"source": "", "root": "", "weight": 1.0, "rare_policy": "drop",
                  "sampler": "auto", "images_per_identity": 4, "crop_to_box": False,
                  "box_margin": 0.1}
SAMPLERS = ("auto", "random", "pk")
# What each dataset field accepts, checked before any data is read: (field path, value).
_FIELD_CHECKS: dict[str, Callable] = {
    "weight": lambda f, v: checks.number(v, f, 0),
    "rare_policy": lambda f, v: checks.choice(v, f, RARE_POLICIES),
    "sampler": lambda f, v: checks.choice(v, f, SAMPLERS),
    # >= 2 where P x K sampling uses it (see pipeline.identity_task_of).
    "images_per_identity": lambda f, v: checks.number(v, f, 1, integer=True),
    "box_margin": lambda f, v: checks.number(v, f, 0),
    "val_fraction": lambda f, v: checks.number(v, f, 0, 1, high_open=True),
    "test_fraction": lambda f, v: checks.number(v, f, 0, 1, high_open=True),
    "val_items_fraction": lambda f, v: checks.number(v, f, 0, 1, high_open=True),
    "annotations": lambda f, v: checks.choice(v, f, ("coarse", "fine")),
    "split_seed": lambda f, v: checks.number(v, f, 0, integer=True),
    "split_file": lambda f, v: checks.existing_file(v, f),
}
# Sources without an official partition get a stratified one, drawn by `split_seed`
# (not config.seed: seeds of one study share a split), or the one a split file gives
# (`id,split` lines, as every run writes to <workdir>/split_<dataset>.csv).
_STRATIFIED_SPLIT = {"stratify": "articleType", "val_fraction": 0.1, "test_fraction": 0.1,
                     "split_seed": 0, "split_file": ""}

SOURCES: dict[str, Source] = {
    "product_images": Source(load_product_images, {"csv_name": "styles.csv",
                                                   **_STRATIFIED_SPLIT}),
    "hugging_face": Source(load_hugging_face, {"hf_split": "train", **_STRATIFIED_SPLIT}),
    "deepfashion_category": Source(load_deepfashion_category, {"annotations": "coarse"}),
    "deepfashion_inshop": Source(load_deepfashion_inshop, {"val_items_fraction": 0.05}),
    # A folder written by python -m fashion_jax.prepare (see data/packed.py).
    "array_record": Source(_load_packed, _STRATIFIED_SPLIT),
    # A prepared TFDS dataset (root = its data_dir; see data/tfds_builder.py).
    "tfds": Source(_load_tfds, {"tfds_name": "fashion_product_images", "tfds_split": "train",
                                **_STRATIFIED_SPLIT}),
}


def dataset_config(source: str, **fields) -> dict:
  """A `config.datasets` entry with every field of its source, so each is overridable."""
  if source not in SOURCES:
    raise ConfigError(f"Unknown source {source!r}; expected one of {sorted(SOURCES)}.")
  unknown = set(fields) - set(DATASET_FIELDS) - set(SOURCES[source].options)
  if unknown:
    raise ConfigError(f"Unknown field(s) {sorted(unknown)} for a '{source}' dataset.")
  return {**DATASET_FIELDS, **SOURCES[source].options, "source": source, **fields}


def resolve_dataset_config(dataset_config, where: str):
  """One `config.datasets` entry with exactly its source's fields (defaults filled in).

  Fields of other sources are ignored, so `--config.datasets.x.source=...` can switch a
  dataset's source from the command line; a field no source has is a typo and an error.
  """
  import ml_collections
  source = dataset_config.get("source")
  if source not in SOURCES:
    raise ConfigError(f"{where}.source={source!r} is not one of {sorted(SOURCES)}.")
  known = set(DATASET_FIELDS).union(*(s.options for s in SOURCES.values()))
  unknown = set(dataset_config) - known
  if unknown:
    raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; a '{source}' dataset has "
                      f"{sorted(set(DATASET_FIELDS) | set(SOURCES[source].options))}.")
  fields = {**DATASET_FIELDS, **SOURCES[source].options}
  resolved = ml_collections.ConfigDict(
      {k: dataset_config[k] if k in dataset_config else v for k, v in fields.items()})
  prefix = where.removeprefix("config.")
  for field, value in resolved.items():
    if field in _FIELD_CHECKS:
      _FIELD_CHECKS[field](f"{prefix}.{field}", value)
  for field in ("csv_name", "hf_split", "tfds_name", "tfds_split", "stratify"):
    if field in resolved and not resolved[field]:
      raise ConfigError(f"{where}.{field} is empty: it needs a value (default "
                        f"{SOURCES[source].options[field]!r}).")
  if "val_fraction" in resolved and resolved.val_fraction + resolved.test_fraction >= 1:
    raise ConfigError(f"{where}.val_fraction={resolved.val_fraction} and test_fraction="
                      f"{resolved.test_fraction} leave no training split: their sum must be < 1.")
  return resolved


def load_source(dataset_config, columns: Sequence[str], seed: int = 0,
                where: str = "config.datasets.<name>") -> tuple[Table, DataReport]:
  """Reads one configured dataset with the label `columns` its tasks need."""
  dataset_config = resolve_dataset_config(dataset_config, where)
  logging.info("Reading %s (%s) from %s", where, dataset_config.source,
               dataset_config.root or "the embedded sample")
  return SOURCES[dataset_config.source].load(dataset_config, list(columns), seed, where)
