"""A task and the protocol of its kind: everything that differs between kinds of label.

A kind (one module in fashion_jax/tasks/, one entry in the registry of
`fashion_jax.tasks`) owns its options and their checks, how its labels are encoded
from the raw column, its head size and loss, its eval statistics and metrics (and
which way each is better), what inference returns and how predict and evaluate
present it. Code outside the kind modules asks the kind; it never tests its name.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax.data import vocab as vocab_lib
from fashion_jax.serving import outputs
from fashion_jax.tasks import registry


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  column: str
  weight: float
  min_count: int
  dataset: str = ""  # The configured dataset whose samples carry this task's label.
  options: tuple[tuple[str, Any], ...] = ()
  # Bound from the training data once it is read (see `TaskKind.bind`).
  classes: tuple[str, ...] = ()
  # Per-class loss weights: softmax class weighting, or sigmoid automatic pos_weight.
  class_weights: tuple[float, ...] = ()
  # Anything else a kind learns from the training split (e.g. a regression's mean, std).
  fitted: tuple[tuple[str, Any], ...] = ()

  def option(self, key: str):
    return dict(self.options)[key]

  def fit(self, key: str):
    return dict(self.fitted)[key]

  @property
  def spec(self) -> "TaskKind":
    return registry.KINDS[self.kind]


ROWS = "rows/"  # Eval statistics under this prefix are kept per sample, not summed.


class TaskKind:
  """Behaviour shared by all tasks of one kind; the defaults suit single-label classes."""

  options: dict[str, Any] = {}  # Kind-specific config fields and their defaults.
  headline: tuple[str, ...] = ()  # The metrics that summarise a task in charts and Δm.
  lower_is_better: tuple[str, ...] = ("loss",)  # Metrics where smaller is better.
  normalize_output = False  # Head output is L2-normalised (embeddings).
  # Labels are identities and the output an embedding: P x K batches group by them and
  # `search` searches with it.
  embeds = False
  single_label = False  # One class per sample: config.hierarchy can link such tasks.
  # The catalog audit looks for wrong and missing labels of such tasks (fashion_jax/audit):
  # `encode` gives class ids [N] (one label a row) or multi-hot targets [N, C].
  audited = False

  # --- Configuration ---
  def metric_names(self, task: Task) -> tuple[str, ...]:
    """What `summarize` returns (those known before the data is read)."""
    raise NotImplementedError

  def check_options(self, options: dict, field: str) -> None:
    """Checks the kind's own config fields; `field` is e.g. 'tasks.gender'."""

  def higher_is_better(self, metric: str) -> bool:
    return metric not in self.lower_is_better

  # --- Labels ---
  def build_vocab(self, task: Task, values: np.ndarray, rare_policy: str) -> vocab_lib.Vocab:
    """What the training split's raw values define: the classes, by default."""
    return vocab_lib.build_vocab(task.column, values, task.min_count, rare_policy)

  def encode(self, task: Task, vocab, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw label strings -> (labels, mask); mask 0 where the sample has no usable label."""
    ids = vocab.encode(values)
    return ids, (ids >= 0).astype(np.float32)

  def missing_labels(self, task: Task, vocab, count: int) -> np.ndarray:
    """Labels of `count` rows that do not train this task (another dataset's rows)."""
    return np.full(count, vocab_lib.MISSING, np.int32)

  def masked_values(self, task: Task, values: np.ndarray,
                    mask: np.ndarray) -> tuple[str, np.ndarray] | None:
    """(what, row indices) of non-empty values that `encode` masked, for the data report;
    None when masking them is expected (e.g. identities unseen in training)."""
    return None

  def bind(self, task: Task, vocab, labels: np.ndarray | None = None,
           mask: np.ndarray | None = None) -> Task:
    """The task with what the training data decides attached: class names, what the kind
    fitted on the training values (`Vocab.fitted`) and, given the training split's encoded
    labels (training, not inference), the kind's class weights."""
    return dataclasses.replace(task, classes=tuple(vocab.classes),
                               fitted=tuple(sorted((vocab.fitted or {}).items())))

  # --- Model and training ---
  def head_size(self, task: Task, num_classes: int) -> int:
    return num_classes

  def loss(self, task: Task, output, labels, mask) -> jax.Array:
    raise NotImplementedError

  # --- Evaluation ---
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

  def inspect(self, task: Task, values: np.ndarray, train_rows: np.ndarray,
              shown: int) -> dict:
    """`inspect_data`'s facts about a task's raw column beyond its coverage: `values` are
    the label strings of every row ('' missing), `train_rows` the training split's
    indices; lists are cut to `shown` items."""
    return {}

  def tune_on_validation(self, task: Task, total) -> dict | None:
    """What the kind chooses on the validation split when training ends, from that
    split's accumulated statistics (sigmoid: per-attribute thresholds), to add to its
    `Vocab.fitted`; None: nothing."""
    return None

  def describe_tuned(self, task: Task, chosen: dict) -> str:
    """One phrase for the console on what `tune_on_validation` chose."""
    return ", ".join(sorted(chosen))

  def report(self, task: Task, total, rows: dict, raw_labels: np.ndarray, vocab,
             out_dir: str, split: str, step: int, max_classes: int) -> tuple[dict, list[str]]:
    """`evaluate`'s extras beyond `summarize`: (more metrics, files written to `out_dir`).
    `rows` holds the split's raw head outputs, labels, masks and readable flags per row;
    `raw_labels` the split's label strings (for label-level scores)."""
    return {}, []

  # --- Inference ---
  def activate(self, task: Task, output: jax.Array) -> jax.Array:
    """Raw head output -> what inference returns (probabilities, scores, a vector)."""
    return output

  def served_output(self, task: Task) -> dict:
    """What the activated output is, in one of serving.outputs.FORMS, with what reading
    it needs (class names, thresholds): predict's JSON, exported models and the catalog
    index read this, not the kind."""
    return {"form": "value"}

  def predict_fields(self, task: Task, output: np.ndarray, top_k: int,
                     with_embedding: bool) -> dict[str, Any]:
    """One image's activated output for predict's JSON line: {section: value}, e.g.
    {'predictions': [...]} (the line holds `line[section][task.name] = value`)."""
    return outputs.fields(self.served_output(task), output, top_k, with_embedding)

  def caption(self, task: Task, label, output: np.ndarray,
              has_label: bool) -> tuple[str, bool]:
    """(a short caption of one raw output for evaluate's image grid, whether it is wrong);
    ('', False) for none."""
    return "", False


def rows_of(total, key: str) -> np.ndarray:
  return np.concatenate(jax.device_get(total[ROWS + key]))


def loss_stats(loss, mask):
  count = jnp.sum(mask)
  return {"loss_sum": loss * count, "count": count}


def mean_loss(total) -> jax.Array:
  return total["loss_sum"] / jnp.maximum(total["count"], 1.0)
