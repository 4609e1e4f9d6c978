"""The audit's parts on made-up data: folds, out-of-sample probabilities, cleanlab's
suspects, the fill rule, near-duplicate groups."""

import numpy as np
import pytest

from fashion_jax.audit import cross_fit, labels, near_duplicates

pytest.importorskip("cleanlab")


def _clusters(seed=0, per_class=40, classes=4, dim=16, spread=0.6):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, dim)) * 3
  y = np.repeat(np.arange(classes), per_class)
  x = centres[y] + rng.normal(size=(len(y), dim)) * spread
  return x.astype(np.float32), y


def test_folds_are_stratified_and_seeded():
  y = np.repeat(np.arange(3), [10, 20, 7])
  fold = cross_fit.stratified_folds(y, 5, seed=0)
  for c in range(3):
    counts = np.bincount(fold[y == c], minlength=5)
    assert counts.max() - counts.min() <= 1
  assert np.array_equal(fold, cross_fit.stratified_folds(y, 5, seed=0))
  assert not np.array_equal(fold, cross_fit.stratified_folds(y, 5, seed=1))


def test_a_rows_probabilities_do_not_depend_on_its_own_label():
  x, y = _clusters()
  settings = cross_fit.HeadSettings(steps=100)
  known = np.ones(len(y), bool)
  p, fold = cross_fit.out_of_sample_probabilities(x, y, known, 4, settings)
  changed = y.copy()
  changed[5] = (y[5] + 1) % 4
  q, _ = cross_fit.out_of_sample_probabilities(x, changed, known, 4, settings, fold=fold)
  np.testing.assert_allclose(q[5], p[5], atol=1e-6)  # Its own fold's head never saw it.
  assert np.abs(q - p).max() > 1e-4  # The other folds' heads did.
  assert (p.argmax(1) == y).mean() > 0.95


def test_unlabelled_rows_get_the_mean_of_the_fold_heads():
  x, y = _clusters()
  known = np.ones(len(y), bool)
  known[::10] = False
  p, fold = cross_fit.out_of_sample_probabilities(x, y, known, 4,
                                                  cross_fit.HeadSettings(steps=100))
  assert (fold[~known] == -1).all() and (fold[known] >= 0).all()
  np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
  assert (p[~known].argmax(1) == y[~known]).mean() > 0.9


def test_multi_hot_targets_get_independent_probabilities():
  x, y = _clusters()
  targets = np.stack([y == 0, y == 1, (y == 1) | (y == 2)], 1).astype(np.float32)
  p, _ = cross_fit.out_of_sample_probabilities(x, targets, np.ones(len(y), bool), 3,
                                               cross_fit.HeadSettings(steps=100))
  assert p.shape == (len(y), 3) and ((p >= 0.5) == (targets > 0)).mean() > 0.95


def test_cleanlab_flags_the_flipped_rows_first():
  x, y = _clusters(per_class=50)
  noisy = y.copy()
  flipped = np.asarray([3, 60, 110, 170])
  noisy[flipped] = (y[flipped] + 2) % 4
  p, _ = cross_fit.out_of_sample_probabilities(x, noisy, np.ones(len(y), bool), 4,
                                               cross_fit.HeadSettings(steps=100))
  ranked = labels.find_label_issues(noisy, p)
  assert set(ranked[:4].tolist()) == set(flipped.tolist())
  assert labels.ranking_precision_recall(ranked, flipped, 4) == (1.0, 1.0)
  baseline = labels.lowest_given_probability(noisy, p)
  assert set(baseline[:4].tolist()) == set(flipped.tolist())


def test_cleanlab_copes_with_a_class_nobody_carries():
  x, y = _clusters(per_class=30)
  p, _ = cross_fit.out_of_sample_probabilities(x, y, np.ones(len(y), bool), 5,
                                               cross_fit.HeadSettings(steps=50))
  assert labels.find_label_issues(y, p).dtype == np.int64


def test_the_fill_rule_meets_its_precision_on_known_rows():
  confidence = np.linspace(0.99, 0.55, 100)  # Row order = confidence order.
  probabilities = np.stack([confidence, 1 - confidence], 1)
  truth = np.zeros(100, np.int64)
  truth[[50, 60, 70, 80, 90, 95]] = 1  # The prediction (class 0) is wrong there.
  rule = labels.fill_rule(truth, probabilities, 0.95)
  # Top 90 rows: 4 wrong (0.956); any more and the precision is under 0.95.
  assert rule.coverage == 0.9 and rule.precision == pytest.approx(86 / 90)
  assert rule.threshold == pytest.approx(confidence[89])
  assert labels.fill_rule(truth, probabilities, 0.99).coverage == 0.5
  impossible = labels.fill_rule(np.ones(100, np.int64), probabilities, 0.9)
  assert impossible.threshold is None and impossible.coverage == 0.0


def test_near_duplicates_group_close_rows_and_equal_bytes():
  rng = np.random.default_rng(0)
  vectors = rng.normal(size=(50, 32)).astype(np.float32)
  vectors[10] = vectors[3] + 0.01 * rng.normal(size=32)  # A copy of row 3.
  vectors[20] = vectors[3] + 0.01 * rng.normal(size=32)  # And another.
  digests = np.asarray([f"d{i}" for i in range(50)])
  digests[40] = digests[41] = "same"  # The same bytes: grouped whatever the vectors.
  vectors[41] = rng.normal(size=32)
  readable = np.ones(50, bool)
  readable[20] = False  # Unreadable rows group with nothing.
  found = near_duplicates.groups([vectors], readable, digests, threshold=0.95)
  by_rows = {tuple(g["rows"]): g for g in found}
  assert set(by_rows) == {(3, 10), (40, 41)}
  assert by_rows[(40, 41)]["exact"] and not by_rows[(3, 10)]["exact"]
  assert by_rows[(3, 10)]["min_similarity"] > 0.99
  # A second view that only row 7's and row 30's centres share: they group through it.
  centres = rng.normal(size=(50, 32)).astype(np.float32)
  centres[30] = centres[7]
  found = near_duplicates.groups([vectors, centres], readable, digests, threshold=0.95)
  assert {tuple(g["rows"]) for g in found} == {(3, 10), (7, 30), (40, 41)}
  columns = {"colour": np.asarray(["red"] * 50, object), "type": np.asarray(["a"] * 50, object)}
  columns["type"][10] = "b"
  assert near_duplicates.conflicting_tasks([3, 10], columns) == ["type"]


def test_the_projected_approximate_search_finds_the_exact_pairs_with_true_cosines():
  rng = np.random.default_rng(0)
  # Clustered vectors (as image features are) with 40 close copies among 2,000 rows.
  centres = rng.normal(size=(20, 256))
  vectors = centres[rng.integers(0, 20, 2000)] + 0.7 * rng.normal(size=(2000, 256))
  copies = rng.choice(2000, 80, replace=False)
  vectors[copies[40:]] = vectors[copies[:40]] + 0.05 * rng.normal(size=(40, 256))
  views = [near_duplicates.unit_rows(vectors)]
  exact = near_duplicates.similar_pairs(views, threshold=0.95)
  approximate = near_duplicates.similar_pairs(views, threshold=0.95, exact_max=100,
                                              search_dims=32)
  assert {(a, b) for a, b, _ in exact} == {(a, b) for a, b, _ in approximate}
  assert {tuple(sorted(p)) for p in copies.reshape(2, 40).T} <= {(a, b) for a, b, _ in exact}
  # Scored on the full vectors, not in the projection.
  for a, b, score in approximate:
    assert score == pytest.approx(float(views[0][a] @ views[0][b]), abs=1e-5)
