"""Tasks: what each head predicts, how it is trained and how it is scored.

A task is a config entry (`config.tasks.<name>`) with a kind, a label column and a loss
weight. A kind is one module here (softmax, sigmoid, embedding, ...) defining a
`base.TaskKind`, registered by name in `registry.py`: adding a task is a config entry,
adding a kind is one module and one registry line.
"""

import jax

from fashion_jax import checks
from fashion_jax.errors import ConfigError
from fashion_jax.tasks.base import ROWS, Task, TaskKind
from fashion_jax.tasks.registry import KINDS

__all__ = ["KINDS", "ROWS", "Task", "TaskKind", "bind_data", "higher_is_better",
           "metric_keys", "metric_mode", "parse_tasks", "task_config", "task_losses"]
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
  """Each task's loss (unweighted: `balancing.combine` weighs and sums them)."""
  return {t.name: t.spec.loss(t, outputs[t.name], labels[t.name], masks[t.name])
          for t in tasks}


def metric_keys(tasks: list[Task], prefix: str) -> list[str]:
  """Names of the eval metrics, e.g. 'val/gender/accuracy'."""
  return [f"{prefix}/{t.name}/{m}" for t in tasks for m in t.spec.metric_names(t)]


def bind_data(tasks: list[Task], vocabs, train_labels: dict | None = None,
              train_masks: dict | None = None) -> list[Task]:
  """Attaches what the training data decides (see `TaskKind.bind`): class names and,
  given the training split's labels (not at inference), what each kind learns from them."""
  return [t.spec.bind(t, vocabs[t.name],
                      None if train_labels is None else train_labels[t.name],
                      None if train_masks is None else train_masks[t.name]) for t in tasks]


def higher_is_better(tasks: list[Task], metric_key: str) -> bool:
  """Direction of an eval metric 'split/task/metric', as the task's kind defines it."""
  parts = metric_key.split("/", 2)
  by_name = {t.name: t for t in tasks}
  if len(parts) < 3 or parts[1] not in by_name:
    return True
  return by_name[parts[1]].spec.higher_is_better(parts[2])


def metric_mode(tasks: list[Task], metric_key: str, mode: str) -> str:
  """'max' or 'min' for a best-checkpoint / early-stopping `mode`: 'auto' asks the kind
  of the metric's task (accuracy: max; a regression's mae: min)."""
  if mode != "auto":
    return mode
  return "max" if higher_is_better(tasks, metric_key) else "min"


def task_config(kind: str, column: str, weight: float = 1.0, min_count: int = 1,
                dataset: str = "", **options) -> dict:
  """A `config.tasks` entry with every field of its kind, so each is overridable by flag."""
  unknown = set(options) - set(KINDS[kind].options)
  if unknown:
    raise ConfigError(f"Unknown option(s) {sorted(unknown)} for a '{kind}' task.")
  return {"kind": kind, "column": column, "weight": weight, "min_count": min_count,
          "dataset": dataset, **KINDS[kind].options, **options}
