r"""Checks a configured dataset before any training: what a run would read, and what is
wrong with it.

    python -m fashion_jax inspect_data --config=configs/catalog.py \
        --config.datasets.catalog.root=/data/shop/products.csv \
        --config.catalog.softmax=category,colour --config.catalog.multilabel=tags \
        --out=shop_report.json

Prints, per dataset: rows read and the rows the source skipped (with their lines), images
that are missing or do not decode, duplicate ids and duplicate images (the same bytes),
per task the label coverage, the class counts and the classes `min_count` would drop
(softmax), the labels per row (multi-label), the identities that P x K batches could use
(embedding), and the split sizes; and writes the same as JSON to --out, with every row
of every problem. One pass over the images, with a progress bar. Rows that training
would skip are listed, not fatal; what would stop training (a table that cannot be
read, a split column with unknown values, an empty training split, an identity column
whose values never repeat, ...) is listed under "errors", and the exit status is then 1.
"""

import collections
import hashlib
import io
import json

import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from fashion_jax import validation
from fashion_jax.data import labelled, sources
from fashion_jax.errors import ConfigError, DataError
from fashion_jax.tools import cli

_SHOWN = 10  # Classes listed per task (the largest, the rare ones).


def _define_flags():
  config_flags.DEFINE_config_file("config", None, "The experiment config.", lock_config=False)
  flags.DEFINE_string("out", "inspect_data.json", "Where to write the report as JSON.")
  flags.DEFINE_bool("check_images", True, "Open every image (decode its header).")


def _images(table, check: bool, progress: bool) -> dict:
  """Unreadable images and duplicate images (same bytes), in one pass."""
  from PIL import Image
  from tqdm import tqdm
  unreadable, by_hash = [], collections.defaultdict(list)
  # Every unreadable image is listed: the report is where a shop finds its broken files.
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
  return {"unreadable": len(unreadable), "unreadable_all": unreadable,
          "duplicate_image_groups": len(duplicates), "duplicate_images_all": duplicates}


def _task_report(task, table, train_rows) -> dict:
  values = table.columns[task.column]
  coverage = float(np.mean([bool(v) for v in values])) if len(values) else 0.0
  return {"kind": task.kind, "column": task.column, "coverage": coverage,
          **task.spec.inspect(task, values, train_rows, _SHOWN)}


def _dataset_report(config, name: str, tasks, check_images: bool, progress: bool) -> dict:
  where = f"config.datasets.{name}"
  resolved = sources.resolve_dataset_config(config.datasets[name], where)
  own = [t for t in tasks if t.dataset == name]
  try:
    table, problems = labelled.read_table(config, name, resolved, tasks)
  except (DataError, OSError) as e:  # The table itself: nothing else of it can be read.
    return {"source": resolved.source, "root": resolved.root, "errors": [str(e)]}
  out = {"source": resolved.source, "root": resolved.root, "rows": len(table),
         "skipped": problems.to_dict()["problems"], "errors": []}
  ids = collections.Counter(table.ids)
  duplicate_ids = [i for i, n in ids.items() if n > 1]
  out.update(duplicate_ids=len(duplicate_ids), duplicate_ids_all=duplicate_ids,
             images=_images(table, check_images, progress))
  try:
    rows = labelled.split_rows(table, resolved, where,
                               labelled.stratify_column(resolved, own, name))
  except (DataError, ConfigError) as e:
    out["errors"].append(str(e))
    return out
  out["splits"] = {split: int(len(r)) for split, r in rows.items()}
  out["tasks"] = {t.name: _task_report(t, table, rows["train"]) for t in own}
  return out


def inspect(config, check_images: bool = True, progress: bool = True) -> dict:
  """The report of every configured dataset (see the module docstring), and under
  "errors" what would stop training (empty when it would start)."""
  tasks = validation.validate_config(config)
  report = {"datasets": {name: _dataset_report(config, name, tasks, check_images, progress)
                         for name in config.datasets}}
  report["errors"] = [f"config.datasets.{name}: {e}" for name, data in
                      report["datasets"].items() for e in data["errors"]]
  if not report["errors"]:  # The rest of what training checks before its first step.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # Its rows' warnings are in the report already.
    try:
      labelled.prepare_data(config, tasks, workdir=None)
    except (DataError, ConfigError) as e:
      report["errors"].append(str(e))
    finally:
      logging.set_verbosity(verbosity)
  return report


def _print(report: dict) -> None:
  for name, data in report["datasets"].items():
    if "rows" not in data:
      print(f"{name} ({data['source']}, {data['root']}): cannot be read")
      continue
    splits = ", ".join(f"{k} {v}" for k, v in data.get("splits", {}).items())
    print(f"{name} ({data['source']}, {data['root']}): {data['rows']} rows"
          + (f"; splits {splits}" if splits else ""))
    for kind, problem in data["skipped"].items():
      more = f", ... ({problem['count']} in all)" if problem["count"] > len(problem["first"]) else ""
      print(f"  {kind}: {problem['count']} ({', '.join(problem['first'])}{more})")
    images = data["images"]
    print(f"  images that do not decode: {images['unreadable']}; duplicate images: "
          f"{images['duplicate_image_groups']} groups; duplicate ids: {data['duplicate_ids']}")
    for task, info in data.get("tasks", {}).items():
      details = {k: v for k, v in info.items() if k not in ("kind", "column")}
      print(f"  {task} ({info['kind']} on '{info['column']}'): "
            + "; ".join(f"{k} {v}" for k, v in details.items()))
  for error in report["errors"]:
    print(f"Would stop training: {error}")


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  report = inspect(FLAGS.config, FLAGS.check_images)
  _print(report)
  with open(FLAGS.out, "w") as f:
    json.dump(report, f, indent=2)
  print(f"Wrote {FLAGS.out} (every problem, row by row)")
  return 1 if report["errors"] else 0


def run():
  cli.run(main, _define_flags, required=["config"])


if __name__ == "__main__":
  run()
