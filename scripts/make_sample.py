r"""Rebuilds the embedded sample (fashion_jax/data/sample/) from a fashion-product-images folder.

    python scripts/make_sample.py --source=../shared/data/fashion-product-images

Takes `--per_class` random images (seeded) of each of the `--classes` most frequent
article types, copies the JPEGs unchanged and writes their styles.csv rows, so the
sample is real data with enough examples per class to learn from in a demo run.
"""

import argparse
import collections
import csv
import os
import random
import shutil

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "fashion_jax", "data", "sample")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--source", required=True, help="Folder with styles.csv and images/.")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--classes", type=int, default=12)
  parser.add_argument("--per_class", type=int, default=40)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  with open(os.path.join(args.source, "styles.csv"), newline="") as f:
    rows = [r for r in csv.DictReader(f)
            if os.path.exists(os.path.join(args.source, "images", f"{r['id']}.jpg"))]
  by_type = collections.defaultdict(list)
  for row in rows:
    by_type[row["articleType"]].append(row)
  top = [t for t, _ in collections.Counter(r["articleType"] for r in rows).most_common(args.classes)]
  rng = random.Random(args.seed)
  chosen = sorted((r for t in top for r in rng.sample(by_type[t], args.per_class)),
                  key=lambda r: int(r["id"]))

  if os.path.exists(os.path.join(args.out, "images")):
    shutil.rmtree(os.path.join(args.out, "images"))
  os.makedirs(os.path.join(args.out, "images"))
  with open(os.path.join(args.out, "styles.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(chosen)
  for row in chosen:
    shutil.copy(os.path.join(args.source, "images", f"{row['id']}.jpg"),
                os.path.join(args.out, "images"))
  print(f"Wrote {len(chosen)} images of {len(top)} article types to {args.out}")


if __name__ == "__main__":
  main()
