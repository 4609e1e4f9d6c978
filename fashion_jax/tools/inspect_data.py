r"""Checks a configured dataset before any training: what a run would read, and what is
wrong with it.

    python -m fashion_jax.inspect_data --config=configs/catalog.py \
        --config.datasets.catalog.root=/data/shop/products.csv \
        --config.catalog.softmax=category,colour --config.catalog.multilabel=tags \
        --out=shop_report.json

Prints, per dataset: rows read and the rows the source skipped (with their lines), images
that are missing or do not decode, duplicate ids and duplicate images (the same bytes),
per task the label coverage, the class counts and the classes `min_count` would drop
(softmax), the labels per row (multi-label), the identities that P x K batches could use
(embedding), and the split sizes; and writes the same as JSON to --out. One pass over
the images, with a progress bar.
"""

import collections
import hashlib
import io
import json

import numpy as np
from absl import flags
from ml_collections import config_flags

from fashion_jax import validation
from fashion_jax.data import labelled, sources
from fashion_jax.tools import cli

_SHOWN = 10  # Examples kept per problem and rare classes listed per task.


def _define_flags():
  config_flags.DEFINE_config_file("config", None, "The experiment config.", lock_config=False)
  flags.DEFINE_string("out", "inspect_data.json", "Where to write the report as JSON.")
  flags.DEFINE_bool("check_images", True, "Open every image (decode its header).")


def _images(table, check: bool, progress: bool) -> dict:
  """Unreadable images and duplicate images (same bytes), in one pass."""
  from PIL import Image
  from tqdm import tqdm
  unreadable, by_hash = [], collections.defaultdict(list)
  for i in tqdm(range(len(table)), desc="images", unit="img", disable=not progress):
    where = table.images.describe(int(table.rows[i]))
    try:
      data = table.image(i)
    except (OSError, ValueError) as e:
      unreadable.append(f"{where} ({e})")
      continue
    by_hash[hashlib.sha1(data).hexdigest()].append(str(table.ids[i]))
    if check:
      try:
        with Image.open(io.BytesIO(data)) as image:
          image.size  # noqa: B018 - reads the header.
      except Exception as e:  # PIL raises many types for a file it cannot read.
        unreadable.append(f"{where} ({type(e).__name__})")
  duplicates = [ids for ids in by_hash.values() if len(ids) > 1]
  return {"unreadable": len(unreadable), "unreadable_first": unreadable[:_SHOWN],
          "duplicate_image_groups": len(duplicates),
          "duplicate_images_first": duplicates[:_SHOWN]}


def _task_report(task, table, train_rows) -> dict:
  values = table.columns[task.column]
  labelled_rows = np.asarray([bool(v) for v in values])
  out = {"kind": task.kind, "column": task.column,
         "coverage": float(labelled_rows.mean()) if len(values) else 0.0}
  if task.kind in ("softmax", "embedding"):
    counts = collections.Counter(values[train_rows][labelled_rows[train_rows]])
    out["classes_in_train"] = len(counts)
    if task.kind == "softmax":
      rare = sorted((c for c, n in counts.items() if n < task.min_count),
                    key=lambda c: counts[c])
      out["min_count"] = task.min_count
      out["dropped_by_min_count"] = len(rare)
      out["dropped_first"] = [f"{c} ({counts[c]})" for c in rare[:_SHOWN]]
      out["largest"] = [f"{c} ({n})" for c, n in counts.most_common(_SHOWN)]
    else:  # Identities for P x K batches: values shared by 2+ training images.
      out["identities_with_2_plus_images"] = sum(n >= 2 for n in counts.values())
  elif task.kind == "sigmoid":
    separator = task.option("separator")
    per_row = [len([v for v in value.split(separator) if v.strip()])
               for value in values[labelled_rows]]
    labels = collections.Counter(label.strip() for value in values[train_rows]
                                 for label in value.split(separator) if label.strip())
    out["labels_per_row_mean"] = float(np.mean(per_row)) if per_row else 0.0
    out["rows_with_no_labels"] = int(sum(n == 0 for n in per_row))
    out["labels_in_train"] = len(labels)
  return out


def inspect(config, check_images: bool = True, progress: bool = True) -> dict:
  """The report of every configured dataset (see the module docstring)."""
  tasks = validation.validate_config(config)
  report = {}
  for name, dataset_config in config.datasets.items():
    where = f"config.datasets.{name}"
    resolved = sources.resolve_dataset_config(dataset_config, where)
    own = [t for t in tasks if t.dataset == name]
    table, problems = labelled.read_table(config, name, resolved, tasks)
    rows = labelled.split_rows(table, resolved, where,
                               labelled.stratify_column(resolved, own, name))
    ids = collections.Counter(table.ids)
    duplicate_ids = [i for i, n in ids.items() if n > 1]
    report[name] = {
        "source": resolved.source, "root": resolved.root, "rows": len(table),
        "skipped": problems.to_dict()["problems"],
        "duplicate_ids": len(duplicate_ids), "duplicate_ids_first": duplicate_ids[:_SHOWN],
        "images": _images(table, check_images, progress),
        "splits": {split: int(len(r)) for split, r in rows.items()},
        "tasks": {t.name: _task_report(t, table, rows["train"]) for t in own}}
  return report


def _print(report: dict) -> None:
  for name, data in report.items():
    print(f"{name} ({data['source']}, {data['root']}): {data['rows']} rows; splits "
          + ", ".join(f"{k} {v}" for k, v in data["splits"].items()))
    for kind, problem in data["skipped"].items():
      print(f"  {kind}: {problem['count']} (first: {', '.join(problem['first'])})")
    images = data["images"]
    print(f"  images that do not decode: {images['unreadable']}; duplicate images: "
          f"{images['duplicate_image_groups']} groups; duplicate ids: {data['duplicate_ids']}")
    for task, info in data["tasks"].items():
      details = {k: v for k, v in info.items() if k not in ("kind", "column")}
      print(f"  {task} ({info['kind']} on '{info['column']}'): "
            + "; ".join(f"{k} {v}" for k, v in details.items()))


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  report = inspect(FLAGS.config, FLAGS.check_images)
  _print(report)
  with open(FLAGS.out, "w") as f:
    json.dump(report, f, indent=2)
  print(f"Wrote {FLAGS.out}")
  return 0


def run():
  cli.run(main, _define_flags, required=["config"])


if __name__ == "__main__":
  run()
