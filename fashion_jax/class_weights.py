"""Per-class loss weights for imbalanced softmax tasks, from training-split class counts.

Selected per task by `class_weighting` (a softmax task option):
  none               every class weighs 1.
  inverse_frequency  w_c proportional to 1 / n_c.
  effective_number   w_c proportional to (1 - beta) / (1 - beta^n_c) (Cui et al., 2019):
                     between none (beta = 0) and inverse frequency (beta -> 1).
Weights are scaled so that the training samples' mean weight is 1, which keeps the
loss on the scale of the unweighted one (and the task weights meaningful). Classes
absent from the training split get weight 0 (they never occur as targets there).
"""

from typing import Callable

import numpy as np


def _none(counts: np.ndarray, beta: float) -> np.ndarray:
  return np.ones_like(counts, np.float64)


def _inverse_frequency(counts: np.ndarray, beta: float) -> np.ndarray:
  return 1.0 / np.maximum(counts, 1)


def _effective_number(counts: np.ndarray, beta: float) -> np.ndarray:
  return (1.0 - beta) / (1.0 - np.power(beta, np.maximum(counts, 1)))


WEIGHTINGS: dict[str, Callable] = {"none": _none, "inverse_frequency": _inverse_frequency,
                                   "effective_number": _effective_number}


def class_weights(counts: np.ndarray, method: str, beta: float = 0.999) -> np.ndarray:
  """Weights [C] whose mean over the counted samples is 1."""
  counts = np.asarray(counts, np.float64)
  weights = np.where(counts > 0, WEIGHTINGS[method](counts, beta), 0.0)
  total = (weights * counts).sum()
  return weights * counts.sum() / total if total > 0 else weights
