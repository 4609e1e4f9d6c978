r"""How many validation positives and negatives an attribute needs before tuning its
threshold pays.

    python scripts/threshold_rule.py --data=../shared/data/fashion-product-images \
        --workdir=runs/threshold_rule --epochs=3

Builds a shop-like table from the shared data with one multi-valued column,
`tags = season|usage|baseColour` (train/val/test from the study's split file,
docs/results/split.csv), trains `configs/catalog.py` on it with that column as its one
multi-label task (a finished run in the workdir is kept), and scores the
validation and test rows. Then, for validation splits of each `--val_sizes` (random
subsets of the validation rows, `--repeats` draws each), it tunes every attribute's
threshold on the subset as training does (`sigmoid.choose_thresholds`, best F1), but
only for attributes with at least k positives and k negatives there (k in
`--min_examples`; 1 is "every attribute with a positive"), and prints the test micro- and macro-F1 against the
fixed threshold 0.5 (mean and std over the draws, and how often tuning was at least as
good). The rule kept in fashion_jax/tasks/sigmoid.py (`MIN_TUNING_EXAMPLES`) is the
smallest k whose tuned micro-F1 is at least the fixed one's at every size, in the
mean and in nearly every draw. `--epochs` varies how far the scored model trained.
"""

import argparse
import csv
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT_FILE = os.path.join(REPO, "docs", "results", "split.csv")
TAG_COLUMNS = ("season", "usage", "baseColour")
FIXED = 0.5


def write_table(data: str, out: str) -> str:
  """products.csv: id, image (absolute path), tags, split; rows in the split file only."""
  with open(SPLIT_FILE) as f:
    split_of = {row["id"]: row["split"] for row in csv.DictReader(f)}
  path = os.path.join(out, "products.csv")
  with open(os.path.join(data, "styles.csv"), newline="") as f, \
       open(path, "w", newline="") as o:
    writer = csv.writer(o)
    writer.writerow(["id", "image", "tags", "split"])
    for row in csv.DictReader(f):
      if row["id"] not in split_of:
        continue
      tags = "|".join(row[c] for c in TAG_COLUMNS if row[c])
      image = os.path.join(os.path.abspath(data), "images", f"{row['id']}.jpg")
      writer.writerow([row["id"], image, tags, split_of[row["id"]]])
  return path


def train(table: str, workdir: str, epochs: int, seed: int) -> None:
  """A finished run in `workdir` resumes at its end: only its final evaluation reruns."""
  subprocess.run([sys.executable, "-m", "fashion_jax.main", "--config=configs/catalog.py",
                  f"--workdir={workdir}", f"--config.datasets.catalog.root={table}",
                  "--config.datasets.catalog.split_column=split",
                  "--config.catalog.multilabel=tags", f"--config.num_epochs={epochs}",
                  f"--config.seed={seed}"], cwd=REPO, check=True)


def scores_and_targets(workdir: str, split: str):
  """(sigmoid scores [N, C], 0/1 targets [N, C]) of the run's `split` rows."""
  sys.path.insert(0, REPO)
  from fashion_jax.evaluation import trained
  from fashion_jax.data import labelled
  run = trained.load(workdir, checkpoint="latest")
  task = run.task("tags")
  data, _ = labelled.read_labelled(run.config, run.tasks, run.vocabs, task.dataset, split)
  keep = data.masks["tags"] > 0
  rows = np.flatnonzero(keep)
  scores = []
  for _, output, error in trained.predict_items(run, list(rows), data.table.image):
    if error:
      raise SystemExit(f"{workdir} {split}: {error}")
    scores.append(output["tags"])
  return np.stack(scores), data.labels["tags"][rows], list(task.classes)


def f1_scores(scores, targets, thresholds) -> tuple[float, float]:
  """(micro-F1, macro-F1 over classes with a positive) of `scores >= thresholds`."""
  predicted = scores >= np.asarray(thresholds)[None]
  positive = targets > 0
  tp = (predicted & positive).sum(0)
  fp = (predicted & ~positive).sum(0)
  fn = (~predicted & positive).sum(0)
  micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
  present = positive.sum(0) > 0
  macro = np.mean((2 * tp / np.maximum(2 * tp + fp + fn, 1))[present])
  return float(micro), float(macro)


def study(val, test, val_sizes, min_examples, repeats: int, seed: int) -> list[dict]:
  sys.path.insert(0, REPO)
  from fashion_jax.tasks import sigmoid
  val_scores, val_targets = val
  test_scores, test_targets = test
  fixed = f1_scores(test_scores, test_targets, np.full(test_scores.shape[1], FIXED))
  rng = np.random.default_rng(seed)
  rows = []
  for size in val_sizes:
    draws = [rng.choice(len(val_scores), size=min(size, len(val_scores)), replace=False)
             for _ in range(repeats)]
    for k in min_examples:
      micro, macro, tuned = [], [], []
      for pick in draws:
        chosen = sigmoid.choose_thresholds(val_scores[pick], val_targets[pick], FIXED,
                                           min_examples=k)
        m = f1_scores(test_scores, test_targets, chosen)
        micro.append(m[0])
        macro.append(m[1])
        tuned.append(int(sigmoid.tuning_columns(val_targets[pick], k).sum()))
      rows.append({"val_size": size, "min_examples": k, "fixed_micro": fixed[0],
                   "fixed_macro": fixed[1], "micro": np.mean(micro), "micro_std": np.std(micro),
                   "macro": np.mean(macro), "macro_std": np.std(macro),
                   "at_least_fixed": np.mean(np.asarray(micro) >= fixed[0] - 1e-12),
                   "tuned": np.mean(tuned)})
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", required=True)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--val_sizes", default="60,600")
  parser.add_argument("--min_examples", default="1,5,10,20,30,50,75")
  parser.add_argument("--repeats", type=int, default=50)
  args = parser.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  table = write_table(args.data, args.workdir)
  train(table, os.path.join(args.workdir, "run"), args.epochs, args.seed)
  run = os.path.join(args.workdir, "run")
  cached = os.path.join(args.workdir, "scores.npz")  # Of the run's final weights.
  if not os.path.exists(cached):
    val_scores, val_targets, classes = scores_and_targets(run, "val")
    test_scores, test_targets, _ = scores_and_targets(run, "test")
    np.savez(cached, val_scores=val_scores, val_targets=val_targets, test_scores=test_scores,
             test_targets=test_targets, classes=np.asarray(classes))
  with np.load(cached) as f:
    val_scores, val_targets, test_scores, test_targets, classes = (
        f["val_scores"], f["val_targets"], f["test_scores"], f["test_targets"],
        list(f["classes"]))
  print(f"tags: {len(classes)} attributes; {len(val_scores)} val rows, {len(test_scores)} "
        f"test rows; validation positives per attribute: min "
        f"{int(val_targets.sum(0).min())}, median {int(np.median(val_targets.sum(0)))}")
  rows = study((val_scores, val_targets), (test_scores, test_targets),
               [int(v) for v in args.val_sizes.split(",")],
               [int(k) for k in args.min_examples.split(",")], args.repeats, args.seed)
  print(f"| val images | min positives and negatives | attributes tuned | test micro-F1 (fixed "
        f"{FIXED:g}) | test micro-F1 tuned | draws >= fixed | test macro-F1 (fixed) | "
        "test macro-F1 tuned |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['val_size']} | {r['min_examples']} | {r['tuned']:.1f} | "
          f"{r['fixed_micro']:.3f} | {r['micro']:.3f} ± {r['micro_std']:.3f} | "
          f"{r['at_least_fixed']:.0%} | {r['fixed_macro']:.3f} | "
          f"{r['macro']:.3f} ± {r['macro_std']:.3f} |")


if __name__ == "__main__":
  main()
