"""Groups of near-duplicate products: rows whose image embeddings are within a cosine
threshold of each other (re-encoded, resized or cropped copies of one photo), found
through the k nearest neighbours of every row in a FAISS index (exact up to
`exact_max` rows, HNSW beyond, as the catalog index), linked into groups; identical
bytes always group. Groups whose members carry different labels come first.
"""

import numpy as np

from fashion_jax.serving import catalog_index


def _union_find(count: int, pairs) -> np.ndarray:
  parent = np.arange(count)

  def root(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  for a, b in pairs:
    ra, rb = root(a), root(b)
    if ra != rb:
      parent[max(ra, rb)] = min(ra, rb)
  return np.asarray([root(i) for i in range(count)])


def unit_rows(vectors: np.ndarray) -> np.ndarray:
  return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
          ).astype(np.float32)


def similar_pairs(vectors: np.ndarray, threshold: float, neighbours: int = 10,
                  exact_max: int = 100_000) -> list[tuple[int, int, float]]:
  """(i, j, cosine) with i < j for every row's nearest neighbours at or above
  `threshold`; `vectors` are L2-normalised."""
  settings = catalog_index.SearchSettings(exact_max=exact_max)
  index = catalog_index.build_vector_index(vectors, settings)
  if hasattr(index, "hnsw"):
    index.hnsw.efSearch = max(settings.ef_search, neighbours + 1)
  scores, found = index.search(vectors, min(neighbours + 1, len(vectors)))
  pairs = {}
  for i, (row_scores, row_found) in enumerate(zip(scores, found)):
    for score, j in zip(row_scores, row_found):
      if j >= 0 and j != i and score >= threshold:
        key = (min(i, int(j)), max(i, int(j)))
        pairs[key] = max(pairs.get(key, -1.0), float(score))
  return [(a, b, s) for (a, b), s in sorted(pairs.items())]


def groups(vectors: np.ndarray, readable: np.ndarray, digests: np.ndarray, threshold: float,
           neighbours: int = 10, exact_max: int = 100_000) -> list[dict]:
  """Groups of 2+ rows: {'rows', 'min_similarity', 'exact'} (exact: all the same bytes)."""
  rows = np.flatnonzero(readable)
  pairs = [(rows[a], rows[b], s) for a, b, s in
           similar_pairs(unit_rows(vectors[rows]), threshold, neighbours, exact_max)]
  by_digest = {}
  for row in rows:
    by_digest.setdefault(digests[row], []).append(int(row))
  same_bytes = [(members[0], m, 1.0) for members in by_digest.values() for m in members[1:]]
  roots = _union_find(len(vectors), [(a, b) for a, b, _ in pairs + same_bytes])
  linked = {}
  for a, b, s in pairs + same_bytes:
    linked.setdefault(roots[a], []).append(s)
  members = {}
  for row in rows:
    members.setdefault(roots[row], []).append(int(row))
  out = []
  for root, group in members.items():
    if len(group) > 1:
      out.append({"rows": group, "min_similarity": float(min(linked[root])),
                  "exact": len({digests[r] for r in group}) == 1})
  return out


def conflicting_tasks(group_rows, columns: dict[str, np.ndarray]) -> list[str]:
  """The label columns on which a group's members disagree (empty values ignored)."""
  return [name for name, values in columns.items()
          if len({values[r] for r in group_rows if values[r]}) > 1]
