r"""Audits a catalog: its likely wrong labels, its missing labels filled, its
near-duplicate products.

    python -m fashion_jax audit --config=configs/catalog.py --out=runs/audit \
        --config.datasets.catalog.root=/data/shop/products.csv \
        --config.catalog.softmax=category,colour --config.catalog.multilabel=tags
    # The shared product images, every label task of configs/mtl_pretrained.py:
    python -m fashion_jax audit --config=configs/mtl_pretrained.py --out=runs/audit \
        --config.datasets.products.root=../shared/data/fashion-product-images

For every softmax and sigmoid task: features of every image from the config's pretrained
backbone (the packaged ImageNet Lite0 by default), frozen, so they never saw the labels;
out-of-sample probabilities from linear heads cross-fitted over --folds folds; the rows
that confident learning (cleanlab) flags, most suspect first; and a suggested label for
every row whose label is empty, marked `filled` where the known rows show it is right
--fill_precision of the time. Near-duplicates: groups of images within a cosine
similarity of --duplicate_threshold (FAISS), those with conflicting labels first.

Writes into --out: audit.json (the summary: per task the suspects, the fill rule's
measured precision and coverage, the near-duplicate groups), <task>_label_issues.csv,
<task>_missing_labels.csv, <dataset>_near_duplicates.csv, <task>_label_issues.png (a
contact sheet of the top suspects: photo, given label in red, suggested label), and
<dataset>/features.npz (the features, reused by a re-run on the same rows).
"""

import dataclasses

from absl import flags
from ml_collections import config_flags

from fashion_jax.audit import catalog_audit, cross_fit
from fashion_jax.tools import cli


def _define_flags():
  config_flags.DEFINE_config_file("config", None, "The experiment config.", lock_config=False)
  flags.DEFINE_string("out", None, "Output folder.")
  flags.DEFINE_string("dataset", "", "Audit only this dataset of the config.")
  flags.DEFINE_integer("image_size", catalog_audit.Options(out="").image_size,
                       "Image size of the label features (the backbone's ImageNet resolution).")
  flags.DEFINE_integer("folds", cross_fit.HeadSettings.folds, "Cross-fitting folds.")
  defaults = catalog_audit.Options(out="")
  flags.DEFINE_float("fill_precision", defaults.fill_precision,
                     "Precision a filled missing label must reach on the known rows.")
  flags.DEFINE_float("duplicate_threshold", defaults.duplicate_threshold,
                     "Cosine similarity of near-duplicates (the larger of their two views').")
  flags.DEFINE_integer("sheet_rows", defaults.sheet_rows,
                       "Suspects per task in its contact sheet.")


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  options = catalog_audit.Options(
      out=FLAGS.out, dataset=FLAGS.dataset, image_size=FLAGS.image_size,
      heads=dataclasses.replace(cross_fit.HeadSettings(), folds=FLAGS.folds),
      fill_precision=FLAGS.fill_precision, duplicate_threshold=FLAGS.duplicate_threshold,
      sheet_rows=FLAGS.sheet_rows)
  report = catalog_audit.audit(FLAGS.config, options)
  for name, data in report["datasets"].items():
    print(f"{name}: {data['rows']} rows, {len(data['unreadable_images'])} unreadable images")
    for task, s in data["tasks"].items():
      rule = s["fill_rule"]
      fill = (f"{s['missing_filled']} of {s['rows_missing']} missing labels filled"
              + (f" (precision {rule['precision_on_known']} on known rows)"
                 if s["rows_missing"] else ""))
      print(f"  {task}: {s['suspects']} suspected wrong labels of {s['rows_labelled']} "
            f"({100 * s['suspect_rate']:.1f}%); {fill}")
    dup = data["near_duplicates"]
    print(f"  near-duplicates: {dup['groups']} groups ({dup['rows']} rows), "
          f"{dup['groups_with_conflicting_labels']} with conflicting labels")
  print(f"Wrote {FLAGS.out}/audit.json and the files it lists ({report['seconds']} s)")
  return 0


def run():
  cli.run(main, _define_flags, required=["config", "out"])


if __name__ == "__main__":
  run()
