"""softmax: single-label classification (gender, articleType, baseColour, ...).

Cross-entropy with optional label smoothing and class weighting (`class_weighting`, see
class_weights.py: none | inverse_frequency | effective_number with `effective_beta`);
accuracy, macro-F1, optional top-k accuracies; evaluate adds label-level scores (n,
excluded), per-class precision/recall/F1, ROC curves and a confusion matrix.
"""

import collections
import csv
import os

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import checks
from fashion_jax import class_weights as class_weights_lib
from fashion_jax import losses
from fashion_jax.evaluation import metrics, plots
from fashion_jax.tasks import base

REPORT_TOP_K = (3, 5)  # evaluate's top-k accuracies (top-1 is the accuracy).


class Softmax(base.TaskKind):
  headline = ("accuracy", "macro_f1")
  options = {"label_smoothing": 0.0, "class_weighting": "none", "effective_beta": 0.999,
             "top_k": ()}  # Extra top-k accuracies to report, e.g. (3, 5).
  single_label = True
  audited = True

  def metric_names(self, task):
    return ("loss", "accuracy", "macro_f1", *(f"top{k}_accuracy" for k in task.option("top_k")))

  def check_options(self, options, field):
    checks.number(options["label_smoothing"], f"{field}.label_smoothing", 0, 1, high_open=True)
    checks.choice(options["class_weighting"], f"{field}.class_weighting",
                  class_weights_lib.WEIGHTINGS)
    checks.number(options["effective_beta"], f"{field}.effective_beta", 0, 1, high_open=True)

  def inspect(self, task, values, train_rows, shown):
    counts = collections.Counter(v for v in values[train_rows] if v)
    rare = sorted((c for c, n in counts.items() if n < task.min_count), key=lambda c: counts[c])
    return {"classes_in_train": len(counts), "min_count": task.min_count,
            "dropped_by_min_count": len(rare),
            "dropped_first": [f"{c} ({counts[c]})" for c in rare[:shown]],
            "largest": [f"{c} ({n})" for c, n in counts.most_common(shown)]}

  def masked_values(self, task, values, mask):
    return (f"labels not in task '{task.name}'s training classes (masked)",
            np.flatnonzero((values != "") & (mask == 0)))

  def bind(self, task, vocab, labels=None, mask=None):
    task = super().bind(task, vocab)
    if labels is None or task.option("class_weighting") == "none":
      return task
    counts = np.bincount(labels[mask > 0], minlength=len(vocab))
    weights = class_weights_lib.class_weights(counts, task.option("class_weighting"),
                                              task.option("effective_beta"))
    return base.dataclasses.replace(task, class_weights=tuple(weights.tolist()))

  def loss(self, task, output, labels, mask):
    weights = jnp.asarray(task.class_weights) if task.class_weights else None
    return losses.softmax_cross_entropy(output, labels, mask, task.option("label_smoothing"),
                                        weights)

  def eval_stats(self, task, output, labels, mask, roles):
    stats = base.loss_stats(self.loss(task, output, labels, mask), mask)
    stats["confusion"] = metrics.confusion_matrix(
        labels, jnp.argmax(output, -1), mask, output.shape[-1])
    for k in task.option("top_k"):
      stats[f"top{k}_hits"] = metrics.top_k_hits(output, labels, mask, k)
    return stats

  def summarize(self, task, total):
    out = {"loss": base.mean_loss(total), **metrics.classification_metrics(total["confusion"])}
    for k in task.option("top_k"):
      out[f"top{k}_accuracy"] = total[f"top{k}_hits"] / jnp.maximum(total["count"], 1.0)
    return out

  def report(self, task, total, rows, raw_labels, vocab, out_dir, split, step, max_classes):
    confusion = np.asarray(total["confusion"])
    labelled = rows["masks"]
    extra, per_class, curves = _class_report(task, confusion, rows["outputs"][labelled],
                                             rows["labels"][labelled])
    csv_path = os.path.join(out_dir, f"{task.name}_per_class.csv")
    _write_csv(csv_path, per_class)
    files = [csv_path, plots.confusion_matrix(
        os.path.join(out_dir, f"confusion_{task.name}.png"), confusion, task.classes,
        f"{task.name} ({split}, step {step}), rows normalised", max_classes)]
    if curves:
      files.append(plots.roc_curves(os.path.join(out_dir, f"roc_{task.name}.png"), curves,
                                    f"{task.name}: one-vs-rest ROC ({split})"))
    extra.update(label_level_scores(task, vocab, raw_labels, rows))
    return extra, files

  def activate(self, task, output):
    return jax.nn.softmax(output.astype(jnp.float32))

  def served_output(self, task):
    return {"form": "classes", "classes": list(task.classes)}

  def caption(self, task, label, output, has_label):
    predicted = task.classes[int(np.argmax(output))]
    truth = task.classes[int(label)] if has_label else predicted
    return (f"{task.name}: {predicted}" + ("" if predicted == truth else f" (true {truth})"),
            predicted != truth)


def label_level_scores(task, vocab, raw_labels: np.ndarray, rows) -> dict:
  """metrics.label_scores: predicted class names against the split's raw labels; rows
  whose image could not be read are left out."""
  readable = rows["readable"]
  predicted = np.asarray(task.classes, dtype=object)[rows["outputs"].argmax(-1)][readable]
  scores = metrics.label_scores(raw_labels[readable], predicted, vocab.known_labels)
  scores["unreadable"] = int((~readable).sum())
  return scores


def _class_report(task, confusion: np.ndarray, logits: np.ndarray, labels: np.ndarray):
  """Top-k, macro/weighted P/R/F1, per-class rows, one-vs-rest ROC curves."""
  probabilities = metrics.softmax(logits)
  out = {f"top{k}_accuracy": metrics.top_k_accuracy(probabilities, labels, k)
         for k in REPORT_TOP_K if k <= len(task.classes)}
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


def _write_csv(path: str, rows: list[dict]) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
      writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})


KIND = Softmax()
