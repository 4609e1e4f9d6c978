"""The product_images source: the Kaggle fashion-product-images layout,
`<root>/styles.csv` and `<root>/images/<id>.jpg`, or the small real subset shipped with
the package (`SAMPLE_DIR`, the default data).

Problems in the file (malformed rows, missing images, empty labels) are counted in a
`DataReport` and the affected rows skipped or their labels left empty (masked later),
never raised mid-epoch.
"""

import csv
import io
import os
from typing import Sequence

from fashion_jax.data.report import DataReport
from fashion_jax.data.table import FileImages, Table, make_table
from fashion_jax.errors import DataError

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample")
_FREE_TEXT_COLUMN = "productDisplayName"


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


def load(data_config, columns: Sequence[str], seed: int,
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
