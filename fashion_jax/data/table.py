"""The `Table` every source returns: image references, ids and raw label strings per row.

A source knows one on-disk or hub layout and nothing about tasks or vocabularies; the
rest of the pipeline reads only Tables, so it is shared by every source.
"""

import dataclasses
from typing import Protocol, Sequence

import numpy as np

from fashion_jax.errors import DataError

# Retrieval role of a row (Table.roles), as the int the batches carry: 'query' rows search
# the 'gallery' ones; with no queries in a split, every row searches all the others.
ROLES = {"": 0, "query": 1, "gallery": 2}


class Images(Protocol):
  """A source's images by row: encoded bytes, and a description for error messages."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> bytes: ...

  def describe(self, index: int) -> str: ...


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


@dataclasses.dataclass
class Table:
  """Rows of a dataset: where each image is, its id, and its raw label strings.

  `columns[c][i]` is the raw value of column c for row i; '' means missing.
  `images[rows[i]]` fetches the encoded image of row i.
  """

  images: Images
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


def make_table(images, ids, values: dict[str, list[str]], source: str, **extra) -> Table:
  if not ids:
    raise DataError(f"{source}: no usable rows (see the warnings above for why).")
  return Table(images=images, rows=np.arange(len(ids)), ids=np.asarray(ids, dtype=object),
               columns={c: np.asarray(v, dtype=object) for c, v in values.items()}, **extra)
