r"""Packs a configured dataset into ArrayRecord shards, and reads it back as a source.

    python -m fashion_jax prepare --config=configs/mtl.py --dataset=products \
        --config.datasets.products.root=/data/fashion-product-images --out=/data/packed/products

A pack is a folder: `images-XXXXX-of-YYYYY.array_record` (one encoded image per record,
in row order), `rows.json` (ids, label columns, official split, retrieval role and box
of every row) and `pack.json` (what was packed, from where). Reading it back
(`source: array_record`, `root: <folder>`) gives the same Table as the original
source, with grain's random-access ArrayRecordDataSource instead of one file open per
image per epoch.
"""

import json
import os

import numpy as np

from fashion_jax.data.report import DataReport
from fashion_jax.data.table import Table
from fashion_jax.errors import DataError

PACK_FILE = "pack.json"
ROWS_FILE = "rows.json"


def _shard_names(count: int) -> list[str]:
  return [f"images-{i:05d}-of-{count:05d}.array_record" for i in range(count)]


def pack(table: Table, out_dir: str, description: dict, rows_per_shard: int = 10000,
         progress: bool = True) -> dict:
  """Writes `table` (images and labels) to `out_dir`; returns the pack's summary."""
  from array_record.python.array_record_module import ArrayRecordWriter
  os.makedirs(out_dir, exist_ok=True)
  shards = max(1, -(-len(table) // rows_per_shard))
  names = _shard_names(shards)
  failed = []
  bar = _progress(len(table)) if progress else None
  for shard, name in enumerate(names):
    writer = ArrayRecordWriter(os.path.join(out_dir, name), "group_size:1")
    for i in range(shard * rows_per_shard, min(len(table), (shard + 1) * rows_per_shard)):
      try:
        data = table.image(i)
      except (OSError, ValueError) as e:  # Kept as an empty record: decoding masks it.
        data = b""
        failed.append(f"{table.images.describe(int(table.rows[i]))}: {e}")
      writer.write(data)
      if bar:
        bar.update(1)
    writer.close()
  if bar:
    bar.close()
  rows = {"ids": [str(x) for x in table.ids],
          "columns": {c: [str(v) for v in values] for c, values in table.columns.items()},
          "splits": None if table.splits is None else [str(s) for s in table.splits],
          "roles": None if table.roles is None else [str(r) for r in table.roles],
          "boxes": None if table.boxes is None else np.asarray(table.boxes).tolist()}
  with open(os.path.join(out_dir, ROWS_FILE), "w") as f:
    json.dump(rows, f)
  summary = {**description, "rows": len(table), "shards": names, "unreadable": failed}
  with open(os.path.join(out_dir, PACK_FILE), "w") as f:
    json.dump(summary, f, indent=1)
  return summary


def _progress(total: int):
  try:
    from tqdm import tqdm
  except ImportError:
    return None
  return tqdm(total=total, unit="img", desc="packing")


class PackedImages:
  """Encoded images from ArrayRecord shards, by row (random access)."""

  def __init__(self, folder: str, shard_names: list[str], ids: list[str]):
    import grain
    self.folder = folder
    self.ids = ids
    self.source = grain.sources.ArrayRecordDataSource(
        [os.path.join(folder, n) for n in shard_names])

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> bytes:
    return self.source[int(index)]

  def describe(self, index: int) -> str:
    return f"{self.folder}[{index}] (id {self.ids[index]})"

  def __repr__(self) -> str:
    return f"PackedImages({self.folder}, n={len(self.ids)})"


def load_packed(data_config, columns, seed: int, where: str):
  """The `array_record` source: a folder written by `pack`."""
  folder = data_config.root
  if not folder or not os.path.exists(os.path.join(folder, PACK_FILE)):
    raise DataError(f"{where}.root={folder!r} is not a pack (no {PACK_FILE}); write one with "
                    "python -m fashion_jax prepare.")
  with open(os.path.join(folder, PACK_FILE)) as f:
    summary = json.load(f)
  with open(os.path.join(folder, ROWS_FILE)) as f:
    rows = json.load(f)
  missing = [c for c in columns if c not in rows["columns"]]
  if missing:
    raise DataError(f"{folder} was packed without column(s) {missing}; it has "
                    f"{sorted(rows['columns'])}. Pack again with those tasks configured.")
  images = PackedImages(folder, summary["shards"], rows["ids"])
  if len(images) != len(rows["ids"]):
    raise DataError(f"{folder}: {len(images)} images in the shards but {len(rows['ids'])} "
                    f"rows in {ROWS_FILE}; the pack is incomplete.")
  extra = {k: None if rows[k] is None else np.asarray(rows[k], dtype=object if k != "boxes"
                                                           else np.int64)
           for k in ("splits", "roles", "boxes")}
  table = Table(images=images, rows=np.arange(len(rows["ids"])),
                        ids=np.asarray(rows["ids"], dtype=object),
                        columns={c: np.asarray(rows["columns"][c], dtype=object)
                                 for c in columns}, **extra)
  return table, DataReport(source=folder)
