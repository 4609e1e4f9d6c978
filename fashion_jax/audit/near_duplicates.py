"""Groups of near-duplicate products: rows whose images are within a cosine similarity
of each other (re-encoded, resized or cropped copies of one photo), found through the k
nearest neighbours of every row in a FAISS index (exact up to `exact_max` vectors, HNSW
beyond, as the catalog index), linked into groups; identical bytes always group.

Each row has several views (the audit's: the whole photo and its central 80%), and two
rows' similarity is the largest between any of their views, so that a cropped copy
meets its original's centre. Groups whose members carry different labels come first.
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


def similar_pairs(views: list[np.ndarray], threshold: float, neighbours: int = 10,
                  exact_max: int = 100_000) -> list[tuple[int, int, float]]:
  """(i, j, similarity) with i < j for every row's nearest neighbours whose similarity,
  the largest cosine between any view of i and any view of j, is at least `threshold`;
  `views`: one [N, D] array of L2-normalised vectors per view of the rows."""
  count = len(views[0])
  vectors = np.concatenate(views)
  settings = catalog_index.SearchSettings(exact_max=exact_max)
  index = catalog_index.build_vector_index(vectors, settings)
  width = min(len(views) * (neighbours + 1), len(vectors))
  if hasattr(index, "hnsw"):
    index.hnsw.efSearch = max(settings.ef_search, width)
  scores, found = index.search(vectors, width)
  pairs = {}
  for position, (row_scores, row_found) in enumerate(zip(scores, found)):
    i = position % count
    for score, hit in zip(row_scores, row_found):
      j = int(hit) % count
      if hit >= 0 and j != i and score >= threshold:
        key = (min(i, j), max(i, j))
        pairs[key] = max(pairs.get(key, -1.0), float(score))
  return [(a, b, s) for (a, b), s in sorted(pairs.items())]


def groups(views: list[np.ndarray], readable: np.ndarray, digests: np.ndarray,
           threshold: float, neighbours: int = 10, exact_max: int = 100_000) -> list[dict]:
  """Groups of 2+ rows: {'rows', 'min_similarity', 'exact'} (exact: all the same bytes).
  `views`: the rows' vectors, one array per view (e.g. the whole photo and its centre)."""
  rows = np.flatnonzero(readable)
  pairs = [(rows[a], rows[b], s) for a, b, s in
           similar_pairs([unit_rows(v[rows]) for v in views], threshold, neighbours,
                         exact_max)]
  by_digest = {}
  for row in rows:
    by_digest.setdefault(digests[row], []).append(int(row))
  same_bytes = [(members[0], m, 1.0) for members in by_digest.values() for m in members[1:]]
  roots = _union_find(len(readable), [(a, b) for a, b, _ in pairs + same_bytes])
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
