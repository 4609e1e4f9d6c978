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

import ast
import json
import os

import ml_collections
import numpy as np
from absl import flags, logging

from fashion_jax.tools import cli
from fashion_jax import console, errors, evaluators, events, hierarchy, metrics, parallel, plots
from fashion_jax import trained
from fashion_jax import workdir as workdir_lib
from fashion_jax.data import bad_samples as bad_samples_lib
from fashion_jax.data import labelled

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


def run_split(run, splits: dict, split: str, grid_images: int):
  """One pass over `splits` ({dataset: SplitData}): summed stats, a few images, and per
  task its outputs, labels, masks and whether the image could be read, for every sample
  of its dataset (rows aligned across the tasks of one dataset, in table order)."""
  local_batch = parallel.per_process_batch_size(run.config.batch_size)
  steps = evaluators.compile_eval_steps(run.graphdef, run.tasks, run.mesh, with_outputs=True,
                                        **run.inference)
  bad = bad_samples_lib.BadSamples("skip")
  result = evaluators.run(steps, run.tasks, run.state, splits, run.config.data, local_batch,
                          run.mesh, split, bad, keep_rows=True, grid_images=grid_images)
  if bad.samples:
    logging.warning("%d unreadable images count in no %s metric: %s", len(bad.samples), split,
                    {k: v["reason"] for k, v in list(bad.samples.items())[:5]})
  return result.totals, result.rows, result.grid


def _with_data(config, dataset: str, data_root: str, overrides) -> ml_collections.ConfigDict:
  """The run's config with `dataset` pointed at other data: `data_root` and `--set`
  fields (`datasets.<dataset>.<field>=<value>`, a Python literal or a plain string)."""
  config = ml_collections.ConfigDict(config.to_dict())
  if data_root:
    config.datasets[dataset].root = data_root
  for item in overrides:
    path, sep, text = item.partition("=")
    parts = path.removeprefix("config.").split(".")
    if not sep or len(parts) != 3 or parts[0] != "datasets" or parts[1] not in config.datasets:
      raise errors.ConfigError(f"--set={item!r}: expected datasets.<name>.<field>=<value> "
                               f"with <name> one of {list(config.datasets)}.")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    config.datasets[parts[1]][parts[2]] = value
  return config


def hierarchy_report(parent: str, child: str, parents: np.ndarray, rows,
                     mode: str) -> dict[str, dict[str, float]]:
  """Consistency of the raw predictions with the hierarchy (every sample of the split),
  and with `mode` ('predicted' or 'joint') the accuracies of consistent predictions."""
  parent_rows, child_rows = rows[parent], rows[child]
  out = {child: {f"consistency_with_{parent}": hierarchy.consistency(
      parent_rows["outputs"].argmax(-1), child_rows["outputs"].argmax(-1), parents)}}
  if mode != "none":
    masked, chosen = hierarchy.consistent(metrics.softmax(parent_rows["outputs"]),
                                          metrics.softmax(child_rows["outputs"]), parents, mode)
    child_ok, parent_ok = child_rows["masks"], parent_rows["masks"]
    out[child][f"accuracy_{mode}_hierarchy"] = float(
        (masked.argmax(-1)[child_ok] == child_rows["labels"][child_ok]).mean())
    out[parent] = {f"accuracy_{mode}_hierarchy": float(
        (chosen[parent_ok] == parent_rows["labels"][parent_ok]).mean())}
  return out


def evaluate_workdir(workdir: str, split: str = "", checkpoint: str = "best",
                     out_dir: str = "", grid_images: int = 16, max_classes: int = 20,
                     ema: bool = False, hierarchy_mode: str = "none", dataset: str = "",
                     data_root: str = "", overrides=(), flip: bool | None = None,
                     decoding: str | None = None) -> dict:
  """Evaluates and writes every report; returns the contents of metrics.json.

  With `data_root` or `overrides` (`--set`), `dataset` is read from that data instead
  of the run's (every row by default) and scored with the run's own classes. `flip`
  (default: the run's config.test_time_flip) averages each image with its mirror image;
  set against the config, it adds `_flip`/`_noflip` to the output folder's name;
  `decoding` (default: the run's config.hierarchy_decoding), set against the config,
  adds `_<decoding>`.
  """
  other_data = bool(data_root or overrides)
  split = split or ("all" if other_data else "test")
  if split not in ("train", "val", "test", "all"):
    raise errors.ConfigError(f"--split={split!r}: expected train, val, test or all.")
  if hierarchy_mode not in hierarchy.MODES:
    raise errors.ConfigError(f"--hierarchy={hierarchy_mode!r}: expected one of "
                             f"{hierarchy.MODES}.")
  run = trained.load(workdir, checkpoint, ema)
  names = list(run.config.datasets)
  if dataset and dataset not in names:
    raise errors.ConfigError(f"--dataset={dataset!r}: {workdir} was trained on {names}.")
  if other_data and not dataset:
    if len(names) > 1:
      raise errors.ConfigError(f"--data_root/--set: name the dataset they replace with "
                               f"--dataset (one of {names}).")
    dataset = names[0]
  config = _with_data(run.config, dataset, data_root, overrides) if other_data else run.config
  data_name = (os.path.basename(os.path.normpath(data_root)) if data_root else dataset)
  name = f"{data_name}_{split}" if other_data else split
  if flip is not None and flip != run.flip:
    run.flip = flip
    name += "_flip" if flip else "_noflip"
  if decoding is not None and decoding != run.config.get("hierarchy_decoding", "none"):
    run.decode = hierarchy.decoding_links(hierarchy.load(run.workdir), decoding)
    name += f"_{decoding}"
  out_dir = out_dir or workdir_lib.eval_dir(run.workdir, name + ("_ema" if ema else ""))
  os.makedirs(out_dir, exist_ok=True)
  # The run's own vocabularies (read, never rewritten): label ids as the model's outputs.
  tasks = run.tasks
  splits, reports = {}, {}
  for scored in ([dataset] if dataset else names):
    splits[scored], reports[scored] = labelled.read_labelled(config, tasks, run.vocabs,
                                                             scored, split)
  labelled.save_reports(os.path.join(out_dir, workdir_lib.DATA_REPORT), reports)
  totals, rows, grid = run_split(run, splits, split, grid_images)
  by_name = {t.name: t for t in tasks}
  results, files = {}, []
  for task in tasks:
    if task.name not in totals:
      continue
    task_metrics = {k: float(v) for k, v in task.spec.summarize(task, totals[task.name]).items()}
    raw_labels = splits[task.dataset].table.columns[task.column]
    extra, written = task.spec.report(task, totals[task.name], rows[task.name], raw_labels,
                                      run.vocabs[task.name], out_dir, split, run.step,
                                      max_classes)
    task_metrics.update(extra)
    files += written
    task_metrics["samples"] = int(rows[task.name]["masks"].sum())
    results[task.name] = task_metrics
  for child, learned in hierarchy.load(run.workdir).items():
    if learned["parent"] in rows and child in rows:
      for task, values in hierarchy_report(learned["parent"], child,
                                           np.asarray(learned["parents"]), rows,
                                           hierarchy_mode).items():
        results[task].update(values)
  if not results:
    raise errors.DataError(f"The '{split}' split of {data_root or workdir} is empty: nothing "
                           "to evaluate.")

  headline = {t.name: {m: results[t.name][m] for m in t.spec.headline if m in results[t.name]}
              for t in tasks if t.name in results}
  files.append(plots.bar_chart(os.path.join(out_dir, "metrics.png"), headline,
                               f"{os.path.basename(run.workdir)}: {split} (step {run.step})"))
  scalars = events.read_scalars(run.workdir)
  if scalars:
    files.append(plots.training_curves(os.path.join(out_dir, "curves.png"), scalars,
                                       [t.name for t in tasks], os.path.basename(run.workdir)))
  images = [image for image, _ in grid]
  captions = [[c for c in (by_name[name].spec.caption(by_name[name], *values)
                           for name, values in per_task.items()) if c[0]][:4]
              for _, per_task in grid]
  if images:
    files.append(plots.image_grid(os.path.join(out_dir, "predictions.png"), images, captions,
                                  f"{split}: predicted (true where wrong)"))
  summary = {"workdir": run.workdir, "split": split, "checkpoint_step": run.step, "ema": ema,
             "flip": run.flip, "hierarchy_decoding": [[c, p] for c, p, _ in run.decode],
             "data": {n: config.datasets[n].to_dict() for n in splits}, "metrics": results,
             "files": sorted(os.path.basename(f) for f in files)}
  with open(os.path.join(out_dir, workdir_lib.EVAL_METRICS), "w") as f:
    json.dump(summary, f, indent=1)
  table = {f"{split}/{task}/{k}": v for task, values in results.items()
           for k, v in values.items() if k != "samples"}
  print(f"{run.workdir} at step {run.step}, split '{split}':\n"
        f"{console.format_metrics_table(table)}\nWrote {out_dir}/", flush=True)
  return summary


def main(argv):
  del argv
  evaluate_workdir(FLAGS.workdir, FLAGS.split, FLAGS.checkpoint, FLAGS.out, FLAGS.grid_images,
                   FLAGS.max_classes, FLAGS.ema, FLAGS.hierarchy, FLAGS.dataset,
                   FLAGS.data_root, FLAGS.set,
                   None if FLAGS.flip == "config" else FLAGS.flip == "true",
                   None if FLAGS.decoding == "config" else FLAGS.decoding)
  return 0


def run():
  cli.run(main, _define_flags, required=["workdir"])


if __name__ == "__main__":
  run()
