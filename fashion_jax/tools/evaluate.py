r"""Evaluates a trained workdir on one split, or on any labelled data: metrics, per-class
reports and plots.

    python -m fashion_jax evaluate --workdir=runs/demo [--split=test] [--checkpoint=best]
    # Any other labelled data in a layout the run's source reads (a holdout set, a new
    # season), every row scored with the run's own classes:
    python -m fashion_jax evaluate --workdir=runs/mtl --data_root=/data/holdout \
        [--dataset=products] [--set=datasets.products.csv_name=holdout.csv] [--split=all]

Softmax tasks are scored on label names (metrics.label_scores): a row is left out only if
its label is absent from the run's training split (counted as `excluded`, listed in
data_report.json); a row of a class the run did not learn (under min_count) counts as an
error; `n` is the number of rows scored. scripts/torch_baseline.py scores the same way.

Writes `<workdir>/eval/<split>/` (other data: `eval/<data name>_<split>/`, so the run's
own reports are never overwritten): metrics.json (with, for a configured
config.hierarchy, the rate at which predicted child classes belong to the predicted
parent; with config.hierarchy_decoding or `--decoding=bottom_up`, parent tasks are scored
on their decoded probabilities), <task>_per_class.csv (softmax tasks),
confusion_<task>.png and roc_<task>.png (softmax tasks), metrics.png (headline metric
per task), curves.png (training and validation curves from the event files) and
predictions.png (sample images with true and predicted labels, mistakes in red); and
prints a summary table.
"""

from absl import flags

from fashion_jax import console, hierarchy
from fashion_jax.evaluation import scoring, trained
from fashion_jax.tools import cli

FLAGS = flags.FLAGS


def _define_flags():
  """Defined when run as a command, so the tools can be imported together."""
  flags.DEFINE_string("workdir", None,
                      "A training workdir (python -m fashion_jax.main --workdir).")
  flags.DEFINE_string("split", "", "train, val, test or all (every row); default test, or "
                      "all with --data_root/--set.")
  flags.DEFINE_string("dataset", "", "Which of the run's datasets to score (default: all).")
  flags.DEFINE_string("data_root", "", "Score this data instead of the run's own: the "
                      "dataset's root (its source and other fields as the run's, or --set).")
  flags.DEFINE_multi_string("set", [], "Another field of the scored dataset, "
                            "e.g. datasets.products.csv_name=holdout.csv.")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_string("out", "", "Output folder; default <workdir>/eval/<split>.")
  flags.DEFINE_integer("grid_images", 16, "Images in predictions.png.")
  flags.DEFINE_integer("max_classes", 20, "Classes shown in a confusion matrix (rest folded).")
  flags.DEFINE_bool("ema", False, "Evaluate the EMA weights (runs with config.ema_decay > 0).")
  flags.DEFINE_enum("flip", "config", ["config", "true", "false"],
                    "Average each image with its mirror image (test-time augmentation); "
                    "default: the run's config.test_time_flip.")
  flags.DEFINE_enum("decoding", "config", ["config", *hierarchy.DECODINGS],
                    "Hierarchy decoding of the predictions (parents hear their children's "
                    "evidence); default: the run's config.hierarchy_decoding.")
  flags.DEFINE_enum("hierarchy", "none", ["none", "predicted", "joint"],
                    "With config.hierarchy: also score predictions made consistent with it "
                    "(child masked by the predicted parent, or the best joint path).")


def main(argv):
  del argv
  summary = scoring.evaluate(FLAGS.workdir, scoring.Options(
      split=FLAGS.split, checkpoint=FLAGS.checkpoint, out_dir=FLAGS.out,
      grid_images=FLAGS.grid_images, max_classes=FLAGS.max_classes, ema=FLAGS.ema,
      hierarchy_mode=FLAGS.hierarchy, dataset=FLAGS.dataset, data_root=FLAGS.data_root,
      overrides=tuple(FLAGS.set), flip=None if FLAGS.flip == "config" else FLAGS.flip == "true",
      decoding=None if FLAGS.decoding == "config" else FLAGS.decoding))
  split = summary["split"]
  table = {f"{split}/{task}/{k}": v for task, values in summary["metrics"].items()
           for k, v in values.items() if k != "samples"}
  for dataset, problems in summary["data_problems"].items():
    for kind, count in problems.items():
      print(f"Data warning: {dataset}: {count} {kind}; every row in "
            f"{summary['out_dir']}/data_report.json")
  print(f"{summary['workdir']} at step {summary['checkpoint_step']}, split '{split}':\n"
        f"{console.format_metrics_table(table)}\nWrote {summary['out_dir']}/", flush=True)
  return 0


def run():
  cli.run(main, _define_flags, required=["workdir"])


if __name__ == "__main__":
  run()
