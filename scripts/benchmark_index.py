r"""Catalog index at scale: recall of the approximate index, build time, memory, latency.

    python scripts/benchmark_index.py --sizes=10000,100000,1000000 [--dim=128]

Synthetic unit vectors shaped like a trained embedding (products in clusters of
varying spread) stand in for large catalogs; a catalog column 'group' keeps 10% ('a')
and 1% ('b') of the products for the filtered searches. For each size, the index is
built as `index build` builds it (serving/catalog_index.py: exact up to --exact_max,
HNSW beyond) and searched through CatalogIndex.similar, the service's own path; recall@10
is against exact inner-product search over the same products (numpy). Latency is
per call: one query, and a batch of --batch queries. Prints a markdown table.
"""

import argparse
import os
import time

import numpy as np

from fashion_jax.serving import catalog_index


def synthetic_catalog(size: int, dim: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((max(10, size // 50), dim)).astype(np.float32)
  which = rng.integers(0, len(centres), size)
  spread = rng.uniform(0.3, 1.2, len(centres)).astype(np.float32)[which, None]
  vectors = centres[which] + spread * rng.standard_normal((size, dim)).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  group = np.full(size, "c", dtype=object)
  draw = rng.random(size)
  group[draw < 0.10] = "a"
  group[draw < 0.01] = "b"
  return vectors, group


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
  part = np.argpartition(-scores, k, axis=1)[:, :k]
  return np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1), 1), 1)


def recall(found, exact, k: int) -> float:
  return float(np.mean([len({r for r, _ in f} & set(e[:k])) / min(k, len(e))
                        for f, e in zip(found, exact) if len(e)]))


def percentiles(fn, calls: int) -> tuple[float, float]:
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return tuple(1000 * np.percentile(times, [50, 99]))


def run_size(size: int, args) -> list[dict]:
  vectors, group = synthetic_catalog(size, args.dim)
  rng = np.random.default_rng(1)
  queries = vectors[rng.choice(size, args.queries, replace=False)] + \
      0.05 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
  queries /= np.linalg.norm(queries, axis=1, keepdims=True)
  start = time.perf_counter()
  settings = catalog_index.SearchSettings(exact_max=args.exact_max, ef_search=args.ef_search,
                                          exact_filtered_max=args.exact_filtered_max)
  index = catalog_index.CatalogIndex(
      np.arange(size).astype(str), np.full(size, ""), vectors, {}, {}, {"group": group},
      "embedding", settings)
  build_s = time.perf_counter() - start
  import faiss
  memory = (faiss.serialize_index(index.vector_index).nbytes + vectors.nbytes) / 2**20
  kind = "HNSW" if hasattr(index.vector_index, "hnsw") else "exact"
  rows = []
  all_scores = queries @ vectors.T
  for name, filters, keep in (("none", [], None), ("10%", ["catalog.group=a|b"], "ab"),
                              ("1%", ["catalog.group=b"], "b")):
    mask = None if keep is None else np.isin(group, list(keep))
    scores = all_scores if mask is None else np.where(mask, all_scores, -np.inf)
    exact = top_k(scores, 10)
    found = index.similar(queries, 10, filters)
    path = kind if mask is None or mask.sum() > settings.exact_filtered_max or kind == "exact" \
        else "exact (filtered set)"
    single = percentiles(lambda: index.similar(queries[:1], 10, filters), args.calls)
    batched = percentiles(lambda: index.similar(queries[:args.batch], 10, filters),
                          max(5, args.calls // 10))
    rows.append({"size": size, "filter": name, "search": path,
                 "recall@10": recall(found, exact, 10), "build_s": build_s,
                 "memory_mib": memory, "p50": single[0], "p99": single[1],
                 "batch_p50": batched[0], "batch_p99": batched[1]})
    print(rows[-1], flush=True)
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="10000,100000,1000000")
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--queries", type=int, default=200)
  parser.add_argument("--calls", type=int, default=100)
  parser.add_argument("--batch", type=int, default=64)
  defaults = catalog_index.SearchSettings()  # The service's own settings.
  parser.add_argument("--exact_max", type=int, default=defaults.exact_max)
  parser.add_argument("--exact_filtered_max", type=int, default=defaults.exact_filtered_max)
  parser.add_argument("--ef_search", type=int, default=defaults.ef_search)
  args = parser.parse_args()
  rows = []
  for size in (int(s) for s in args.sizes.split(",")):
    rows += run_size(size, args)
  print(f"\n{os.cpu_count()} CPUs, dim {args.dim}, k=10, {args.queries} queries for recall\n")
  print("| products | filter keeps | search | recall@10 | build s | memory MiB (vectors + index) | "
        f"1 query p50 / p99 ms | {args.batch} queries p50 / p99 ms |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['size']:,} | {r['filter']} | {r['search']} | {r['recall@10']:.3f} | "
          f"{r['build_s']:.1f} | {r['memory_mib']:.0f} | {r['p50']:.2f} / {r['p99']:.2f} | "
          f"{r['batch_p50']:.1f} / {r['batch_p99']:.1f} |")


if __name__ == "__main__":
  main()
