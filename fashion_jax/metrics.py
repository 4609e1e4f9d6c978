"""Metric arithmetic shared by training-time eval and the evaluation tools.

Batched statistics (confusion matrices, true/false positive counts) are summed on
device over an eval pass; the functions here turn the sums into metrics.
"""

import jax
import jax.numpy as jnp


def confusion_matrix(labels: jax.Array, predictions: jax.Array, mask: jax.Array,
                     num_classes: int) -> jax.Array:
  """[true, predicted] counts of the masked samples (labels < 0 must be masked)."""
  index = jnp.maximum(labels, 0) * num_classes + predictions
  counts = jnp.zeros(num_classes * num_classes, jnp.float32).at[index].add(mask)
  return counts.reshape(num_classes, num_classes)


def _safe_div(a, b):
  return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), 0.0)


def f1_from_counts(tp, fp, fn) -> jax.Array:
  return _safe_div(2.0 * tp, 2.0 * tp + fp + fn)


def classification_metrics(confusion: jax.Array) -> dict[str, jax.Array]:
  """Accuracy and macro-F1; macro-F1 averages over classes that occur or are predicted."""
  tp = jnp.diag(confusion)
  support = confusion.sum(axis=1)
  predicted = confusion.sum(axis=0)
  f1 = f1_from_counts(tp, predicted - tp, support - tp)
  present = (support + predicted) > 0
  return {
      "accuracy": _safe_div(tp.sum(), confusion.sum()),
      "macro_f1": _safe_div(jnp.sum(jnp.where(present, f1, 0.0)), present.sum()),
  }


def multilabel_counts(targets: jax.Array, predictions: jax.Array,
                      mask: jax.Array) -> dict[str, jax.Array]:
  """Per-class true positive, false positive and false negative counts."""
  m = mask[:, None]
  return {
      "tp": jnp.sum(targets * predictions * m, axis=0),
      "fp": jnp.sum((1 - targets) * predictions * m, axis=0),
      "fn": jnp.sum(targets * (1 - predictions) * m, axis=0),
  }


def multilabel_metrics(tp, fp, fn) -> dict[str, jax.Array]:
  present = (tp + fp + fn) > 0
  return {
      "micro_f1": f1_from_counts(tp.sum(), fp.sum(), fn.sum()),
      "macro_f1": _safe_div(jnp.sum(jnp.where(present, f1_from_counts(tp, fp, fn), 0.0)),
                            present.sum()),
  }


def recall_at_k(embeddings: jax.Array, labels: jax.Array, mask: jax.Array,
                k: int = 1) -> jax.Array:
  """Fraction of queries whose k nearest other samples include one of the same label.

  Every masked-in sample is a query against all the others (leave-one-out), and
  queries whose label occurs only once are left out since they cannot be answered.
  """
  valid = mask > 0
  sim = embeddings @ embeddings.T
  n = labels.shape[0]
  excluded = jnp.eye(n, dtype=bool) | ~valid[None, :]
  sim = jnp.where(excluded, -jnp.inf, sim)
  _, nearest = jax.lax.top_k(sim, k)
  same = labels[nearest] == labels[:, None]
  hit = same.any(axis=1)
  has_match = ((labels[:, None] == labels[None, :]) & ~excluded).any(axis=1) & valid
  return _safe_div(jnp.sum(hit & has_match), jnp.sum(has_match))
