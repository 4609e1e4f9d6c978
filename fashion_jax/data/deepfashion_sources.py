"""The deepfashion_category and deepfashion_inshop sources: DeepFashion's two benchmarks
as Tables, with their official partitions (files read by `data/deepfashion.py`).
"""

import os
from typing import Sequence

import numpy as np

from fashion_jax.data import deepfashion
from fashion_jax.data.report import DataReport
from fashion_jax.data.table import FileImages, Table, make_table
from fashion_jax.errors import DataError


def _deepfashion_root(data_config, where: str, benchmark: str) -> str:
  if not data_config.root:
    raise DataError(f"{where}.root is empty: point it at the unpacked DeepFashion "
                    f"'{benchmark}' folder.")
  return data_config.root


def _check_columns(columns: Sequence[str], available, what: str) -> None:
  missing = [c for c in columns if c not in available]
  if missing:
    raise DataError(f"{what} has no column(s) {missing}; it has {sorted(available)}.")


def load_category(data_config, columns: Sequence[str], seed: int,
                              where: str) -> tuple[Table, DataReport]:
  """DeepFashion Category and Attribute Prediction, with its official partition.

  Columns: 'category' (name), 'category_type' (1 upper, 2 lower, 3 full body) and
  'attributes' (positive attribute names joined by '|', for a sigmoid task). With the
  fine annotations, attributes are named '<group>/<name>' and each group is also a
  single-label column 'attribute_<group>' (e.g. attribute_sleeve), to train as a softmax.
  `<where>.annotations` picks the coarse (Anno/) or fine (Anno_fine/) annotations.
  """
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


def load_inshop(data_config, columns: Sequence[str], seed: int,
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
