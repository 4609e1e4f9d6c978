"""Tasks: what each head predicts, how it is trained and how it is scored.

A task is a config entry (`config.tasks.<name>`) with a kind, a label column and a loss
weight. A kind is one entry in `KINDS`: its head size, loss, per-batch eval statistics
and how those statistics become metrics. Adding a task is a config entry; adding a kind
is one class here.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import checks
from fashion_jax import class_weights as class_weights_lib
from fashion_jax import losses
from fashion_jax import metrics
from fashion_jax.data.table import ROLES
from fashion_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  column: str
  weight: float
  min_count: int
  dataset: str = ""  # The configured dataset whose samples carry this task's label.
  options: tuple[tuple[str, Any], ...] = ()
  # Bound from the training data once it is read (see `bind_data`).
  classes: tuple[str, ...] = ()
  # Per-class loss weights: softmax class weighting, or sigmoid automatic pos_weight.
  class_weights: tuple[float, ...] = ()

  def option(self, key: str):
    return dict(self.options)[key]

  @property
  def spec(self) -> "TaskKind":
    return KINDS[self.kind]


ROWS = "rows/"  # Eval statistics under this prefix are kept per sample, not summed.


class TaskKind:
  """Behaviour shared by all tasks of one kind."""

  options: dict[str, Any] = {}  # Kind-specific config fields and their defaults.
  multi_label = False  # Labels are multi-hot rows instead of one class id.
  headline: tuple[str, ...] = ()  # The metrics that summarise a task in charts and Δm.
  normalize_output = False  # Head output is L2-normalised (embeddings).

  def metric_names(self, task: Task) -> tuple[str, ...]:
    """What `summarize` returns (those known before the data is read)."""
    raise NotImplementedError

  def check_options(self, options: dict, field: str) -> None:
    """Checks the kind's own config fields; `field` is e.g. 'tasks.gender'."""

  def head_size(self, task: Task, num_classes: int) -> int:
    return num_classes

  def encode(self, task: Task, vocab, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw label strings -> (labels, mask); mask 0 where the sample has no usable label."""
    ids = vocab.encode(values)
    return ids, (ids >= 0).astype(np.float32)

  def loss(self, task: Task, output, labels, mask) -> jax.Array:
    raise NotImplementedError

  def eval_stats(self, task: Task, output, labels, mask, roles) -> dict[str, jax.Array]:
    """Per-batch statistics, computed inside the jitted eval step.

    Keys starting with ROWS are concatenated over the eval pass; the others are summed.
    `roles` is each sample's retrieval role (see `data.table.ROLES`).
    """
    raise NotImplementedError

  def accumulate(self, total, stats):
    """Adds one batch's statistics to the running total (device arrays, no sync)."""
    if total is None:
      return {k: [v] if k.startswith(ROWS) else v for k, v in stats.items()}
    return {k: total[k] + [v] if k.startswith(ROWS) else total[k] + v for k, v in stats.items()}

  def summarize(self, task: Task, total) -> dict[str, float]:
    raise NotImplementedError


def _rows(total, key: str) -> np.ndarray:
  return np.concatenate(jax.device_get(total[ROWS + key]))


def _loss_stats(loss, mask):
  count = jnp.sum(mask)
  return {"loss_sum": loss * count, "count": count}


def _mean_loss(total) -> jax.Array:
  return total["loss_sum"] / jnp.maximum(total["count"], 1.0)


class Softmax(TaskKind):
  """Single-label classification. `class_weighting` (see class_weights.py): none |
  inverse_frequency | effective_number (with `effective_beta`)."""

  headline = ("accuracy", "macro_f1")
  options = {"label_smoothing": 0.0, "class_weighting": "none", "effective_beta": 0.999,
             "top_k": ()}  # Extra top-k accuracies to report, e.g. (3, 5).

  def metric_names(self, task):
    return ("loss", "accuracy", "macro_f1", *(f"top{k}_accuracy" for k in task.option("top_k")))

  def check_options(self, options, field):
    checks.number(options["label_smoothing"], f"{field}.label_smoothing", 0, 1, high_open=True)
    checks.choice(options["class_weighting"], f"{field}.class_weighting",
                  class_weights_lib.WEIGHTINGS)
    checks.number(options["effective_beta"], f"{field}.effective_beta", 0, 1, high_open=True)

  def loss(self, task, output, labels, mask):
    weights = jnp.asarray(task.class_weights) if task.class_weights else None
    return losses.softmax_cross_entropy(output, labels, mask, task.option("label_smoothing"),
                                        weights)

  def eval_stats(self, task, output, labels, mask, roles):
    stats = _loss_stats(self.loss(task, output, labels, mask), mask)
    stats["confusion"] = metrics.confusion_matrix(
        labels, jnp.argmax(output, -1), mask, output.shape[-1])
    for k in task.option("top_k"):
      stats[f"top{k}_hits"] = metrics.top_k_hits(output, labels, mask, k)
    return stats

  def summarize(self, task, total):
    out = {"loss": _mean_loss(total), **metrics.classification_metrics(total["confusion"])}
    for k in task.option("top_k"):
      out[f"top{k}_accuracy"] = total[f"top{k}_hits"] / jnp.maximum(total["count"], 1.0)
    return out


class Sigmoid(TaskKind):
  """Multi-label attributes: one independent sigmoid per class.

  `pos_weight` scales the positive term of the loss; 'auto_pos_weight' sets it per class
  to (negatives / positives) in the training split, capped at `max_pos_weight`. Class
  names of the form 'group<group_separator>name' form groups of mutually exclusive
  classes (DeepFashion fine attributes), each scored by arg-max accuracy.
  """

  options = {"pos_weight": 1.0, "auto_pos_weight": False, "max_pos_weight": 50.0,
             "threshold": 0.5, "separator": "|", "top_k": (), "group_separator": ""}

  multi_label = True

  def encode(self, task, vocab, values):
    return vocab.encode_multi_hot(values)

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
    stats = _loss_stats(self.loss(task, output, labels, mask), mask)
    scores = jax.nn.sigmoid(output.astype(jnp.float32))
    predicted = (scores >= task.option("threshold")).astype(jnp.float32)
    stats.update(metrics.multilabel_counts(labels, predicted, mask))
    for k in task.option("top_k"):
      stats[f"top{k}_recall"] = metrics.attribute_top_k_recall(scores, labels, mask, k)
    for group, index in self.groups(task).items():
      stats[f"group/{group}"] = metrics.group_accuracy_counts(scores, labels, mask, index)
    # Average precision ranks each class over the whole split: keep the scores.
    stats.update({ROWS + "scores": scores, ROWS + "targets": labels, ROWS + "mask": mask})
    return stats

  def summarize(self, task, total):
    out = {"loss": _mean_loss(total),
           **metrics.multilabel_metrics(total["tp"], total["fp"], total["fn"]),
           "hamming_loss": metrics.hamming_loss(total["fp"], total["fn"], total["count"],
                                                total["tp"].shape[0])}
    keep = _rows(total, "mask") > 0
    out["mAP"] = metrics.mean_average_precision(_rows(total, "scores")[keep],
                                                _rows(total, "targets")[keep])
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


class Embedding(TaskKind):
  """Metric-learning head: samples sharing the label in `column` are positives.

  Labels are identities (e.g. an In-shop item id): they are compared for equality
  only, so unseen identities (query and gallery items) are fine.
  """

  options = {"dim": 128, "margin": 0.2, "recall_ks": (1, 5, 10)}
  headline = ("recall_at_1",)
  normalize_output = True

  def metric_names(self, task):
    return ("loss", *(f"recall_at_{k}" for k in task.option("recall_ks")))

  def check_options(self, options, field):
    checks.number(options["dim"], f"{field}.dim", 1, integer=True)
    checks.number(options["margin"], f"{field}.margin", 0)

  def head_size(self, task, num_classes):
    return task.option("dim")

  def encode(self, task, vocab, values):
    # Identities within the split; '' (no identity) is masked.
    names, ids = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    ids = ids.astype(np.int32)
    mask = (names[ids] != "").astype(np.float32)
    return np.where(mask > 0, ids, -1).astype(np.int32), mask

  def loss(self, task, output, labels, mask):
    return losses.batch_hard_triplet(output, labels, mask, task.option("margin"))

  def eval_stats(self, task, output, labels, mask, roles):
    stats = _loss_stats(self.loss(task, output, labels, mask), mask)
    stats.update({ROWS + "embeddings": output.astype(jnp.float32), ROWS + "labels": labels,
                  ROWS + "mask": mask, ROWS + "roles": roles})
    return stats

  def summarize(self, task, total):
    embeddings, labels = _rows(total, "embeddings"), _rows(total, "labels")
    valid, roles = _rows(total, "mask") > 0, _rows(total, "roles")
    queries = valid & (roles == ROLES["query"])
    if queries.any():  # Query set against gallery set (In-shop protocol).
      gallery = valid & (roles == ROLES["gallery"])
      recalls = metrics.retrieval_recall(embeddings[queries], labels[queries],
                                         embeddings[gallery], labels[gallery],
                                         task.option("recall_ks"))
    else:  # Every sample against all the others.
      recalls = metrics.retrieval_recall(embeddings[valid], labels[valid], embeddings[valid],
                                         labels[valid], task.option("recall_ks"),
                                         leave_one_out=True)
    return {"loss": _mean_loss(total), **{f"recall_at_{k}": v for k, v in recalls.items()}}


KINDS: dict[str, TaskKind] = {"softmax": Softmax(), "sigmoid": Sigmoid(),
                              "embedding": Embedding()}
_COMMON_FIELDS = {"kind", "column", "weight", "min_count", "dataset"}


def parse_tasks(tasks_config) -> list[Task]:
  """Validates `config.tasks` and returns the tasks in a fixed (sorted) order."""
  if not tasks_config:
    raise ConfigError("config.tasks is empty: configure at least one task.")
  tasks = []
  for name in sorted(tasks_config):
    entry = dict(tasks_config[name])
    where = f"config.tasks.{name}"
    kind = entry.get("kind")
    if kind not in KINDS:
      raise ConfigError(f"{where}.kind={kind!r} is not one of {sorted(KINDS)}.")
    if not entry.get("column"):
      raise ConfigError(f"{where}.column is not set: name the label column this task reads.")
    spec = KINDS[kind]
    unknown = set(entry) - _COMMON_FIELDS - set(spec.options)
    if unknown:
      raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)} for kind '{kind}'; "
                       f"allowed: {sorted(_COMMON_FIELDS | set(spec.options))}.")
    checks.number(entry.get("weight", 1.0), f"tasks.{name}.weight", 0)
    checks.number(entry.get("min_count", 1), f"tasks.{name}.min_count", 1, integer=True)
    weight = float(entry.get("weight", 1.0))
    options = {**spec.options, **{k: entry[k] for k in spec.options if k in entry}}
    for key, default in spec.options.items():
      if isinstance(default, tuple):  # Hashable (tasks are static jit arguments), sorted.
        try:
          options[key] = tuple(int(v) for v in options[key])
        except (TypeError, ValueError) as e:
          raise ConfigError(f"{where}.{key}={options[key]!r}: expected a tuple of integers "
                            "such as (1, 5).") from e
        if any(v <= 0 for v in options[key]):
          raise ConfigError(f"{where}.{key}={options[key]!r}: values must be positive.")
    spec.check_options(options, f"tasks.{name}")
    tasks.append(Task(name=name, kind=kind, column=entry["column"], weight=weight,
                      min_count=int(entry.get("min_count", 1)),
                      dataset=str(entry.get("dataset", "")),
                      options=tuple(sorted(options.items()))))
  return tasks


def task_losses(tasks: list[Task], outputs, labels, masks) -> dict[str, jax.Array]:
  """Per-task losses plus 'total' = sum of weight * loss."""
  per_task = {t.name: t.spec.loss(t, outputs[t.name], labels[t.name], masks[t.name])
              for t in tasks}
  per_task["total"] = sum(t.weight * per_task[t.name] for t in tasks)
  return per_task


def metric_keys(tasks: list[Task], prefix: str) -> list[str]:
  """Names of the eval metrics, e.g. 'val/gender/accuracy'."""
  return [f"{prefix}/{t.name}/{m}" for t in tasks for m in t.spec.metric_names(t)]


def bind_data(tasks: list[Task], vocabs, train_labels: dict | None = None,
              train_masks: dict | None = None) -> list[Task]:
  """Attaches what the training data decides: class names and automatic class weights.

  Without the training labels (inference) only the class names are attached.
  """
  bound = []
  for task in tasks:
    weights = ()
    if train_labels is not None:
      counted = train_masks[task.name] > 0
      if task.spec.multi_label and task.option("auto_pos_weight"):
        positives = train_labels[task.name][counted].sum(0)
        negatives = counted.sum() - positives
        weights = tuple(np.clip(negatives / np.maximum(positives, 1.0), 1.0,
                                task.option("max_pos_weight")).astype(float).tolist())
      elif task.kind == "softmax" and task.option("class_weighting") != "none":
        counts = np.bincount(train_labels[task.name][counted], minlength=len(vocabs[task.name]))
        weights = tuple(class_weights_lib.class_weights(
            counts, task.option("class_weighting"), task.option("effective_beta")).tolist())
    bound.append(dataclasses.replace(task, classes=tuple(vocabs[task.name].classes),
                                     class_weights=weights))
  return bound


def task_config(kind: str, column: str, weight: float = 1.0, min_count: int = 1,
                dataset: str = "", **options) -> dict:
  """A `config.tasks` entry with every field of its kind, so each is overridable by flag."""
  unknown = set(options) - set(KINDS[kind].options)
  if unknown:
    raise ConfigError(f"Unknown option(s) {sorted(unknown)} for a '{kind}' task.")
  return {"kind": kind, "column": column, "weight": weight, "min_count": min_count,
          "dataset": dataset, **KINDS[kind].options, **options}
