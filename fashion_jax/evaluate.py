r"""Evaluates a trained workdir on one split: metrics, per-class reports and plots.

    python -m fashion_jax.evaluate --workdir=runs/demo [--split=test] [--checkpoint=best]

Writes `<workdir>/eval/<split>/`: metrics.json (with, for a configured
config.hierarchy, the rate at which predicted child classes belong to the predicted
parent), <task>_per_class.csv (softmax tasks),
confusion_<task>.png and roc_<task>.png (softmax tasks), metrics.png (headline metric
per task), curves.png (training and validation curves from the event files) and
predictions.png (sample images with true and predicted labels, mistakes in red); and
prints a summary table.
"""

import csv
import json
import os

import jax
import numpy as np
from absl import flags, logging

from fashion_jax import cli, errors, events, hierarchy, metrics, parallel, plots, train, trained
from fashion_jax.data import bad_samples as bad_samples_lib
from fashion_jax.data import pipeline

FLAGS = flags.FLAGS


def _define_flags():
  """Defined when run as a command, so the tools can be imported together."""
  flags.DEFINE_string("workdir", None,
                      "A training workdir (python -m fashion_jax.main --workdir).")
  flags.DEFINE_string("split", "test", "train, val or test.")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_string("out", "", "Output folder; default <workdir>/eval/<split>.")
  flags.DEFINE_integer("grid_images", 16, "Images in predictions.png.")
  flags.DEFINE_integer("max_classes", 20, "Classes shown in a confusion matrix (rest folded).")
  flags.DEFINE_bool("ema", False, "Evaluate the EMA weights (runs with config.ema_decay > 0).")
  flags.DEFINE_enum("hierarchy", "none", ["none", "predicted", "joint"],
                    "With config.hierarchy: also score predictions made consistent with it "
                    "(child masked by the predicted parent, or the best joint path).")


TOP_K = (3, 5)  # Top-1 is the accuracy.


def _softmax(logits: np.ndarray) -> np.ndarray:
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


def run_split(run, data, split: str, grid_images: int):
  """One pass over `split` of every dataset: summed stats, a few images, and per task its
  outputs, labels and masks for every sample of its dataset (rows aligned across the
  tasks of one dataset)."""
  local_batch = parallel.per_process_batch_size(run.config.batch_size)
  evaluators = train.compile_eval_steps(run.graphdef, run.tasks, run.mesh, with_outputs=True,
                                        use_ema=run.ema)
  totals, rows, grid = {}, {}, []
  bad = bad_samples_lib.BadSamples("skip")
  for dataset, (step, own) in evaluators.items():
    split_data = data.datasets[dataset][split]
    if not len(split_data):
      continue
    for batch in pipeline.eval_batches(split_data, run.config.data, local_batch,
                                       jax.process_index(), jax.process_count()):
      batch = bad.take(batch, split)
      stats, outputs = step(run.state, parallel.shard_batch(batch, run.mesh))
      outputs = jax.device_get(outputs)
      valid = batch["valid"]
      for t in own:
        totals[t.name] = t.spec.accumulate(totals.get(t.name), stats[t.name])
        task_rows = rows.setdefault(t.name, {"outputs": [], "labels": [], "masks": []})
        task_rows["outputs"].append(outputs[t.name][valid])
        task_rows["labels"].append(batch["labels"][t.name][valid])
        task_rows["masks"].append(batch["masks"][t.name][valid] > 0)
      if len(grid) < grid_images:
        present = np.flatnonzero(np.any([batch["masks"][t.name] > 0 for t in own], 0))
        for i in present[:grid_images - len(grid)]:
          grid.append((batch["image"][i], {t.name: (batch["labels"][t.name][i],
                                                    outputs[t.name][i],
                                                    batch["masks"][t.name][i] > 0) for t in own}))
  if bad.samples:
    logging.warning("%d unreadable images count in no %s metric: %s", len(bad.samples), split,
                    {k: v["reason"] for k, v in list(bad.samples.items())[:5]})
  rows = {name: {k: np.concatenate(v) for k, v in r.items()} for name, r in rows.items()}
  return totals, rows, grid


def softmax_report(task, confusion: np.ndarray, logits: np.ndarray, labels: np.ndarray):
  """Metrics beyond the kind's own: top-k, macro/weighted P/R/F1, per-class rows, ROC."""
  probabilities = _softmax(logits)
  out = {f"top{k}_accuracy": metrics.top_k_accuracy(probabilities, labels, k) for k in TOP_K
         if k <= len(task.classes)}
  out.update(metrics.averaged_report(confusion))
  report = metrics.per_class_report(confusion)
  curves, aucs = {}, {}
  for c in np.argsort(-report["support"], kind="stable"):
    positives = labels == c
    if positives.any() and not positives.all():  # Both classes present: AUC defined.
      fpr, tpr = metrics.roc_curve(probabilities[:, c], positives)
      auc = metrics.curve_area(fpr, tpr)
      curves[task.classes[c]] = (fpr, tpr, auc)
      aucs[c] = auc
  if aucs:
    out["macro_roc_auc"] = float(np.mean(list(aucs.values())))
  per_class = [{"class": task.classes[c], "precision": report["precision"][c],
                "recall": report["recall"][c], "f1": report["f1"][c],
                "support": int(report["support"][c]), "roc_auc": aucs.get(c, float("nan"))}
               for c in range(len(task.classes))]
  return out, per_class, curves


def hierarchy_report(parent: str, child: str, parents: np.ndarray, rows,
                     mode: str) -> dict[str, dict[str, float]]:
  """Consistency of the raw predictions with the hierarchy (every sample of the split),
  and with `mode` ('predicted' or 'joint') the accuracies of consistent predictions."""
  parent_rows, child_rows = rows[parent], rows[child]
  out = {child: {f"consistency_with_{parent}": hierarchy.consistency(
      parent_rows["outputs"].argmax(-1), child_rows["outputs"].argmax(-1), parents)}}
  if mode != "none":
    masked, chosen = hierarchy.consistent(_softmax(parent_rows["outputs"]),
                                          _softmax(child_rows["outputs"]), parents, mode)
    child_ok, parent_ok = child_rows["masks"], parent_rows["masks"]
    out[child][f"accuracy_{mode}_hierarchy"] = float(
        (masked.argmax(-1)[child_ok] == child_rows["labels"][child_ok]).mean())
    out[parent] = {f"accuracy_{mode}_hierarchy": float(
        (chosen[parent_ok] == parent_rows["labels"][parent_ok]).mean())}
  return out


def _write_csv(path: str, rows: list[dict]) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
      writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})


def _caption(task, label, output, has_label) -> tuple[str, bool]:
  if task.kind == "softmax":
    predicted = task.classes[int(np.argmax(output))]
    if not has_label:
      return f"{task.name}: {predicted}", False
    truth = task.classes[int(label)]
    return (f"{task.name}: {predicted}" + ("" if predicted == truth else f" (true {truth})"),
            predicted != truth)
  if task.kind == "sigmoid":
    threshold = task.option("threshold")
    logit = np.log(threshold / (1 - threshold))  # sigmoid(x) >= threshold <=> x >= logit
    predicted = [task.classes[j] for j in np.flatnonzero(output >= logit)][:3]
    return f"{task.name}: {', '.join(predicted) or '-'}", False
  return "", False


def evaluate_workdir(workdir: str, split: str = "test", checkpoint: str = "best",
                     out_dir: str = "", grid_images: int = 16, max_classes: int = 20,
                     ema: bool = False, hierarchy_mode: str = "none") -> dict:
  """Evaluates and writes every report; returns the contents of metrics.json."""
  if split not in ("train", "val", "test"):
    raise errors.ConfigError(f"--split={split!r}: expected train, val or test.")
  if hierarchy_mode not in hierarchy.MODES:
    raise errors.ConfigError(f"--hierarchy={hierarchy_mode!r}: expected one of "
                             f"{hierarchy.MODES}.")
  run = trained.load(workdir, checkpoint, ema)
  out_dir = out_dir or os.path.join(run.workdir, "eval", split + ("_ema" if ema else ""))
  os.makedirs(out_dir, exist_ok=True)
  # The run's own vocabularies (read, never rewritten): label ids as the model's outputs.
  data = pipeline.prepare_data(run.config, run.tasks, run.workdir, write_files=False)
  tasks = data.tasks  # Bound to this data (class weights of the loss).
  totals, rows, grid = run_split(run, data, split, grid_images)
  by_name = {t.name: t for t in tasks}
  results, files = {}, []
  for task in tasks:
    if task.name not in totals:
      continue
    task_metrics = {k: float(v) for k, v in task.spec.summarize(task, totals[task.name]).items()}
    labelled = rows[task.name]["masks"]
    if task.kind == "softmax":
      confusion = np.asarray(totals[task.name]["confusion"])
      extra, per_class, curves = softmax_report(task, confusion,
                                                rows[task.name]["outputs"][labelled],
                                                rows[task.name]["labels"][labelled])
      task_metrics.update(extra)
      csv_path = os.path.join(out_dir, f"{task.name}_per_class.csv")
      _write_csv(csv_path, per_class)
      files += [csv_path, plots.confusion_matrix(
          os.path.join(out_dir, f"confusion_{task.name}.png"), confusion, task.classes,
          f"{task.name} ({split}, step {run.step}), rows normalised", max_classes)]
      if curves:
        files.append(plots.roc_curves(os.path.join(out_dir, f"roc_{task.name}.png"), curves,
                                      f"{task.name}: one-vs-rest ROC ({split})"))
    task_metrics["samples"] = int(labelled.sum())
    results[task.name] = task_metrics
  for child, learned in hierarchy.learn(run.config.get("hierarchy", ""), tasks,
                                        data.datasets).items():
    if learned["parent"] in rows and child in rows:
      for task, values in hierarchy_report(learned["parent"], child,
                                           np.asarray(learned["parents"]), rows,
                                           hierarchy_mode).items():
        results[task].update(values)
  if not results:
    raise errors.DataError(f"The '{split}' split of {workdir} is empty: nothing to evaluate.")

  headline = {t.name: {m: results[t.name][m] for m in t.spec.headline if m in results[t.name]}
              for t in tasks if t.name in results}
  files.append(plots.bar_chart(os.path.join(out_dir, "metrics.png"), headline,
                               f"{os.path.basename(run.workdir)}: {split} (step {run.step})"))
  scalars = events.read_scalars(run.workdir)
  if scalars:
    files.append(plots.training_curves(os.path.join(out_dir, "curves.png"), scalars,
                                       [t.name for t in tasks], os.path.basename(run.workdir)))
  images = [image for image, _ in grid]
  captions = [[_caption(by_name[name], *values) for name, values in per_task.items()
               if by_name[name].kind != "embedding"][:4] for _, per_task in grid]
  if images:
    files.append(plots.image_grid(os.path.join(out_dir, "predictions.png"), images, captions,
                                  f"{split}: predicted (true where wrong)"))
  summary = {"workdir": run.workdir, "split": split, "checkpoint_step": run.step, "ema": ema,
             "metrics": results, "files": sorted(os.path.basename(f) for f in files)}
  with open(os.path.join(out_dir, "metrics.json"), "w") as f:
    json.dump(summary, f, indent=1)
  table = {f"{split}/{task}/{k}": v for task, values in results.items()
           for k, v in values.items() if k != "samples"}
  print(f"{run.workdir} at step {run.step}, split '{split}':\n"
        f"{train.format_metrics_table(table)}\nWrote {out_dir}/", flush=True)
  return summary


def main(argv):
  del argv
  evaluate_workdir(FLAGS.workdir, FLAGS.split, FLAGS.checkpoint, FLAGS.out, FLAGS.grid_images,
                   FLAGS.max_classes, FLAGS.ema, FLAGS.hierarchy)
  return 0


def run():
  cli.run(main, _define_flags, required=["workdir"])


if __name__ == "__main__":
  run()
