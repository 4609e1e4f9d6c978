"""Sources for a shop's own data: `catalog`, any product table (CSV, TSV, JSON lines or
Parquet) with an image path column and whichever label columns it keeps; and
`image_folder`, one folder per class (`root/<class>/<image>`, torchvision's ImageFolder).

A catalog row's image path is relative to the table's folder or absolute, any format the
decoder reads (JPEG, PNG, WebP, ...), in nested folders if need be, or an http(s) URL,
downloaded once into `image_cache` (data/image_cache.py; a URL that cannot be fetched is
reported with its row and reason, and the row skipped). Multi-valued columns (sigmoid tasks) hold a list (JSON lines, Parquet)
or a string split by `list_separator`; a null is unknown (masked), an empty list is "no
labels" (all negatives), and an empty string is whichever `empty_string` says. A row
that cannot be read (wrong number of fields, bad JSON, no image) is reported with its
line and skipped; labels missing from a row mask those tasks only.
"""

import csv
import json
import os
from typing import Sequence

import numpy as np

from fashion_jax.data import image_cache
from fashion_jax.data.report import DataReport
from fashion_jax.data.table import FileImages, Table, make_table
from fashion_jax.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
           ".parquet": "parquet"}
SPLIT_VALUES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
# How an empty list is written in a Table column: the separator alone splits into no
# labels, so a multi-label task reads "no labels, all negatives", not "unknown".
LABEL_SEPARATOR = "|"
NO_LABELS = LABEL_SEPARATOR
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def table_path(data_config) -> str:
  root = data_config.root
  path = os.path.join(root, data_config.table) if data_config.table else root
  if not path:
    raise DataError("A catalog dataset needs its table: set root to the table file (or to "
                    "its folder and `table` to the file name).")
  return path


def _records(path: str, report: DataReport):
  """(line, {column: value}) per row of a CSV, TSV, JSON-lines or Parquet table."""
  kind = FORMATS.get(os.path.splitext(path)[1].lower())
  if kind is None:
    raise DataError(f"{path}: expected a .csv, .tsv, .jsonl or .parquet table.")
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such table file.")
  if kind == "parquet":
    import pyarrow.parquet as pq  # pyarrow comes with `datasets`.
    table = pq.read_table(path)
    offset = 0
    for batch in table.to_batches(max_chunksize=65536):
      columns = batch.to_pydict()
      for i in range(batch.num_rows):
        yield f"{path}: row {offset + i + 1}", {c: values[i] for c, values in columns.items()}
      offset += batch.num_rows
    return
  with open(path, newline="", encoding="utf-8-sig") as f:
    if kind == "jsonl":
      for number, line in enumerate(f, start=1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError as e:
          report.add("unreadable rows (bad JSON)", f"{path}:{number} ({e.msg})")
          continue
        if not isinstance(record, dict):
          report.add("unreadable rows (not a JSON object)", f"{path}:{number}")
          continue
        yield f"{path}:{number}", record
      return
    reader = csv.reader(f, delimiter="\t" if kind == "tsv" else ",")
    header = [h.strip() for h in next(reader, [])]
    if not header:
      raise DataError(f"{path} is empty.")
    line = reader.line_num
    for fields in reader:
      where, line = f"{path}:{line + 1}", reader.line_num
      if not fields or not any(fields):
        continue
      if len(fields) != len(header):
        report.add("malformed rows (wrong number of fields)", where)
        continue
      yield where, dict(zip(header, fields))


def _text(value, multi_valued: bool, data_config) -> str:
  """A cell as the Table's raw string: '' unknown, lists joined, empty list NO_LABELS."""
  if value is None:
    return ""
  if isinstance(value, (list, tuple)):
    labels = [str(v).strip() for v in value if v is not None and str(v).strip()]
    return LABEL_SEPARATOR.join(labels) if labels else NO_LABELS
  text = str(value).strip()
  if not multi_valued:
    return text
  if not text:
    return NO_LABELS if data_config.empty_string == "no_labels" else ""
  labels = [v.strip() for v in text.split(data_config.list_separator) if v.strip()]
  return LABEL_SEPARATOR.join(labels) if labels else NO_LABELS


def load_catalog(data_config, columns: Sequence[str], seed: int,
                 where: str) -> tuple[Table, DataReport]:
  """The configured table's rows whose image file exists, with the label `columns`."""
  del seed
  path = table_path(data_config)
  report = DataReport(source=path)
  folder = os.path.dirname(os.path.abspath(path))
  multi_valued = {c.strip() for c in data_config.multi_valued_columns.split(",") if c.strip()}
  ids, paths, splits, places = [], [], [], []
  values = {c: [] for c in columns}
  needed = [data_config.image_column, *columns,
            *(c for c in (data_config.id_column, data_config.split_column) if c)]
  checked_header = False
  for place, record in _records(path, report):
    if not checked_header:
      absent = [c for c in needed if c not in record]
      if absent and FORMATS[os.path.splitext(path)[1].lower()] != "jsonl":
        raise DataError(f"{path}: no column(s) {absent} (for {where}: image_column, id_column, "
                        f"split_column and the tasks' columns); it has {sorted(record)}.")
      checked_header = True
    image = _text(record.get(data_config.image_column), False, data_config)
    if not image:
      report.add(f"rows without an image ('{data_config.image_column}' empty)", place)
      continue
    if image_cache.is_url(image):
      if not data_config.image_cache:
        raise DataError(f"{place}: {data_config.image_column}={image!r} is a URL: set "
                        f"{where.removeprefix('config.')}.image_cache=DIR, a folder the "
                        "images are downloaded into once, or give local paths.")
      image_path = image  # Fetched below, with the table's other URLs.
    else:
      image_path = image if os.path.isabs(image) else os.path.join(folder, image)
    if not image_cache.is_url(image_path) and not os.path.isfile(image_path):
      report.add("rows whose image file is missing", f"{place} ({image})")
      continue
    if data_config.split_column:
      split = SPLIT_VALUES.get(_text(record.get(data_config.split_column), False,
                                     data_config).lower())
      if split is None:
        raise DataError(f"{place}: {data_config.split_column}="
                        f"{record.get(data_config.split_column)!r} is not one of train, val "
                        f"(or validation), test ({where}.split_column).")
    row_id = (_text(record.get(data_config.id_column), False, data_config)
              if data_config.id_column else image)
    if not row_id:
      report.add(f"rows without an id ('{data_config.id_column}' empty)", place)
      continue
    for c in columns:
      value = _text(record.get(c), c in multi_valued, data_config)
      if not value:
        report.add(f"missing '{c}' labels (masked for that task)", place)
      values[c].append(value)
    ids.append(row_id)
    paths.append(image_path)
    places.append(place)
    if data_config.split_column:  # Appended with the row, so that they stay aligned.
      splits.append(split)
  keep = _fetch_urls(paths, places, data_config.image_cache, report)
  if not all(keep):
    def kept(items):
      return [item for item, k in zip(items, keep) if k]
    ids, paths, splits = kept(ids), kept(paths), kept(splits) if splits else splits
    values = {c: kept(v) for c, v in values.items()}
  report.log()
  return make_table(FileImages(paths), ids, values, path,
                    splits=np.asarray(splits, dtype=object) if splits else None), report


def _fetch_urls(paths: list, places: list, cache_dir: str, report: DataReport) -> list[bool]:
  """Replaces each URL of `paths` by its cached file; which rows to keep (those whose
  image could be fetched; the others are reported with their row and reason)."""
  urls = [p for p in paths if image_cache.is_url(p)]
  if not urls:
    return [True] * len(paths)
  fetched = image_cache.fetch_all(urls, cache_dir, progress=True)
  keep = []
  for i, (value, place) in enumerate(zip(paths, places)):
    result = fetched.get(value) if image_cache.is_url(value) else value
    if isinstance(result, image_cache.FetchError):
      report.add("rows whose image URL could not be fetched", f"{place} ({value}: {result})")
      keep.append(False)
      continue
    paths[i] = result
    keep.append(True)
  return keep


def load_image_folder(data_config, columns: Sequence[str], seed: int,
                      where: str) -> tuple[Table, DataReport]:
  """`root/<class>/<image>`: one label column (`label_column`) from the folder names;
  ids are the paths relative to root."""
  del seed
  root = data_config.root
  if not os.path.isdir(root):
    raise DataError(f"{where}.root={root!r} is not a folder of class folders.")
  unknown = [c for c in columns if c != data_config.label_column]
  if unknown:
    raise DataError(f"{where}: an image folder has one label column, "
                    f"{data_config.label_column!r} (label_column); tasks read {unknown}.")
  report = DataReport(source=root)
  ids, paths, labels = [], [], []
  for label in sorted(os.listdir(root)):
    class_dir = os.path.join(root, label)
    if not os.path.isdir(class_dir):
      continue
    for folder, subfolders, files in os.walk(class_dir):
      subfolders.sort()
      for name in sorted(files):
        file_path = os.path.join(folder, name)
        if not name.lower().endswith(IMAGE_EXTENSIONS):
          report.add("files that are not images (skipped)", file_path)
          continue
        ids.append(os.path.relpath(file_path, root))
        paths.append(file_path)
        labels.append(label)
  report.log()
  return make_table(FileImages(paths), ids, {c: labels for c in columns}, root), report
