"""Wrong and missing labels of one task, from out-of-sample probabilities.

Likely wrong labels are confident learning's (Northcutt et al. 2021, through cleanlab):
`cleanlab.filter.find_label_issues` flags the rows whose given label the probabilities
contradict, ranked by label quality (the probability of the given label: lowest first).
Missing labels are filled with the most probable class where it is confident enough:
the threshold is the lowest confidence at which the known rows' out-of-sample
predictions still reach the asked precision, and that precision and the coverage it
gives are reported as measured on those rows.
"""

import dataclasses

import numpy as np


def _import_cleanlab():
  from fashion_jax.errors import ConfigError
  try:
    import cleanlab.filter  # Lazy: the [audit] extra.
    import cleanlab.multilabel_classification.rank
    import cleanlab.rank
  except ImportError as e:
    raise ConfigError("The audit needs cleanlab: pip install 'fashion_jax[audit]'.") from e
  return cleanlab


def _as_lists(targets: np.ndarray) -> list[list[int]]:
  return [np.flatnonzero(row).tolist() for row in targets]


def label_quality(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
  """Per row, cleanlab's self-confidence score: the probability of the given label (for
  multi-hot targets, cleanlab's aggregate over the labels); low means suspect."""
  cleanlab = _import_cleanlab()
  if labels.ndim == 2:
    return cleanlab.multilabel_classification.rank.get_label_quality_scores(
        _as_lists(labels), probabilities)
  return cleanlab.rank.get_label_quality_scores(labels, probabilities,
                                                method="self_confidence")


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
  """Rows (indices into `labels`) that confident learning flags, most suspect first."""
  cleanlab = _import_cleanlab()
  multi_label = labels.ndim == 2
  num_classes = probabilities.shape[1]
  if not multi_label and len(np.unique(labels)) < num_classes:
    # cleanlab's noise matrices need every class among the given labels: score the
    # classes that are there (a class nobody carries cannot be a given label).
    present = np.unique(labels)
    remap = np.full(num_classes, -1)
    remap[present] = np.arange(len(present))
    sub = probabilities[:, present]
    sub = sub / np.maximum(sub.sum(1, keepdims=True), 1e-12)
    return find_label_issues(remap[labels], sub)
  return np.asarray(cleanlab.filter.find_label_issues(
      _as_lists(labels) if multi_label else labels, probabilities,
      return_indices_ranked_by="self_confidence", multi_label=multi_label,
      n_jobs=1), np.int64)  # cleanlab's worker processes fork, which JAX does not survive.


def lowest_given_probability(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
  """The baseline ranking: every row, lowest probability of its given label first."""
  return np.argsort(label_quality(labels, probabilities), kind="stable")


def ranking_precision_recall(ranked: np.ndarray, truth: np.ndarray, k: int) -> tuple:
  """(precision of the first k of `ranked` against the rows `truth`, recall there)."""
  top = set(ranked[:k].tolist())
  hits = len(top & set(truth.tolist()))
  return hits / max(min(k, len(ranked)), 1), hits / max(len(truth), 1)


@dataclasses.dataclass
class FillRule:
  """The confidence above which a missing label is filled, and what it gave on the
  known rows (out of sample): precision and coverage (the share of rows filled)."""

  target_precision: float
  threshold: float | None  # None: no threshold reaches the target precision.
  precision: float
  coverage: float


def fill_rule(labels: np.ndarray, probabilities: np.ndarray, target_precision: float,
              min_rows: int = 20) -> FillRule:
  """The lowest confidence whose predictions at or above it are right at least
  `target_precision` of the time on the known rows (with at least `min_rows` of them)."""
  confidence = probabilities.max(1)
  right = probabilities.argmax(1) == labels
  order = np.argsort(-confidence, kind="stable")
  precision = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
  ok = np.flatnonzero((precision >= target_precision) & (np.arange(len(order)) + 1 >= min_rows))
  if len(ok) == 0:
    return FillRule(target_precision, None, 0.0, 0.0)
  last = ok[-1]
  return FillRule(target_precision, float(confidence[order[last]]), float(precision[last]),
                  (last + 1) / len(order))


def multi_label_fill_quality(targets: np.ndarray, probabilities: np.ndarray,
                             threshold: float) -> tuple[float, float]:
  """(micro precision, micro recall) of `probabilities >= threshold` on known rows."""
  predicted = probabilities >= threshold
  true_positive = float((predicted & (targets > 0)).sum())
  return (true_positive / max(float(predicted.sum()), 1.0),
          true_positive / max(float((targets > 0).sum()), 1.0))
