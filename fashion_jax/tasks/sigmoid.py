"""sigmoid: multi-label attributes, one independent sigmoid per class.

The column holds the labels of a row joined by `separator` ('a|b'). `pos_weight`
scales the positive term of the loss; `auto_pos_weight` sets it per class to
(negatives / positives) in the training split, capped at `max_pos_weight`. Class names
of the form 'group<group_separator>name' form groups of mutually exclusive classes
(DeepFashion fine attributes), each scored by arg-max accuracy.

Thresholds: `threshold` (0.5) for every attribute until training ends; then, with
`tune_thresholds`, one per attribute is chosen on the validation split (the best F1, or
with `target_precision` > 0 the lowest score reaching that precision), but only for an
attribute with at least `min_tuning_examples` validation positives and as many
negatives: a cut fitted to a handful of either side moves test F1 more by chance than
by signal (docs/results.md, "Attribute thresholds"), so the others keep `threshold`. The chosen thresholds and the
names of the tuned attributes are saved with the vocabulary (vocab.json) and used by
evaluation, evaluate and predict; metrics at the fixed `threshold` are reported beside
them as `<metric>_at_<threshold>`.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import checks, losses
from fashion_jax.evaluation import metrics
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.errors import ConfigError
from fashion_jax.tasks import base


# Chosen by scripts/threshold_rule.py (docs/results.md, "Attribute thresholds").
MIN_TUNING_EXAMPLES = 50


class Sigmoid(base.TaskKind):
  options = {"pos_weight": 1.0, "auto_pos_weight": False, "max_pos_weight": 50.0,
             "threshold": 0.5, "separator": "|", "top_k": (), "group_separator": "",
             "tune_thresholds": True, "target_precision": 0.0,
             "min_tuning_examples": MIN_TUNING_EXAMPLES}
  lower_is_better = ("loss", "hamming_loss")
  audited = True

  def metric_names(self, task):
    return ("loss", "micro_f1", "macro_f1", "hamming_loss", "mAP",
            *(f"top{k}_recall" for k in task.option("top_k")))

  def check_options(self, options, field):
    checks.number(options["pos_weight"], f"{field}.pos_weight", 0, low_open=True)
    checks.number(options["max_pos_weight"], f"{field}.max_pos_weight", 1)
    checks.number(options["threshold"], f"{field}.threshold", 0, 1, low_open=True,
                  high_open=True)
    checks.number(options["target_precision"], f"{field}.target_precision", 0, 1)
    checks.number(options["min_tuning_examples"], f"{field}.min_tuning_examples", 1,
                  integer=True)
    if not isinstance(options["separator"], str) or not options["separator"]:
      raise ConfigError(f"config.{field}.separator={options['separator']!r} must be a "
                        "non-empty string (what joins the labels of one row, e.g. '|').")

  def inspect(self, task, values, train_rows, shown):
    separator = task.option("separator")
    split = lambda value: [v.strip() for v in value.split(separator) if v.strip()]  # noqa: E731
    per_row = [len(split(value)) for value in values if value]
    labels = collections.Counter(label for value in values[train_rows] for label in split(value))
    return {"labels_per_row_mean": float(np.mean(per_row)) if per_row else 0.0,
            "rows_with_no_labels": int(sum(n == 0 for n in per_row)),
            "labels_in_train": len(labels),
            "largest": [f"{c} ({n})" for c, n in labels.most_common(shown)]}

  def build_vocab(self, task, values, rare_policy):
    return vocab_lib.build_vocab(task.column, values, task.min_count, rare_policy,
                                 task.option("separator"))

  def encode(self, task, vocab, values):
    return vocab.encode_multi_hot(values)

  def missing_labels(self, task, vocab, count):
    return np.zeros((count, len(vocab)), np.float32)

  def bind(self, task, vocab, labels=None, mask=None):
    task = super().bind(task, vocab)
    fitted = dict(task.fitted)
    if "thresholds" in fitted:  # Hashable, as every Task field.
      fitted["thresholds"] = tuple(float(t) for t in fitted["thresholds"])
      fitted["tuned"] = tuple(fitted.get("tuned", ()))
      task = base.dataclasses.replace(task, fitted=tuple(sorted(fitted.items())))
    if labels is None or not task.option("auto_pos_weight"):
      return task
    counted = mask > 0
    positives = labels[counted].sum(0)
    negatives = counted.sum() - positives
    weights = np.clip(negatives / np.maximum(positives, 1.0), 1.0, task.option("max_pos_weight"))
    return base.dataclasses.replace(task, class_weights=tuple(weights.astype(float).tolist()))

  def groups(self, task) -> dict[str, tuple[int, ...]]:
    separator = task.option("group_separator")
    groups = {}
    if separator:
      for index, name in enumerate(task.classes):
        if separator in name:
          groups.setdefault(name.split(separator, 1)[0], []).append(index)
    return {g: tuple(v) for g, v in groups.items()}

  def loss(self, task, output, labels, mask):
    pos_weight = (jnp.asarray(task.class_weights) if task.class_weights
                  else task.option("pos_weight"))
    return losses.sigmoid_binary_cross_entropy(output, labels, mask, pos_weight)

  def eval_stats(self, task, output, labels, mask, roles):
    stats = base.loss_stats(self.loss(task, output, labels, mask), mask)
    scores = jax.nn.sigmoid(output.astype(jnp.float32))
    predicted = (scores >= jnp.asarray(thresholds(task))).astype(jnp.float32)
    stats.update(metrics.multilabel_counts(labels, predicted, mask))
    if _tuned(task):  # The fixed threshold too, for comparison.
      fixed = (scores >= task.option("threshold")).astype(jnp.float32)
      stats.update({f"fixed/{k}": v for k, v in
                    metrics.multilabel_counts(labels, fixed, mask).items()})
    for k in task.option("top_k"):
      stats[f"top{k}_recall"] = metrics.attribute_top_k_recall(scores, labels, mask, k)
    for group, index in self.groups(task).items():
      stats[f"group/{group}"] = metrics.group_accuracy_counts(scores, labels, mask, index)
    # Average precision ranks each class over the whole split: keep the scores.
    stats.update({base.ROWS + "scores": scores, base.ROWS + "targets": labels,
                  base.ROWS + "mask": mask})
    return stats

  def summarize(self, task, total):
    out = {"loss": base.mean_loss(total),
           **metrics.multilabel_metrics(total["tp"], total["fp"], total["fn"]),
           "hamming_loss": metrics.hamming_loss(total["fp"], total["fn"], total["count"],
                                                total["tp"].shape[0])}
    keep = base.rows_of(total, "mask") > 0
    out["mAP"] = metrics.mean_average_precision(base.rows_of(total, "scores")[keep],
                                                base.rows_of(total, "targets")[keep])
    for k in task.option("top_k"):
      found, count = total[f"top{k}_recall"]
      out[f"top{k}_recall"] = found / jnp.maximum(count, 1.0)
    group_accuracies = []
    for group in self.groups(task):
      correct, count = total[f"group/{group}"]
      group_accuracies.append(correct / jnp.maximum(count, 1.0))
      out[f"{group}_accuracy"] = group_accuracies[-1]
    if group_accuracies:
      out["mean_group_accuracy"] = jnp.mean(jnp.asarray(group_accuracies))
    if "fixed/tp" in total:
      at = f"_at_{task.option('threshold'):g}"
      out.update({f"{k}{at}": v for k, v in metrics.multilabel_metrics(
          total["fixed/tp"], total["fixed/fp"], total["fixed/fn"]).items()})
    return out

  def tune_on_validation(self, task, total) -> dict | None:
    if not task.option("tune_thresholds") or total is None:
      return None
    keep = base.rows_of(total, "mask") > 0
    targets = base.rows_of(total, "targets")[keep]
    chosen = choose_thresholds(base.rows_of(total, "scores")[keep], targets,
                               task.option("threshold"), task.option("target_precision"),
                               task.option("min_tuning_examples"))
    tuned = tuning_columns(targets, task.option("min_tuning_examples"))
    return {"thresholds": [float(t) for t in chosen],
            "tuned": [task.classes[c] for c in np.flatnonzero(tuned)]}

  def describe_tuned(self, task, chosen) -> str:
    tuned = chosen.get("tuned", ())
    kept = len(task.classes) - len(tuned)
    text = (f"thresholds of {len(tuned)} of {len(task.classes)} attributes, those with >= "
            f"{task.option('min_tuning_examples')} validation positives and negatives")
    if tuned:
      text += f" ({', '.join(tuned[:8])}{', ...' if len(tuned) > 8 else ''})"
    return text + (f"; {kept} keep {task.option('threshold'):g}" if kept else "")

  def activate(self, task, output):
    return jax.nn.sigmoid(output.astype(jnp.float32))

  def served_output(self, task):
    per_class = np.broadcast_to(np.asarray(thresholds(task), np.float32), (len(task.classes),))
    return {"form": "attributes", "classes": list(task.classes),
            "thresholds": [round(float(t), 6) for t in per_class]}

  def caption(self, task, label, output, has_label):
    threshold = np.clip(thresholds(task), 1e-6, 1 - 1e-6)
    logit = np.log(threshold / (1 - threshold))  # sigmoid(x) >= threshold <=> x >= logit
    predicted = [task.classes[j] for j in np.flatnonzero(output >= logit)][:3]
    return f"{task.name}: {', '.join(predicted) or '-'}", False


def _tuned(task) -> bool:
  return "thresholds" in dict(task.fitted)


def thresholds(task) -> np.ndarray | float:
  """Per attribute, the tuned thresholds when training chose them, else `threshold`."""
  if _tuned(task):
    return np.asarray(task.fit("thresholds"), np.float32)
  return task.option("threshold")


def tuning_columns(targets: np.ndarray, min_examples: int) -> np.ndarray:
  """bool [C]: the columns of 0/1 `targets` [N, C] with at least `min_examples` (and at
  least one) positives and as many negatives, enough to tune a cut on."""
  positives = (targets > 0).sum(0)
  return np.minimum(positives, len(targets) - positives) >= max(int(min_examples), 1)


def choose_thresholds(scores: np.ndarray, targets: np.ndarray, default: float,
                      target_precision: float = 0.0, min_examples: int = 1) -> np.ndarray:
  """Per column of `scores` [N, C] (probabilities) against 0/1 `targets`: where to cut
  (score >= it is predicted) to maximise F1, or, with `target_precision` > 0, the lowest
  cut whose precision reaches it. A cut lies halfway between two neighbouring distinct
  scores, so rounding never moves a sample across it. Columns with fewer than
  `min_examples` positives or negatives (at least one positive), or none reaching the
  precision, keep `default`."""
  chosen = np.full(scores.shape[1], default, np.float64)
  enough = tuning_columns(targets, min_examples)
  for c in range(scores.shape[1]):
    positive = targets[:, c] > 0
    if not enough[c]:
      continue
    order = np.argsort(-scores[:, c], kind="stable")
    ranked, hits = scores[order, c].astype(np.float64), positive[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    cuts = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])  # Last of each score.
    below = np.r_[ranked[cuts[:-1] + 1], 0.0]  # The next lower score (0 past the last).
    if target_precision > 0:
      reaching = np.flatnonzero(tp[cuts] / (tp[cuts] + fp[cuts]) >= target_precision)
      if reaching.size:
        chosen[c] = (ranked[cuts[reaching[-1]]] + below[reaching[-1]]) / 2
      continue
    f1 = 2 * tp[cuts] / (2 * tp[cuts] + fp[cuts] + (positive.sum() - tp[cuts]))
    best = int(np.argmax(f1))
    chosen[c] = (ranked[cuts[best]] + below[best]) / 2
  return chosen


KIND = Sigmoid()
