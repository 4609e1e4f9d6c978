"""sigmoid: multi-label attributes, one independent sigmoid per class.

The column holds the labels of a row joined by `separator` ('a|b'). `pos_weight`
scales the positive term of the loss; `auto_pos_weight` sets it per class to
(negatives / positives) in the training split, capped at `max_pos_weight`. Class names
of the form 'group<group_separator>name' form groups of mutually exclusive classes
(DeepFashion fine attributes), each scored by arg-max accuracy.
"""

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import checks, losses, metrics
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.errors import ConfigError
from fashion_jax.tasks import base


class Sigmoid(base.TaskKind):
  options = {"pos_weight": 1.0, "auto_pos_weight": False, "max_pos_weight": 50.0,
             "threshold": 0.5, "separator": "|", "top_k": (), "group_separator": ""}
  lower_is_better = ("loss", "hamming_loss")

  def metric_names(self, task):
    return ("loss", "micro_f1", "macro_f1", "hamming_loss", "mAP",
            *(f"top{k}_recall" for k in task.option("top_k")))

  def check_options(self, options, field):
    checks.number(options["pos_weight"], f"{field}.pos_weight", 0, low_open=True)
    checks.number(options["max_pos_weight"], f"{field}.max_pos_weight", 1)
    checks.number(options["threshold"], f"{field}.threshold", 0, 1, low_open=True,
                  high_open=True)
    if not isinstance(options["separator"], str) or not options["separator"]:
      raise ConfigError(f"config.{field}.separator={options['separator']!r} must be a "
                        "non-empty string (what joins the labels of one row, e.g. '|').")

  def build_vocab(self, task, values, rare_policy):
    return vocab_lib.build_vocab(task.column, values, task.min_count, rare_policy,
                                 task.option("separator"))

  def encode(self, task, vocab, values):
    return vocab.encode_multi_hot(values)

  def missing_labels(self, task, vocab, count):
    return np.zeros((count, len(vocab)), np.float32)

  def bind(self, task, vocab, labels=None, mask=None):
    task = super().bind(task, vocab)
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
    predicted = (scores >= task.option("threshold")).astype(jnp.float32)
    stats.update(metrics.multilabel_counts(labels, predicted, mask))
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
    return out

  def activate(self, task, output):
    return jax.nn.sigmoid(output.astype(jnp.float32))

  def predict_fields(self, task, output, top_k, with_embedding):
    order = np.argsort(-output, kind="stable")
    return {"predictions": [{"label": task.classes[c], "score": round(float(output[c]), 6)}
                            for c in order if output[c] >= task.option("threshold")]}

  def caption(self, task, label, output, has_label):
    threshold = task.option("threshold")
    logit = np.log(threshold / (1 - threshold))  # sigmoid(x) >= threshold <=> x >= logit
    predicted = [task.classes[j] for j in np.flatnonzero(output >= logit)][:3]
    return f"{task.name}: {', '.join(predicted) or '-'}", False


KIND = Sigmoid()
