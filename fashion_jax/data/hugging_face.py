"""The hugging_face source: `ashraq/fashion-product-images-small` from the hub, or the
same columns from a local `save_to_disk` folder or a .parquet/.arrow file.

`datasets` is imported only when this source is used (the optional [hf] extra).
"""

import os
from typing import Sequence

from fashion_jax.data.report import DataReport
from fashion_jax.data.table import Table, make_table
from fashion_jax.errors import DataError


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


def load(data_config, columns: Sequence[str], seed: int,
                      where: str) -> tuple[Table, DataReport]:
  """`ashraq/fashion-product-images-small` from the hub, or the same columns on disk."""
  name = data_config.root or "ashraq/fashion-product-images-small"
  report = DataReport(source=name)
  dataset = _open_hf_dataset(name, data_config.hf_split, where)
  image_column, id_column = data_config.image_column, data_config.id_column
  missing = [c for c in [image_column, *columns, *([id_column] if id_column else [])]
             if c not in dataset.column_names]
  if missing:
    raise DataError(f"{name}: missing column(s) {missing} ({where}: image_column, id_column "
                    f"and the tasks' columns); it has {dataset.column_names}.")
  id_column = id_column or ("id" if "id" in dataset.column_names else "")
  labels = dataset.select_columns(columns + ([id_column] if id_column else []))
  raw = labels.to_dict()
  raw_ids = raw[id_column] if id_column else list(range(len(dataset)))
  values = {c: [] for c in columns}
  for i, row_id in enumerate(raw_ids):
    for c in columns:
      value = raw[c][i]
      if isinstance(value, (list, tuple)):  # A list column: labels of a multi-label task.
        value = "|".join(str(v).strip() for v in value if v is not None) or "|"
      value = "" if value is None else str(value).strip()
      if not value:
        report.add(f"empty '{c}' labels (masked for that task)", f"{name}[{i}] id={row_id}")
      values[c].append(value)
  report.log()
  return make_table(HFImages(dataset, image_column), [str(i) for i in raw_ids], values,
                    name), report
