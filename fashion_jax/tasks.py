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

from fashion_jax import losses
from fashion_jax import metrics
from fashion_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  column: str
  weight: float
  min_count: int
  options: tuple[tuple[str, Any], ...] = ()

  def option(self, key: str):
    return dict(self.options)[key]

  @property
  def spec(self) -> "TaskKind":
    return KINDS[self.kind]


class TaskKind:
  """Behaviour shared by all tasks of one kind."""

  options: dict[str, Any] = {}  # Kind-specific config fields and their defaults.
  metric_names: tuple[str, ...] = ()  # What `summarize` returns.
  multi_label = False  # Labels are multi-hot rows instead of one class id.
  normalize_output = False  # Head output is L2-normalised (embeddings).

  def head_size(self, task: Task, num_classes: int) -> int:
    return num_classes

  def loss(self, task: Task, output, labels, mask) -> jax.Array:
    raise NotImplementedError

  def eval_stats(self, task: Task, output, labels, mask) -> dict[str, jax.Array]:
    """Per-batch statistics, computed inside the jitted eval step."""
    raise NotImplementedError

  def accumulate(self, total, stats):
    """Adds one batch's statistics to the running total (device arrays, no sync)."""
    if total is None:
      return stats
    return jax.tree.map(jnp.add, total, stats)

  def summarize(self, total) -> dict[str, float]:
    raise NotImplementedError


def _loss_stats(loss, mask):
  count = jnp.sum(mask)
  return {"loss_sum": loss * count, "count": count}


def _mean_loss(total) -> jax.Array:
  return total["loss_sum"] / jnp.maximum(total["count"], 1.0)


class Softmax(TaskKind):
  options = {"label_smoothing": 0.0}
  metric_names = ("loss", "accuracy", "macro_f1")

  def loss(self, task, output, labels, mask):
    return losses.softmax_cross_entropy(output, labels, mask, task.option("label_smoothing"))

  def eval_stats(self, task, output, labels, mask):
    stats = _loss_stats(self.loss(task, output, labels, mask), mask)
    stats["confusion"] = metrics.confusion_matrix(
        labels, jnp.argmax(output, -1), mask, output.shape[-1])
    return stats

  def summarize(self, total):
    return {"loss": _mean_loss(total), **metrics.classification_metrics(total["confusion"])}


class Sigmoid(TaskKind):
  options = {"pos_weight": 1.0, "threshold": 0.5, "separator": "|"}
  metric_names = ("loss", "micro_f1", "macro_f1")
  multi_label = True

  def loss(self, task, output, labels, mask):
    return losses.sigmoid_binary_cross_entropy(output, labels, mask, task.option("pos_weight"))

  def eval_stats(self, task, output, labels, mask):
    stats = _loss_stats(self.loss(task, output, labels, mask), mask)
    predicted = (jax.nn.sigmoid(output.astype(jnp.float32)) >= task.option("threshold"))
    stats.update(metrics.multilabel_counts(labels, predicted.astype(jnp.float32), mask))
    return stats

  def summarize(self, total):
    return {"loss": _mean_loss(total),
            **metrics.multilabel_metrics(total["tp"], total["fp"], total["fn"])}


class Embedding(TaskKind):
  """Metric-learning head: samples sharing the label in `column` are positives."""

  options = {"dim": 128, "margin": 0.2}
  metric_names = ("loss", "recall_at_1")
  normalize_output = True

  def head_size(self, task, num_classes):
    return task.option("dim")

  def loss(self, task, output, labels, mask):
    return losses.batch_hard_triplet(output, labels, mask, task.option("margin"))

  def eval_stats(self, task, output, labels, mask):
    stats = _loss_stats(self.loss(task, output, labels, mask), mask)
    stats.update(embeddings=output.astype(jnp.float32), labels=labels, mask=mask)
    return stats

  def accumulate(self, total, stats):
    # Recall@K needs every embedding of the split, so these are kept, not summed.
    total = total or {"loss_sum": 0.0, "count": 0.0, "batches": []}
    return {"loss_sum": total["loss_sum"] + stats["loss_sum"],
            "count": total["count"] + stats["count"],
            "batches": total["batches"] + [(stats["embeddings"], stats["labels"], stats["mask"])]}

  def summarize(self, total):
    emb, labels, mask = (jnp.concatenate(x) for x in zip(*total["batches"]))
    return {"loss": _mean_loss(total), "recall_at_1": metrics.recall_at_k(emb, labels, mask, 1)}


KINDS: dict[str, TaskKind] = {"softmax": Softmax(), "sigmoid": Sigmoid(),
                              "embedding": Embedding()}
_COMMON_FIELDS = {"kind", "column", "weight", "min_count"}


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
    weight = float(entry.get("weight", 1.0))
    if weight < 0:
      raise ConfigError(f"{where}.weight={weight} must be >= 0.")
    options = {**spec.options, **{k: entry[k] for k in spec.options if k in entry}}
    tasks.append(Task(name=name, kind=kind, column=entry["column"], weight=weight,
                      min_count=int(entry.get("min_count", 1)),
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
  return [f"{prefix}/{t.name}/{m}" for t in tasks for m in t.spec.metric_names]


def task_config(kind: str, column: str, weight: float = 1.0, min_count: int = 1,
                **options) -> dict:
  """A `config.tasks` entry with every field of its kind, so each is overridable by flag."""
  unknown = set(options) - set(KINDS[kind].options)
  if unknown:
    raise ConfigError(f"Unknown option(s) {sorted(unknown)} for a '{kind}' task.")
  return {"kind": kind, "column": column, "weight": weight, "min_count": min_count,
          **KINDS[kind].options, **options}
