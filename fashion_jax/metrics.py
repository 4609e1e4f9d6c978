"""Metric arithmetic shared by training-time eval and the evaluation tools.

Batched statistics (confusion matrices, true/false positive counts) are summed on
device over an eval pass; the functions here turn the sums into metrics.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


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


@functools.partial(jax.jit, static_argnames=("k", "leave_one_out"))
def _first_hit_ranks(query, query_labels, query_offset, gallery, gallery_labels, *, k: int,
                     leave_one_out: bool):
  """Rank (0-based) of the first same-label gallery item in each query's top k (k if none)."""
  similarity = query @ gallery.T
  same = query_labels[:, None] == gallery_labels[None, :]
  if leave_one_out:  # Query i is gallery item query_offset + i: never its own answer.
    own = jnp.arange(query.shape[0])[:, None] + query_offset == jnp.arange(gallery.shape[0])
    similarity = jnp.where(own, -jnp.inf, similarity)
    same = same & ~own
  _, nearest = jax.lax.top_k(similarity, k)
  hits = jnp.take_along_axis(same, nearest, axis=1)
  rank = jnp.where(hits.any(1), jnp.argmax(hits, 1), k)
  return rank, same.any(1)


def retrieval_recall(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                     gallery_labels: np.ndarray, ks: Sequence[int], *,
                     leave_one_out: bool = False, chunk_size: int = 1024) -> dict[int, float]:
  """Recall@k of queries against a gallery by exact cosine similarity.

  A query hits at k when one of its k most similar gallery items has its label (the
  standard definition of the retrieval literature). Queries with no same-label item
  in the gallery cannot hit and are left out. With `leave_one_out` the queries are the
  gallery itself and each query skips its own row. Similarities are computed a chunk
  of queries at a time, so memory is chunk_size x gallery size.
  """
  query = _unit_rows(query)
  gallery = _unit_rows(gallery)
  available = gallery.shape[0] - int(leave_one_out)
  if query.shape[0] == 0 or available <= 0:
    return {k: 0.0 for k in ks}
  k_max = min(max(ks), available)
  chunk_size = min(chunk_size, query.shape[0])
  ranks, answerable = [], []
  for start in range(0, query.shape[0], chunk_size):
    chunk = query[start:start + chunk_size]
    labels = query_labels[start:start + chunk_size]
    n = chunk.shape[0]
    if n < chunk_size:  # Pad the last chunk: one compiled shape for every chunk.
      chunk = np.concatenate([chunk, np.zeros((chunk_size - n, chunk.shape[1]), chunk.dtype)])
      labels = np.concatenate([labels, np.full(chunk_size - n, labels[0])])
    rank, has_match = _first_hit_ranks(chunk, labels, start, gallery, gallery_labels, k=k_max,
                                       leave_one_out=leave_one_out)
    ranks.append(np.asarray(rank)[:n])
    answerable.append(np.asarray(has_match)[:n])
  ranks, answerable = np.concatenate(ranks), np.concatenate(answerable)
  total = answerable.sum()
  return {k: float(((ranks < k) & answerable).sum() / total) if total else 0.0 for k in ks}


def _unit_rows(x) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
