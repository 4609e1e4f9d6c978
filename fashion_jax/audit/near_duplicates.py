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


def _projection(vectors: np.ndarray, dims: int, sample: int = 50_000) -> np.ndarray:
  """`vectors` projected on their first `dims` principal axes (FAISS's PCA, fitted on a
  fixed sample of them) and normalised again: the space the approximate search runs in."""
  faiss = catalog_index.import_faiss()
  picked = np.random.default_rng(0).choice(len(vectors), min(sample, len(vectors)),
                                           replace=False)
  pca = faiss.PCAMatrix(vectors.shape[1], dims)
  pca.train(np.ascontiguousarray(vectors[np.sort(picked)]))
  return unit_rows(pca.apply(np.ascontiguousarray(vectors)))


def _cosines(vectors: np.ndarray, found: np.ndarray, chunk: int = 2048) -> np.ndarray:
  """cosine(vectors[p], vectors[found[p, k]]) for every p, k (-inf where nothing was found)."""
  out = np.full(found.shape, -np.inf, np.float32)
  for start in range(0, len(found), chunk):
    hits = found[start:start + chunk]
    out[start:start + chunk] = np.where(
        hits >= 0, np.einsum("nd,nkd->nk", vectors[start:start + chunk],
                             vectors[np.maximum(hits, 0)]), -np.inf)
  return out


def similar_pairs(views: list[np.ndarray], threshold: float, neighbours: int = 10,
                  exact_max: int = 100_000, search_dims: int = 128
                  ) -> list[tuple[int, int, float]]:
  """(i, j, similarity) with i < j for every row's nearest neighbours whose similarity,
  the largest cosine between any view of i and any view of j, is at least `threshold`;
  `views`: one [N, D] array of L2-normalised vectors per view of the rows.

  Up to `exact_max` vectors in all the neighbours are exact; beyond, an HNSW graph over
  the vectors' first `search_dims` principal components proposes them (a graph over the
  full width costs ~10x more to build) and every similarity is computed again on the
  full vectors, so a pair passes `threshold` on its true cosine."""
  count = len(views[0])
  vectors = np.concatenate(views)
  settings = catalog_index.SearchSettings(exact_max=exact_max)
  width = min(len(views) * (neighbours + 1), len(vectors))
  approximate = len(vectors) > exact_max
  searched = (_projection(vectors, search_dims)
              if approximate and vectors.shape[1] > search_dims else vectors)
  index = catalog_index.build_vector_index(searched, settings)
  if approximate:
    index.hnsw.efSearch = max(settings.ef_search, width)
  scores, found = index.search(searched, width)
  if searched is not vectors:
    scores = _cosines(vectors, found)
  i = np.repeat(np.arange(len(vectors)) % count, width)
  j = found.ravel() % count
  scores = scores.ravel()
  keep = (found.ravel() >= 0) & (i != j) & (scores >= threshold)
  first, second, scores = np.minimum(i, j)[keep], np.maximum(i, j)[keep], scores[keep]
  # The best similarity of each pair (several views meet several views).
  order = np.lexsort((-scores, second, first))
  first, second, scores = first[order], second[order], scores[order]
  new = np.ones(len(first), bool)
  new[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
  return list(zip(first[new].tolist(), second[new].tolist(),
                  scores[new].astype(float).tolist()))


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
