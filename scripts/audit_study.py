r"""How well the catalog audit finds injected label errors and near-duplicate copies.

    python scripts/audit_study.py --data=../shared/data/fashion-product-images \
        --workdir=runs/audit_study [--image_size=224] [--l2=1e-3,1e-2,1e-1]

On the shared product images (every row of styles.csv with an image), features from
the packaged ImageNet Lite0 (frozen: it never saw these labels) at --image_size:

1. Heads: the out-of-sample accuracy and log loss of the cross-fitted linear heads on
   the clean labels of articleType and baseColour, for each --l2.
2. Label noise: 5% and 20% of a task's labels flipped, uniformly to another class or to
   the class most confused with the true one (from the out-of-sample confusion matrix
   of the clean labels); the heads cross-fitted on the noisy labels (the features never
   saw labels at all); precision among the top-k suspects (k = the number flipped) and
   recall of the flips in the top 2k, for cleanlab's ranked suspects (the audit's
   list), and for the baseline that ranks every row by the probability of its given
   label; and the precision and recall of cleanlab's whole flagged set. --seeds draws.
3. Near-duplicates: --copies random images re-encoded (JPEG quality 60), resized (to
   70%), and cropped (the central 85%), one kind each in turn, added to the catalog;
   compared as the audit compares them (the whole photo and its central
   --duplicate_crop, at --duplicate_image_size); the share of copies grouped with their
   original at each --thresholds, and how many other rows land in groups there; and
   at 0.93, the audit's threshold, the share of the exact search's pairs that the
   approximate one (HNSW over 128 principal components, what catalogs beyond
   50,000 rows get) finds too.

Prints markdown tables; writes <workdir>/audit_study.json.
"""

import argparse
import csv
import io
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ("articleType", "baseColour")


class BytesImages:
  """Images held in memory (the table's Images protocol)."""

  def __init__(self, items: list[bytes], names: list[str]):
    self.items, self.names = items, names

  def __len__(self):
    return len(self.items)

  def __getitem__(self, index):
    return self.items[index]

  def describe(self, index):
    return self.names[index]


def read_shared(data: str):
  """(ids, image paths, {column: values}) of the styles.csv rows with an image."""
  ids, paths, columns = [], [], {t: [] for t in TASKS}
  with open(os.path.join(data, "styles.csv"), newline="") as f:
    for row in csv.DictReader(f):
      path = os.path.join(data, "images", f"{row['id']}.jpg")
      if os.path.exists(path):
        ids.append(row["id"])
        paths.append(path)
        for t in TASKS:
          columns[t].append(row[t] or "")
  return ids, paths, columns


def copy_of(data: bytes, kind: int) -> bytes:
  from PIL import Image
  image = Image.open(io.BytesIO(data)).convert("RGB")
  w, h = image.size
  if kind == 1:
    image = image.resize((int(w * 0.7), int(h * 0.7)), Image.BILINEAR)
  elif kind == 2:
    dx, dy = int(w * 0.075), int(h * 0.075)
    image = image.crop((dx, dy, w - dx, h - dy))
  out = io.BytesIO()
  image.save(out, "JPEG", quality=60 if kind == 0 else 90)
  return out.getvalue()


def encode(values, min_count: int):
  classes = sorted({v for v in values if v})
  counts = {c: sum(v == c for v in values) for c in classes}
  classes = [c for c in classes if counts[c] >= min_count]
  index = {c: i for i, c in enumerate(classes)}
  labels = np.asarray([index.get(v, -1) for v in values])
  return labels, classes


def log_loss(probabilities, labels):
  return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels],
                                          1e-12))))


def flip(labels, rate, mode, confusion, rng):
  n = len(labels)
  chosen = rng.choice(n, size=int(round(rate * n)), replace=False)
  noisy = labels.copy()
  classes = confusion.shape[0]
  for row in chosen:
    true = labels[row]
    if mode == "confusable":
      off = confusion[true].astype(float).copy()
      off[true] = -1
      target = int(np.argmax(off)) if off.max() > 0 else None
    else:
      target = None
    if target is None:
      target = int(rng.choice([c for c in range(classes) if c != true]))
    noisy[row] = target
  return noisy, np.sort(chosen)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data",
                                                     "fashion-product-images"))
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--l2", default="1e-3,1e-2,1e-1")
  parser.add_argument("--chosen_l2", type=float, default=None,
                      help="The heads' L2 for parts 2-3 (default: HeadSettings's).")
  parser.add_argument("--rates", default="0.05,0.2")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--copies", type=int, default=200)
  parser.add_argument("--thresholds", default="0.9,0.92,0.93,0.94,0.95")
  parser.add_argument("--duplicate_image_size", type=int, default=160)
  parser.add_argument("--duplicate_crop", type=float, default=0.8,
                      help="The second view: the central share of each photo (1: none).")
  parser.add_argument("--parts", default="heads,noise,duplicates")
  args = parser.parse_args()
  sys.path.insert(0, REPO)
  import dataclasses
  from fashion_jax.audit import cross_fit, features, labels as labels_lib, near_duplicates
  from fashion_jax.data import transforms
  from fashion_jax.data.table import FileImages, Table
  from fashion_jax.config_lib import load_sibling_config

  config = load_sibling_config(os.path.join(REPO, "configs", "mtl_pretrained.py"),
                               "mtl_pretrained")
  os.makedirs(args.workdir, exist_ok=True)
  ids, paths, columns = read_shared(args.data)
  table = Table(images=FileImages(paths), rows=np.arange(len(ids)),
                ids=np.asarray(ids, dtype=object),
                columns={k: np.asarray(v, dtype=object) for k, v in columns.items()})
  started = time.time()
  feats = features.extract(table, config.model, args.image_size,
                           cache_dir=os.path.join(args.workdir, f"features_{args.image_size}"))
  out = {"image_size": args.image_size, "rows": len(ids),
         "feature_seconds": round(time.time() - started, 1)}
  print(f"{len(ids)} images, features at {args.image_size} px "
        f"({out['feature_seconds']} s; 0 if cached)")
  base = cross_fit.HeadSettings()
  if args.chosen_l2 is not None:
    base = dataclasses.replace(base, l2=args.chosen_l2)
  parts = args.parts.split(",")

  if "heads" in parts:
    print("\n| task | l2 | out-of-sample accuracy | log loss | seconds |\n|---|---|---|---|---|")
    out["heads"] = []
    for task in TASKS:
      labels, classes = encode(columns[task], base.folds)
      known = labels >= 0
      for l2 in (float(v) for v in args.l2.split(",")):
        t0 = time.time()
        p, _ = cross_fit.out_of_sample_probabilities(
            feats.values, np.maximum(labels, 0), known, len(classes),
            dataclasses.replace(base, l2=l2))
        acc = float(np.mean(p[known].argmax(1) == labels[known]))
        row = {"task": task, "l2": l2, "accuracy": acc, "log_loss": log_loss(p[known],
                                                                             labels[known]),
               "seconds": round(time.time() - t0, 1)}
        out["heads"].append(row)
        print(f"| {task} | {l2:g} | {acc:.3f} | {row['log_loss']:.3f} | {row['seconds']} |")

  if "noise" in parts:
    print(f"\nheads l2 {base.l2:g}\n\n| task | flips | mode | suspects: precision@k | "
          "suspects: recall@2k | lowest given p: precision@k | lowest given p: recall@2k | "
          "cleanlab set: precision | cleanlab set: recall | flagged |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    out["noise"] = []
    for task in TASKS:
      labels, classes = encode(columns[task], base.folds)
      rows = np.flatnonzero(labels >= 0)
      clean = labels[rows]
      x = feats.values[rows]
      everything = np.ones(len(rows), bool)
      p_clean, _ = cross_fit.out_of_sample_probabilities(x, clean, everything, len(classes), base)
      confusion = np.zeros((len(classes), len(classes)), np.int64)
      np.add.at(confusion, (clean, p_clean.argmax(1)), 1)
      for rate in (float(r) for r in args.rates.split(",")):
        for mode in ("uniform", "confusable"):
          results = []
          for seed in (int(s) for s in args.seeds.split(",")):
            rng = np.random.default_rng(seed)
            noisy, flipped = flip(clean, rate, mode, confusion, rng)
            p, _ = cross_fit.out_of_sample_probabilities(
                x, noisy, everything, len(classes), dataclasses.replace(base, seed=seed))
            k = len(flipped)
            ranked = labels_lib.find_label_issues(noisy, p)
            baseline = labels_lib.lowest_given_probability(noisy, p)
            s_p, _ = labels_lib.ranking_precision_recall(ranked, flipped, k)
            _, s_r = labels_lib.ranking_precision_recall(ranked, flipped, 2 * k)
            b_p, _ = labels_lib.ranking_precision_recall(baseline, flipped, k)
            _, b_r = labels_lib.ranking_precision_recall(baseline, flipped, 2 * k)
            set_p, set_r = labels_lib.ranking_precision_recall(ranked, flipped, len(ranked))
            results.append([s_p, s_r, b_p, b_r, set_p, set_r, len(ranked)])
          mean, std = np.mean(results, 0), np.std(results, 0)
          row = {"task": task, "rate": rate, "mode": mode, "flips": k,
                 "mean": mean.tolist(), "std": std.tolist(), "seeds": len(results)}
          out["noise"].append(row)
          cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean[:6], std[:6]))
          print(f"| {task} | {rate:.0%} ({k}) | {mode} | {cells} | {mean[6]:.0f} |")

  if "duplicates" in parts:
    rng = np.random.default_rng(0)
    originals = rng.choice(len(ids), size=args.copies, replace=False)
    items = [transforms.read_file(p) for p in paths]
    names = list(paths)
    kinds = ["re-encoded", "resized", "cropped"]
    for n, row in enumerate(originals):
      items.append(copy_of(items[row], n % 3))
      names.append(f"copy {n} ({kinds[n % 3]}) of {paths[row]}")
    copy_ids = np.asarray([f"copy{n}" for n in range(args.copies)], dtype=object)
    only_copies = Table(images=BytesImages(items[len(ids):], names[len(ids):]),
                        rows=np.arange(args.copies), ids=copy_ids, columns={})
    views = []
    for crop in sorted({1.0, args.duplicate_crop}, reverse=True):
      both = [features.extract(t, config.model, args.duplicate_image_size,
                               cache_dir=os.path.join(args.workdir, folder), crop=crop)
              for t, folder in ((table, "features"), (only_copies, "features_copies"))]
      views.append(np.concatenate([both[0].values, both[1].values]))
    readable = np.ones(len(items), bool)
    digests = np.asarray([str(i) for i in range(len(items))])  # No two files are equal.
    print("\n| threshold | copies grouped with their original | by kind (re-encoded / "
          "resized / cropped) | groups | rows in groups that are neither |\n"
          "|---|---|---|---|---|")
    out["duplicates"] = []
    for threshold in (float(t) for t in args.thresholds.split(",")):
      found = near_duplicates.groups(views, readable, digests, threshold)
      group_of = {}
      for g, group in enumerate(found):
        for r in group["rows"]:
          group_of[r] = g
      hit = np.asarray([group_of.get(len(ids) + n, -1) == group_of.get(int(o), -2)
                        for n, o in enumerate(originals)])
      pair_rows = set(originals.tolist()) | set(range(len(ids), len(items)))
      others = sum(1 for g in found for r in g["rows"] if r not in pair_rows)
      by_kind = [float(hit[k::3].mean()) for k in range(3)]
      row = {"threshold": threshold, "grouped": float(hit.mean()), "by_kind": by_kind,
             "groups": len(found), "other_rows_in_groups": others}
      out["duplicates"].append(row)
      print(f"| {threshold} | {hit.mean():.3f} | {' / '.join(f'{v:.2f}' for v in by_kind)} | "
            f"{len(found)} | {others} |")

    unit = [near_duplicates.unit_rows(v) for v in views]
    exact = {(a, b) for a, b, _ in near_duplicates.similar_pairs(unit, 0.93)}
    approximate = {(a, b) for a, b, _ in near_duplicates.similar_pairs(unit, 0.93,
                                                                        exact_max=0)}
    copy_pairs = {(int(o), len(ids) + n) for n, o in enumerate(originals)}
    out["approximate_search"] = {
        "exact_pairs": len(exact), "found_by_approximate": len(exact & approximate),
        "copy_pairs_found": len(copy_pairs & approximate) / len(copy_pairs)}
    print(f"\nAt 0.93 the approximate search finds {len(exact & approximate)} of the exact "
          f"search's {len(exact)} pairs ({len(exact & approximate) / len(exact):.3f}) and "
          f"{out['approximate_search']['copy_pairs_found']:.3f} of the copy-original pairs.")

  with open(os.path.join(args.workdir, "audit_study.json"), "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
