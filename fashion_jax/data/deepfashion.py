"""Readers for DeepFashion's official annotation files.

Two benchmarks, as distributed:

* Category and Attribute Prediction (coarse): `Anno/` (or `Anno_coarse/`) with
  list_category_cloth.txt, list_category_img.txt, list_attr_cloth.txt,
  list_attr_img.txt, list_bbox.txt, and `Eval/list_eval_partition.txt`.
* In-shop Clothes Retrieval: `Eval/list_eval_partition.txt` (image, item id, status)
  and optionally `Anno/list_bbox_inshop.txt`.

Every list file has the row count on line 1, the column names on line 2 and rows from
line 3, fields separated by runs of spaces. A malformed row, a count that disagrees
with the rows, an image listed but missing, or an empty split is an error naming the
file and line: training for hours on half a download is worse than stopping.
"""

import dataclasses
import os

import numpy as np

from fashion_jax.errors import DataError

SPLITS = ("train", "val", "test")
INSHOP_SPLITS = ("train", "query", "gallery")


@dataclasses.dataclass
class ListFile:
  path: str
  columns: list[str]
  rows: list[list[str]]
  line_numbers: list[int]


def read_list_file(path: str, min_fields: int) -> ListFile:
  """Parses a DeepFashion list file, checking the count on line 1 against the rows."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise DataError(f"Cannot read {path}: {e.strerror}. Is the DeepFashion folder complete?") \
        from e
  if len(lines) < 2:
    raise DataError(f"{path}: expected the row count on line 1 and column names on line 2.")
  try:
    count = int(lines[0].strip())
  except ValueError as e:
    raise DataError(f"{path}:1: expected the row count, found {lines[0][:50]!r}.") from e
  rows, numbers = [], []
  for number, line in enumerate(lines[2:], start=3):
    fields = line.split()
    if not fields:
      continue
    if len(fields) < min_fields:
      raise DataError(f"{path}:{number}: expected at least {min_fields} fields, found "
                      f"{len(fields)}: {line[:80]!r}")
    rows.append(fields)
    numbers.append(number)
  if len(rows) != count:
    raise DataError(f"{path}:1 says {count} rows but the file has {len(rows)}: the file "
                    "is truncated or was edited.")
  return ListFile(path, lines[1].split(), rows, numbers)


def read_names_and_types(path: str) -> tuple[list[str], list[int]]:
  """`<name> <type>` rows where names may contain spaces (the type is the last field)."""
  listing = read_list_file(path, 2)
  names, types = [], []
  for fields, number in zip(listing.rows, listing.line_numbers):
    try:
      types.append(int(fields[-1]))
    except ValueError as e:
      raise DataError(f"{path}:{number}: the last field must be an integer type.") from e
    names.append(" ".join(fields[:-1]))
  return names, types


def _integers(listing: ListFile, columns: slice, what: str) -> np.ndarray:
  values = []
  for fields, number in zip(listing.rows, listing.line_numbers):
    try:
      values.append(np.asarray(fields[columns], dtype=np.int64))
    except ValueError as e:
      raise DataError(f"{listing.path}:{number}: {what} must be integers.") from e
  return np.stack(values)


def _check_aligned(reference: ListFile, other: ListFile) -> None:
  if [r[0] for r in reference.rows] != [r[0] for r in other.rows]:
    for (a, b, number) in zip(reference.rows, other.rows, other.line_numbers):
      if a[0] != b[0]:
        raise DataError(f"{other.path}:{number}: image {b[0]} where {reference.path} lists "
                        f"{a[0]}; the files must list the same images in the same order.")
    raise DataError(f"{other.path} and {reference.path} list different images.")


@dataclasses.dataclass
class CategoryAttributeData:
  """The coarse Category and Attribute Prediction benchmark, one row per image."""

  root: str
  image_names: list[str]
  categories: list[str]  # Category names, indexed by 0-based label.
  category_types: list[int]  # 1 upper, 2 lower, 3 full body.
  category_labels: np.ndarray  # [N], 0-based.
  attributes: list[str]
  attribute_types: list[int]  # 1 texture, 2 fabric, 3 shape, 4 part, 5 style.
  attribute_labels: np.ndarray  # [N, A] bool; the files' -1 and 0 are both negative.
  bboxes: np.ndarray  # [N, 4] x1, y1, x2, y2.
  splits: np.ndarray  # [N] 'train' | 'val' | 'test'.


def _anno_dir(root: str) -> str:
  for name in ("Anno", "Anno_coarse"):
    if os.path.isdir(os.path.join(root, name)):
      return os.path.join(root, name)
  raise DataError(f"{root}: no Anno/ or Anno_coarse/ folder; point config.data.root at the "
                  "unpacked 'Category and Attribute Prediction Benchmark' folder.")


def _check_images(root: str, names: list[str], listing: ListFile) -> None:
  for name, number in zip(names, listing.line_numbers):
    if not os.path.exists(os.path.join(root, name)):
      raise DataError(f"{listing.path}:{number}: image {name} is listed but missing under "
                      f"{root}; unpack img.zip there (or run the verify command).")


def _check_splits(splits: np.ndarray, allowed, path: str) -> None:
  unknown = sorted(set(splits.tolist()) - set(allowed))
  if unknown:
    raise DataError(f"{path}: unknown evaluation status {unknown}; expected {list(allowed)}.")
  for split in allowed:
    if not np.any(splits == split):
      raise DataError(f"{path}: the '{split}' split has no rows.")


def load_category_attribute(root: str, check_images: bool = True) -> CategoryAttributeData:
  anno = _anno_dir(root)
  categories, category_types = read_names_and_types(os.path.join(anno, "list_category_cloth.txt"))
  attributes, attribute_types = read_names_and_types(os.path.join(anno, "list_attr_cloth.txt"))
  category_list = read_list_file(os.path.join(anno, "list_category_img.txt"), 2)
  attribute_list = read_list_file(os.path.join(anno, "list_attr_img.txt"), 1 + len(attributes))
  bbox_list = read_list_file(os.path.join(anno, "list_bbox.txt"), 5)
  partition = read_list_file(os.path.join(root, "Eval", "list_eval_partition.txt"), 2)
  for other in (attribute_list, bbox_list, partition):
    _check_aligned(category_list, other)

  labels = _integers(category_list, slice(1, 2), "category labels")[:, 0] - 1
  bad = np.flatnonzero((labels < 0) | (labels >= len(categories)))
  if bad.size:
    raise DataError(f"{category_list.path}:{category_list.line_numbers[bad[0]]}: category label "
                    f"{labels[bad[0]] + 1} is outside 1..{len(categories)}.")
  names = [r[0] for r in category_list.rows]
  if check_images:
    _check_images(root, names, category_list)
  splits = np.asarray([r[1] for r in partition.rows])
  _check_splits(splits, SPLITS, partition.path)
  return CategoryAttributeData(
      root=root, image_names=names, categories=categories, category_types=category_types,
      category_labels=labels, attributes=attributes, attribute_types=attribute_types,
      attribute_labels=_integers(attribute_list, slice(1, 1 + len(attributes)),
                                 "attribute labels") > 0,
      bboxes=_integers(bbox_list, slice(1, 5), "bounding boxes"), splits=splits)


@dataclasses.dataclass
class InShopData:
  """In-shop Clothes Retrieval: images with their item id and train/query/gallery status."""

  root: str
  image_names: list[str]
  item_ids: np.ndarray
  splits: np.ndarray
  bboxes: np.ndarray | None  # [N, 4] when Anno/list_bbox_inshop.txt is present.


def load_inshop(root: str, check_images: bool = True) -> InShopData:
  partition = read_list_file(os.path.join(root, "Eval", "list_eval_partition.txt"), 3)
  names = [r[0] for r in partition.rows]
  if check_images:
    _check_images(root, names, partition)
  splits = np.asarray([r[2] for r in partition.rows])
  _check_splits(splits, INSHOP_SPLITS, partition.path)
  bbox_path = os.path.join(root, "Anno", "list_bbox_inshop.txt")
  bboxes = None
  if os.path.exists(bbox_path):
    bbox_list = read_list_file(bbox_path, 7)
    by_name = dict(zip((r[0] for r in bbox_list.rows),
                       _integers(bbox_list, slice(3, 7), "bounding boxes")))
    missing = [n for n in names if n not in by_name]
    if missing:
      raise DataError(f"{bbox_path}: no box for {len(missing)} images, e.g. {missing[0]}.")
    bboxes = np.stack([by_name[n] for n in names])
  return InShopData(root=root, image_names=names,
                    item_ids=np.asarray([r[1] for r in partition.rows]), splits=splits,
                    bboxes=bboxes)


# The fine-grained set's 26 attributes come in 6 groups, one attribute active per group.
FINE_GROUPS = (("texture", 7), ("sleeve", 3), ("length", 3), ("neckline", 4), ("fabric", 6),
               ("fit", 3))
FINE_NUM_ATTRIBUTES = sum(size for _, size in FINE_GROUPS)


def fine_attribute_groups(attribute_types: list[int]) -> list[str]:
  """Group name of each fine attribute, from its type (1..6) in list_attr_cloth.txt."""
  return [FINE_GROUPS[t - 1][0] if 1 <= t <= len(FINE_GROUPS) else f"type{t}"
          for t in attribute_types]


def _read_plain_lines(path: str) -> list[list[str]]:
  """Rows of a headerless fine-set file (one row per image, aligned across files)."""
  try:
    with open(path, encoding="utf-8") as f:
      return [line.split() for line in f.read().splitlines() if line.strip()]
  except OSError as e:
    raise DataError(f"Cannot read {path}: {e.strerror}. Is Anno_fine/ complete?") from e


def _fine_attributes(rows: list[list[str]], path: str) -> np.ndarray:
  """[N, 26] multi-hot, from rows of 26 0/1 flags or of 6 per-group indices (0-based)."""
  offsets = np.cumsum([0] + [size for _, size in FINE_GROUPS[:-1]])
  out = np.zeros((len(rows), FINE_NUM_ATTRIBUTES), bool)
  for number, fields in enumerate(rows, start=1):
    try:
      values = [int(v) for v in fields]
    except ValueError as e:
      raise DataError(f"{path}:{number}: attributes must be integers.") from e
    if len(values) == FINE_NUM_ATTRIBUTES and set(values) <= {0, 1}:
      out[number - 1] = np.asarray(values) > 0
    elif len(values) == len(FINE_GROUPS):
      for group, (index, (name, size)) in enumerate(zip(values, FINE_GROUPS)):
        if not 0 <= index < size:
          raise DataError(f"{path}:{number}: {name} index {index} is outside 0..{size - 1}.")
        out[number - 1, offsets[group] + index] = True
    else:
      raise DataError(f"{path}:{number}: expected {FINE_NUM_ATTRIBUTES} 0/1 flags or "
                      f"{len(FINE_GROUPS)} group indices, found {len(values)} values.")
  return out


def load_fine(root: str, check_images: bool = True) -> CategoryAttributeData:
  """The fine-grained set (`Anno_fine/`: <split>.txt, _cate, _attr, _bbox per split)."""
  anno = os.path.join(root, "Anno_fine")
  if not os.path.isdir(anno):
    raise DataError(f"{root}: no Anno_fine/ folder.")
  categories, category_types = read_names_and_types(os.path.join(anno, "list_category_cloth.txt"))
  attributes, attribute_types = read_names_and_types(os.path.join(anno, "list_attr_cloth.txt"))
  if len(attributes) != FINE_NUM_ATTRIBUTES:
    raise DataError(f"{anno}/list_attr_cloth.txt lists {len(attributes)} attributes; the fine "
                    f"set has {FINE_NUM_ATTRIBUTES}.")
  parts = {"names": [], "labels": [], "attributes": [], "boxes": [], "splits": []}
  for split in SPLITS:
    files = {kind: os.path.join(anno, f"{split}{suffix}.txt")
             for kind, suffix in (("names", ""), ("labels", "_cate"), ("attributes", "_attr"),
                                  ("boxes", "_bbox"))}
    rows = {kind: _read_plain_lines(path) for kind, path in files.items()}
    lengths = {os.path.basename(files[k]): len(v) for k, v in rows.items()}
    if len(set(lengths.values())) != 1:
      raise DataError(f"{anno}: the {split} files have different row counts {lengths}.")
    if not rows["names"]:
      raise DataError(f"{files['names']}: the '{split}' split has no rows.")
    names = [r[0] for r in rows["names"]]
    if check_images:
      for number, name in enumerate(names, start=1):
        if not os.path.exists(os.path.join(root, name)):
          raise DataError(f"{files['names']}:{number}: image {name} is listed but missing.")
    labels = np.asarray([int(r[0]) - 1 for r in rows["labels"]])
    if labels.min() < 0 or labels.max() >= len(categories):
      raise DataError(f"{files['labels']}: category labels must be in 1..{len(categories)}.")
    parts["names"] += names
    parts["labels"].append(labels)
    parts["attributes"].append(_fine_attributes(rows["attributes"], files["attributes"]))
    parts["boxes"].append(np.asarray([[int(v) for v in r[:4]] for r in rows["boxes"]]))
    parts["splits"] += [split] * len(names)
  return CategoryAttributeData(
      root=root, image_names=parts["names"], categories=categories,
      category_types=category_types, category_labels=np.concatenate(parts["labels"]),
      attributes=attributes, attribute_types=attribute_types,
      attribute_labels=np.concatenate(parts["attributes"]),
      bboxes=np.concatenate(parts["boxes"]), splits=np.asarray(parts["splits"]))
