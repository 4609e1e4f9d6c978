r"""Times the catalog audit at scale once features are extracted, and prints peak memory.

    python scripts/benchmark_audit.py [--rows=100000] [--classes=72] [--dim=1280]

Synthetic features (`--classes` Gaussian clusters in `--dim` dimensions, as many rows
per class as a long-tailed catalog has, 5% of the labels flipped, 1% of the rows empty,
200 rows duplicated with a little noise) through the same library calls as
`python -m fashion_jax audit`: the k-fold cross-fitted heads, cleanlab's suspects, the
fill rule and the near-duplicate groups (FAISS, two views a row). Prints the seconds of each part, their
sum against the 15-minute target, the precision of the suspects against the flips, and
the process's peak resident memory.
"""

import argparse
import os
import resource
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_SECONDS = 15 * 60


def synthetic(rows: int, classes: int, dim: int, seed: int = 0):
  """(features, clean labels, noisy labels, flipped rows, empty rows, (copy, original))."""
  rng = np.random.default_rng(seed)
  weights = 1.0 / np.arange(1, classes + 1)  # Long-tailed, as a catalog's categories.
  labels = rng.choice(classes, size=rows, p=weights / weights.sum())
  centres = rng.normal(size=(classes, dim)).astype(np.float32)
  features = centres[labels] * 0.35 + rng.normal(size=(rows, dim)).astype(np.float32)
  copies = rng.choice(rows, size=200, replace=False)
  targets = rng.choice(np.setdiff1d(np.arange(rows), copies), size=200, replace=False)
  features[targets] = features[copies] + 0.05 * rng.normal(size=(200, dim)).astype(np.float32)
  noisy = labels.copy()
  flipped = rng.choice(rows, size=rows // 20, replace=False)
  noisy[flipped] = (labels[flipped] + rng.integers(1, classes, size=len(flipped))) % classes
  empty = rng.choice(np.setdiff1d(np.arange(rows), flipped), size=rows // 100, replace=False)
  return features, labels, noisy, np.sort(flipped), empty, np.stack([copies, targets], 1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rows", type=int, default=100_000)
  parser.add_argument("--classes", type=int, default=72)
  parser.add_argument("--dim", type=int, default=1280)
  args = parser.parse_args()
  sys.path.insert(0, REPO)
  from fashion_jax.audit import cross_fit, labels as labels_lib, near_duplicates

  features, _, noisy, flipped, empty, pairs = synthetic(args.rows, args.classes, args.dim)
  known = np.ones(args.rows, bool)
  known[empty] = False
  seconds = {}
  started = time.time()
  probabilities, _ = cross_fit.out_of_sample_probabilities(features, noisy, known, args.classes)
  seconds["cross-fitted heads"] = time.time() - started
  rows = np.flatnonzero(known)
  started = time.time()
  ranked = rows[labels_lib.find_label_issues(noisy[rows], probabilities[rows])]
  seconds["cleanlab suspects"] = time.time() - started
  started = time.time()
  rule = labels_lib.fill_rule(noisy[rows], probabilities[rows], 0.95)
  seconds["fill rule"] = time.time() - started
  started = time.time()
  digests = np.asarray([str(i) for i in range(args.rows)])
  # Two views of each row, as the audit compares them (the whole photo and its centre):
  # 2 x rows vectors, an HNSW index beyond 100,000.
  centres = features + 0.3 * np.random.default_rng(1).normal(size=features.shape).astype(
      np.float32)
  found = near_duplicates.groups([features, centres], np.ones(args.rows, bool), digests,
                                 threshold=0.95)
  seconds["near-duplicates"] = time.time() - started
  total = sum(seconds.values())
  peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  k = len(flipped)
  precision, _ = labels_lib.ranking_precision_recall(ranked, flipped, k)
  group_of = {r: g for g, group in enumerate(found) for r in group["rows"]}
  grouped = np.mean([group_of.get(a, -1) == group_of.get(b, -2) for a, b in pairs])
  print(f"{args.rows} rows, {args.classes} classes, {args.dim}-d features "
        f"({os.cpu_count()} CPUs)\n")
  print("| part | seconds |\n|---|---|")
  for name, value in seconds.items():
    print(f"| {name} | {value:.1f} |")
  print(f"| **total** | **{total:.1f}** (target {TARGET_SECONDS}: {total / TARGET_SECONDS:.2f}x "
        "of it) |")
  print(f"\npeak resident memory {peak_gib:.2f} GiB; suspects {len(ranked)}, precision of the "
        f"top {k} against the flips {precision:.3f}; fill rule covers {rule.coverage:.3f} at "
        f"{rule.precision:.3f}; duplicated rows grouped {grouped:.3f}")


if __name__ == "__main__":
  main()
