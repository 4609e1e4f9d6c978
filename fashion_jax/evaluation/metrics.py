"""Metric arithmetic shared by training-time eval and the evaluation tools.

Batched statistics (confusion matrices, true/false positive counts) are summed on
device over an eval pass; the functions here turn the sums into metrics.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
  """Probabilities of host-side logits [..., C]."""
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


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


def top_k_hits(logits: jax.Array, labels: jax.Array, mask: jax.Array, k: int) -> jax.Array:
  """Number of masked-in samples whose label is among the k highest logits."""
  k = min(k, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)
  return jnp.sum(jnp.any(top == labels[:, None], axis=-1) * mask)


def attribute_top_k_recall(scores: jax.Array, targets: jax.Array, mask: jax.Array,
                           k: int) -> jax.Array:
  """DeepFashion's top-k attribute recall, as [sum over images, number of images].

  Per image: the fraction of its positive attributes found among its k highest
  scores. Images without a positive attribute are left out.
  """
  k = min(k, scores.shape[-1])
  _, top = jax.lax.top_k(scores, k)
  found = jnp.take_along_axis(targets, top, axis=-1).sum(-1)
  positives = targets.sum(-1)
  counted = (positives > 0) * mask
  return jnp.stack([jnp.sum(found / jnp.maximum(positives, 1.0) * counted), jnp.sum(counted)])


def group_accuracy_counts(scores: jax.Array, targets: jax.Array, mask: jax.Array,
                          group: tuple[int, ...]) -> jax.Array:
  """[correct, count] of arg-max prediction within one group of mutually exclusive classes.

  Only samples with exactly one positive class in the group are counted.
  """
  index = jnp.asarray(group)
  group_targets = targets[:, index]
  counted = (group_targets.sum(-1) == 1) * mask
  correct = jnp.argmax(scores[:, index], -1) == jnp.argmax(group_targets, -1)
  return jnp.stack([jnp.sum(correct * counted), jnp.sum(counted)])


def hamming_loss(fp, fn, num_samples, num_classes) -> jax.Array:
  """Fraction of (sample, class) decisions that are wrong."""
  return _safe_div(jnp.sum(fp) + jnp.sum(fn), num_samples * num_classes)


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
  """Mean over classes with a positive of (non-interpolated) average precision.

  AP of a class = the mean, over its positives, of the precision at the rank of each
  positive when samples are sorted by decreasing score (stable, so ties keep order).
  """
  scores, targets = np.asarray(scores, np.float64), np.asarray(targets) > 0
  order = np.argsort(-scores, axis=0, kind="stable")
  ranked = np.take_along_axis(targets, order, axis=0)
  hits = np.cumsum(ranked, axis=0)
  precision = hits / np.arange(1, len(scores) + 1)[:, None]
  positives = ranked.sum(0)
  present = positives > 0
  if not present.any():
    return 0.0
  ap = (precision * ranked).sum(0)[present] / positives[present]
  return float(ap.mean())


@functools.partial(jax.jit, static_argnames=("k",))
def _top_k_chunk(query, gallery, excluded, *, k: int):
  similarity = query @ gallery.T
  similarity = jnp.where(excluded[:, None] == jnp.arange(gallery.shape[0]), -jnp.inf, similarity)
  return jax.lax.top_k(similarity, k)


def cosine_top_k(query: np.ndarray, gallery: np.ndarray, k: int, *,
                 exclude: np.ndarray | None = None,
                 chunk_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """The k gallery rows most cosine-similar to each query: (similarities, indices) [Q, k].

  Exact; computed a chunk of queries at a time, so memory is chunk_size x gallery size
  (a 100k gallery in 1024-query chunks: 400 MB). `exclude[i]` is a gallery row query i
  must not return (itself, in leave-one-out), or -1.
  """
  query, gallery = _unit_rows(query), _unit_rows(gallery)
  k = min(k, gallery.shape[0])
  if exclude is None:
    exclude = np.full(query.shape[0], -1)
  chunk_size = max(1, min(chunk_size, query.shape[0]))
  scores, indices = [], []
  for start in range(0, query.shape[0], chunk_size):
    chunk, skip = query[start:start + chunk_size], exclude[start:start + chunk_size]
    n = chunk.shape[0]
    if n < chunk_size:  # Pad the last chunk: one compiled shape for every chunk.
      chunk = np.concatenate([chunk, np.zeros((chunk_size - n, chunk.shape[1]), chunk.dtype)])
      skip = np.concatenate([skip, np.full(chunk_size - n, -1)])
    top_scores, top_indices = _top_k_chunk(chunk, gallery, skip, k=k)
    scores.append(np.asarray(top_scores)[:n])
    indices.append(np.asarray(top_indices)[:n])
  return np.concatenate(scores), np.concatenate(indices)


def retrieval_recall(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                     gallery_labels: np.ndarray, ks: Sequence[int], *,
                     leave_one_out: bool = False, chunk_size: int = 1024) -> dict[int, float]:
  """Recall@k of queries against a gallery by exact cosine similarity.

  A query hits at k when one of its k most similar gallery items has its label (the
  standard definition of the retrieval literature). Queries with no same-label item
  in the gallery cannot hit and are left out. With `leave_one_out` the queries are the
  gallery itself and each query skips its own row.
  """
  query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
  available = len(gallery_labels) - int(leave_one_out)
  if len(query_labels) == 0 or available <= 0:
    return {k: 0.0 for k in ks}
  exclude = np.arange(len(query_labels)) if leave_one_out else None
  _, nearest = cosine_top_k(query, gallery, min(max(ks), available), exclude=exclude,
                            chunk_size=chunk_size)
  hits = gallery_labels[nearest] == query_labels[:, None]
  first_hit = np.where(hits.any(1), hits.argmax(1), np.inf)
  values, counts = np.unique(gallery_labels, return_counts=True)
  where = np.clip(np.searchsorted(values, query_labels), 0, len(values) - 1)
  matches = np.where(values[where] == query_labels, counts[where], 0)
  answerable = matches - int(leave_one_out) > 0
  total = answerable.sum()
  return {k: float(((first_hit < k) & answerable).sum() / total) if total else 0.0 for k in ks}


def _unit_rows(x) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# Reports after training (numpy on the host, vectorised over samples and classes).

def per_class_report(confusion: np.ndarray) -> dict[str, np.ndarray]:
  """Per-class precision, recall, F1 and support from a [true, predicted] count matrix."""
  confusion = np.asarray(confusion, np.float64)
  tp = np.diag(confusion)
  support, predicted = confusion.sum(1), confusion.sum(0)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
  denominator = precision + recall
  f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp),
                 where=denominator > 0)
  return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def averaged_report(confusion: np.ndarray) -> dict[str, float]:
  """Macro (over classes that occur or are predicted) and support-weighted P/R/F1."""
  report = per_class_report(confusion)
  confusion = np.asarray(confusion)
  present = (confusion.sum(0) + confusion.sum(1)) > 0
  weights = report["support"] / max(report["support"].sum(), 1.0)
  out = {}
  for name in ("precision", "recall", "f1"):
    out[f"macro_{name}"] = float(report[name][present].mean()) if present.any() else 0.0
    out[f"weighted_{name}"] = float((report[name] * weights).sum())
  return out


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of samples whose label has one of the k highest scores."""
  scores, labels = np.asarray(scores), np.asarray(labels)
  if len(labels) == 0:
    return 0.0
  k = min(k, scores.shape[1])
  label_score = np.take_along_axis(scores, labels[:, None], 1)
  # Strictly higher scores ahead of the label's: ties count in the label's favour.
  return float(((scores > label_score).sum(1) < k).mean())


def roc_curve(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
  scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
  order = np.argsort(-scores, kind="stable")
  scores, positives = scores[order], positives[order]
  # The last index of each run of equal scores: tied samples cross the threshold together.
  last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
  tp = np.cumsum(positives)[last]
  fp = (last + 1) - tp
  num_pos, num_neg = positives.sum(), (~positives).sum()
  tpr = np.r_[0.0, tp / num_pos] if num_pos else np.r_[0.0, np.zeros_like(tp, float)]
  fpr = np.r_[0.0, fp / num_neg] if num_neg else np.r_[0.0, np.zeros_like(fp, float)]
  return fpr, tpr


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
  """Area under the ROC curve (trapezoids; ties count one half). NaN with one class only."""
  positives = np.asarray(positives, bool)
  if positives.all() or not positives.any():
    return float("nan")
  return curve_area(*roc_curve(scores, positives))


def curve_area(fpr: np.ndarray, tpr: np.ndarray) -> float:
  """Area under a ROC curve from `roc_curve` (trapezoids)."""
  return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def label_scores(true_labels, predicted_labels, known) -> dict:
  """Accuracy and macro-F1 of predicted label strings, the way the study scores every model.

  A row counts unless its true label is empty or absent from `known` (the labels of the
  training split: no model could have learnt it). A row whose class the model does not
  predict (dropped as rare, folded into '<other>') counts as an error. Macro-F1 averages
  the F1 of every label that is true or predicted on the scored rows (scikit-learn's
  `f1_score(average='macro')`). Returns accuracy, macro_f1, n (rows scored) and
  excluded (rows left out).
  """
  true_labels = np.asarray(true_labels, dtype=object)
  predicted_labels = np.asarray(predicted_labels, dtype=object)
  keep = np.asarray([bool(v) and v in known for v in true_labels], bool)
  truth, guess = true_labels[keep], predicted_labels[keep]
  f1 = []
  for label in set(truth.tolist()) | set(guess.tolist()):
    tp = np.sum((truth == label) & (guess == label))
    fp = np.sum((truth != label) & (guess == label))
    fn = np.sum((truth == label) & (guess != label))
    f1.append(2 * tp / (2 * tp + fp + fn))
  return {"accuracy": float(np.mean(truth == guess)) if len(truth) else float("nan"),
          "macro_f1": float(np.mean(f1)) if f1 else float("nan"),
          "n": int(keep.sum()), "excluded": int((~keep).sum())}


def format_label_scores(scores: dict[str, dict]) -> str:
  """{task: label_scores(...)} as a table: task, accuracy, macro-F1, n."""
  lines = [f"  {'task':<16} {'accuracy':>8} {'macro_f1':>8} {'n':>6}"]
  lines += [f"  {task:<16} {s['accuracy']:>8.4f} {s['macro_f1']:>8.4f} {s['n']:>6d}"
            for task, s in scores.items()]
  return "\n".join(lines)
