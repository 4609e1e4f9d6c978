"""Multi-label tasks (tasks/sigmoid.py): per-attribute thresholds chosen on validation."""

import numpy as np

from fashion_jax.tasks import sigmoid


def _f1(scores, positive, cut):
  predicted = scores >= cut
  tp = np.sum(predicted & positive)
  return 2 * tp / max(2 * tp + np.sum(predicted & ~positive) + np.sum(~predicted & positive), 1)


def test_chosen_thresholds_maximise_each_attributes_f1_by_brute_force():
  rng = np.random.default_rng(0)
  targets = (rng.random((300, 6)) < [0.05, 0.2, 0.5, 0.8, 0.3, 0.0]).astype(np.float32)
  # Scores that carry some signal, rounded so that ties occur.
  scores = np.round(np.clip(0.3 * targets + 0.7 * rng.random((300, 6)), 0, 1), 2)
  chosen = sigmoid.choose_thresholds(scores, targets, default=0.5)
  for c in range(5):
    positive = targets[:, c] > 0
    best = max(_f1(scores[:, c], positive, cut) for cut in np.unique(scores[:, c]))
    assert _f1(scores[:, c], positive, chosen[c]) == best, c
  assert chosen[5] == 0.5  # No positives: the configured threshold stays.


def test_a_target_precision_picks_the_lowest_cut_that_reaches_it():
  scores = np.asarray([[0.9], [0.8], [0.7], [0.6], [0.5], [0.4]])
  targets = np.asarray([[1], [1], [0], [1], [0], [0]], np.float32)
  # Precision cutting below each score: 0.9 -> 1, 0.8 -> 1, 0.7 -> 2/3, 0.6 -> 3/4,
  # 0.5 -> 3/5, 0.4 -> 1/2; a cut lies halfway to the next lower score.
  np.testing.assert_allclose(
      sigmoid.choose_thresholds(scores, targets, 0.5, target_precision=0.75)[0], 0.55)
  np.testing.assert_allclose(
      sigmoid.choose_thresholds(scores, targets, 0.5, target_precision=1.0)[0], 0.75)
  # Unreachable: the configured threshold stays.
  assert sigmoid.choose_thresholds(scores[2:3], targets[2:3], 0.5, target_precision=0.9)[0] == 0.5


def test_only_attributes_with_enough_validation_positives_and_negatives_are_tuned():
  rng = np.random.default_rng(1)
  targets = np.zeros((200, 4), np.float32)
  targets[:25, 0] = 1  # Enough of both.
  targets[:3, 1] = 1  # A handful of positives: a best-F1 cut would fit them, not the attribute.
  targets[:197, 3] = 1  # A handful of negatives, the same way round.
  scores = np.clip(0.4 * targets + 0.6 * rng.random((200, 4)), 0, 1)
  every = sigmoid.choose_thresholds(scores, targets, 0.5)
  assert every[1] != 0.5 and every[3] != 0.5
  ruled = sigmoid.choose_thresholds(scores, targets, 0.5, min_examples=20)
  assert ruled[0] == every[0] and list(ruled[1:]) == [0.5, 0.5, 0.5]
  np.testing.assert_array_equal(sigmoid.tuning_columns(targets, 20), [True, False, False, False])
  # One positive is the least that tuning needs, whatever the setting says.
  np.testing.assert_array_equal(sigmoid.tuning_columns(targets, 0), [True, True, False, True])
