"""The catalog index: every product's embedding and predicted labels, searchable.

Built once per model and catalog (`python -m fashion_jax index build`), it answers:

  similar   the nearest products to an embedding (FAISS inner product on unit vectors:
            cosine), optionally among products that pass filters
  by_label  products ranked by a head's probability for one label ("articleType =
            Shirts"), with the same filters
  filters   `task=value` on what the model predicted (a class task's top class, an
            attribute task's labels above threshold) or `catalog.column=value` on the
            catalog's own labels; `a|b` is either value; several filters must all hold

On disk (a folder): index.json (the manifest), shards/NNNNNN.npz (ids, image paths,
embeddings, every head's outputs, catalog labels, a fixed number of products each,
written atomically, so an interrupted build resumes where it stopped) and vectors.faiss.

FAISS: an exact inner-product index up to `exact_max` products, HNSW beyond. Filtered
searches that keep few enough products (`exact_filtered_max` or fewer) are exact over
those products; larger ones search the HNSW graph with a selector and a search depth
scaled by how much the filter removes (docs/serving.md has the recall and latency). Needs numpy and faiss-cpu: no JAX.
"""

import dataclasses
import json
import os

import numpy as np

from fashion_jax.errors import ConfigError, DataError
from fashion_jax.serving import artifact

FORMAT = "fashion_jax.index"
VERSION = 1
MANIFEST = "index.json"
SHARDS = "shards"
VECTORS = "vectors.faiss"
CATALOG_PREFIX = "catalog."


@dataclasses.dataclass
class SearchSettings:
  exact_max: int = 100_000  # Up to this many products: an exact index.
  exact_filtered_max: int = 200_000  # Filtered searches keeping this many or fewer: exact.
  hnsw_m: int = 32  # Graph degree of the approximate index.
  ef_construction: int = 80
  ef_search: int = 128  # Search depth (recall vs latency) without filters.
  max_ef_search: int = 4096  # Cap on the depth scaled up for filtered searches.


def shard_path(folder: str, shard: int) -> str:
  return os.path.join(folder, SHARDS, f"{shard:06d}.npz")


def read_manifest(folder: str) -> dict:
  return artifact.read_versioned_json(folder, MANIFEST, FORMAT, VERSION, "a catalog index",
                                      "build one with python -m fashion_jax index build")


def write_json_atomic(path: str, value: dict) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1)
  os.replace(tmp, path)


def import_faiss():
  """faiss, or a ConfigError naming the extra that installs it."""
  try:
    import faiss  # Lazy: the [serve] extra.
  except ImportError as e:
    raise ConfigError("The catalog index needs faiss-cpu: pip install 'fashion_jax[serve]' "
                      "(or [audit]).") from e
  return faiss


def build_vector_index(vectors: np.ndarray, settings: SearchSettings):
  """Exact inner product up to settings.exact_max vectors, HNSW beyond."""
  faiss = import_faiss()
  dim = vectors.shape[1]
  if len(vectors) <= settings.exact_max:
    index = faiss.IndexFlatIP(dim)
  else:
    index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = settings.ef_construction
  index.add(np.ascontiguousarray(vectors, np.float32))
  return index


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the k largest scores per row, best first."""
  k = min(k, scores.shape[1])
  part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
  order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
  return np.take_along_axis(part, order, 1)


class CatalogIndex:
  """An index in memory, ready to search: `load` reads a built one."""

  def __init__(self, ids, paths, vectors, scores: dict, outputs: dict, catalog_labels: dict,
               embedding_task: str, settings: SearchSettings | None = None,
               vector_index=None, root: str = "", manifest: dict | None = None):
    self.settings = settings or SearchSettings()
    self.ids = np.asarray(ids).astype(str)
    self.paths = np.asarray(paths).astype(str)
    self.vectors = np.ascontiguousarray(vectors, np.float32)
    self.scores = scores  # Class and attribute tasks: [N, classes].
    self.outputs = outputs  # Task name -> served output spec (serving.outputs).
    self.catalog_labels = {c: np.asarray(v).astype(str) for c, v in catalog_labels.items()}
    self.embedding_task = embedding_task
    self.root = root
    self.manifest = manifest or {}
    self.row_of = {product_id: row for row, product_id in enumerate(self.ids)}
    if len(self.row_of) != len(self.ids):
      raise DataError("product ids repeat in the index; ids must be unique.")
    self.top_class = {name: s.argmax(-1) for name, s in self.scores.items()
                      if self.outputs[name]["form"] == "classes"}
    self.vector_index = (vector_index if vector_index is not None
                         else build_vector_index(self.vectors, self.settings))
    if self.vector_index.ntotal != len(self.ids):
      raise ConfigError(f"the vector index holds {self.vector_index.ntotal} vectors for "
                        f"{len(self.ids)} products; rebuild it.")

  @classmethod
  def load(cls, folder: str, settings: SearchSettings | None = None) -> "CatalogIndex":
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
      raise ConfigError(f"--index={folder}: the build did not finish ({manifest.get('done', 0)}"
                        f" of {manifest['count']} products); run the same index build "
                        "command again to resume it.")
    outputs = artifact.output_specs(manifest["model"])
    parts = []
    for shard in range(manifest["shards"]):
      path = shard_path(folder, shard)
      try:
        with np.load(path, allow_pickle=False) as f:
          parts.append({k: f[k] for k in f.files})
      except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable shard of the index ({e}); delete it and run "
                          "index build again to rewrite it.") from e
    join = lambda key: np.concatenate([p[key] for p in parts])  # noqa: E731
    vector_index = None
    vectors_path = os.path.join(folder, VECTORS)
    if os.path.exists(vectors_path):
      try:
        vector_index = import_faiss().read_index(vectors_path)
      except RuntimeError as e:  # FAISS reports a bad file this way.
        raise ConfigError(f"{vectors_path}: unreadable ({e}); delete it and run index build "
                          "again.") from e
    return cls(join("ids"), join("paths"), join("embeddings"),
               {name: join(f"out/{name}") for name, spec in outputs.items()
                if spec["form"] in ("classes", "attributes")},
               outputs,
               {key[len("label/"):]: join(key) for key in parts[0] if key.startswith("label/")},
               manifest["embedding_task"], settings, vector_index,
               manifest.get("image_root", ""), manifest)

  def __len__(self) -> int:
    return len(self.ids)

  # --- Filters ---
  def label_mask(self, field: str, value: str) -> np.ndarray:
    """Products whose `field` (a task's prediction, or catalog.<column>) is `value`."""
    if field.startswith(CATALOG_PREFIX):
      column = field[len(CATALOG_PREFIX):]
      if column not in self.catalog_labels:
        raise ValueError(f"filter {field!r}: the catalog has no column {column!r} (it has "
                         f"{sorted(self.catalog_labels)}).")
      return self.catalog_labels[column] == value
    spec = self.outputs.get(field)
    if spec is None or field not in self.scores:
      raise ValueError(f"filter {field!r}: not a class or attribute task of the model "
                       f"({sorted(self.scores)}) nor catalog.<column> "
                       f"({sorted(self.catalog_labels)}).")
    if value not in spec["classes"]:
      raise ValueError(f"filter {field}={value!r}: not one of {field}'s labels "
                       f"{spec['classes']}.")
    c = spec["classes"].index(value)
    if spec["form"] == "classes":
      return self.top_class[field] == c
    return self.scores[field][:, c] >= spec["thresholds"][c]

  def filter_mask(self, filters) -> np.ndarray | None:
    """`filters`: 'field=value' or 'field=a|b' strings, all of which must hold."""
    mask = None
    for item in filters or ():
      field, sep, values = str(item).partition("=")
      if not sep or not field or not values:
        raise ValueError(f"filter {item!r}: expected field=value (or field=a|b).")
      keep = np.zeros(len(self), bool)
      for value in values.split("|"):
        keep |= self.label_mask(field.strip(), value.strip())
      mask = keep if mask is None else mask & keep
    return mask

  # --- Search ---
  def similar(self, queries: np.ndarray, k: int = 10, filters=(), exclude=None
              ) -> list[list[tuple[int, float]]]:
    """Per query vector, up to k (row, cosine) of the nearest products passing
    `filters`, best first; `exclude`: a row left out (the query's own product)."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
    mask = self.filter_mask(filters)
    if exclude is not None:
      mask = np.ones(len(self), bool) if mask is None else mask.copy()
      mask[exclude] = False
    if mask is None:
      scores, rows = self._search(queries, k, None)
    elif not mask.any():
      return [[] for _ in queries]
    else:
      scores, rows = self._search(queries, k, mask)
    return [[(int(r), float(s)) for r, s in zip(row, score) if r >= 0]
            for row, score in zip(rows, scores)]

  def _is_exact(self) -> bool:
    return not hasattr(self.vector_index, "hnsw")

  def _search(self, queries, k, mask):
    faiss = import_faiss()
    k = min(k, len(self))
    if mask is None and self._is_exact():
      return self.vector_index.search(queries, k)
    if mask is None:
      params = faiss.SearchParametersHNSW(efSearch=max(self.settings.ef_search, k))
      return self.vector_index.search(queries, k, params=params)
    bits = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
    kept = int(mask.sum())
    if self._is_exact() or kept <= self.settings.exact_filtered_max:
      # Exact over the kept products: the flat vectors (the HNSW index's own storage)
      # scanned with the selector, without copying the kept rows out.
      flat = (self.vector_index if self._is_exact()
              else faiss.downcast_index(self.vector_index.storage))
      return flat.search(queries, k, params=faiss.SearchParameters(sel=selector))
    # The graph walk passes over excluded products: a filter keeping a fraction f of
    # the catalog needs about 1/f times the depth to meet as many eligible ones.
    ef = int(min(self.settings.max_ef_search, self.settings.ef_search * len(mask) / kept))
    params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))
    return self.vector_index.search(queries, k, params=params)

  def by_label(self, task: str, label: str, k: int = 10, filters=()
               ) -> list[tuple[int, float]]:
    """Up to k (row, probability of `label`) with the highest probability, best first."""
    if task not in self.scores:
      raise ValueError(f"label search: {task!r} is not a class or attribute task of the "
                       f"model ({sorted(self.scores)}).")
    classes = self.outputs[task]["classes"]
    if label not in classes:
      raise ValueError(f"label search: {label!r} is not one of {task}'s labels {classes}.")
    column = self.scores[task][:, classes.index(label)]
    mask = self.filter_mask(filters)
    rows = np.arange(len(self)) if mask is None else np.flatnonzero(mask)
    if len(rows) == 0:
      return []
    top = _top_k(column[rows][None], k)[0]
    return [(int(rows[i]), float(column[rows[i]])) for i in top]

  # --- Products ---
  def row(self, product_id: str) -> int:
    if product_id not in self.row_of:
      raise KeyError(product_id)
    return self.row_of[product_id]

  def tags(self, row: int) -> dict:
    """A product's predicted labels: a class task's top class (with its probability),
    an attribute task's labels above threshold."""
    tags = {}
    for name, scores in self.scores.items():
      spec = self.outputs[name]
      if spec["form"] == "classes":
        c = int(self.top_class[name][row])
        tags[name] = [{"label": spec["classes"][c], "probability": round(float(scores[row, c]), 4)}]
      else:
        tags[name] = [{"label": spec["classes"][c], "score": round(float(scores[row, c]), 4)}
                      for c in np.flatnonzero(scores[row] >= np.asarray(spec["thresholds"]))]
    return tags

  def product(self, row: int) -> dict:
    return {"id": self.ids[row], "tags": self.tags(row),
            "catalog": {c: v[row] for c, v in self.catalog_labels.items()}}

  def image_path(self, row: int) -> str:
    """The product's image file, only if it lies under the index's image root."""
    path = os.path.realpath(self.paths[row])
    root = os.path.realpath(self.root) if self.root else ""
    if not root or os.path.commonpath([root, path]) != root:
      raise PermissionError(f"product {self.ids[row]!r}: its image is outside the catalog "
                            "root")
    return path

