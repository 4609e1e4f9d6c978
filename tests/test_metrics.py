"""Metric arithmetic against hand-worked examples and brute-force numpy loops."""

import jax.numpy as jnp
import numpy as np
import pytest

from fashion_jax.evaluation import metrics


def test_confusion_accuracy_and_macro_f1():
  labels = jnp.array([0, 0, 1, 1, 2, -1])
  preds = jnp.array([0, 1, 1, 1, 0, 2])
  mask = jnp.array([1, 1, 1, 1, 1, 0.0])
  cm = metrics.confusion_matrix(labels, preds, mask, 3)
  np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
  out = metrics.classification_metrics(cm)
  # Class F1s: 0 -> 2*1/(2+1+1)=0.5, 1 -> 2*2/(4+1+0)=0.8, 2 -> 0.
  np.testing.assert_allclose(out["accuracy"], 3 / 5)
  np.testing.assert_allclose(out["macro_f1"], (0.5 + 0.8 + 0.0) / 3, rtol=1e-6)


def test_macro_f1_ignores_classes_never_seen_nor_predicted():
  cm = jnp.array([[2.0, 0, 0], [0, 1, 0], [0, 0, 0]])
  np.testing.assert_allclose(metrics.classification_metrics(cm)["macro_f1"], 1.0)


def test_multilabel_micro_macro_f1():
  targets = jnp.array([[1, 0, 1], [0, 1, 0], [1, 1, 0.0]])
  preds = jnp.array([[1, 0, 0], [0, 1, 1], [0, 0, 0.0]])
  c = metrics.multilabel_counts(targets, preds, jnp.array([1, 1, 0.0]))
  np.testing.assert_array_equal(c["tp"], [1, 1, 0])
  np.testing.assert_array_equal(c["fp"], [0, 0, 1])
  np.testing.assert_array_equal(c["fn"], [0, 0, 1])
  out = metrics.multilabel_metrics(c["tp"], c["fp"], c["fn"])
  np.testing.assert_allclose(out["micro_f1"], 2 * 2 / (4 + 1 + 1))
  np.testing.assert_allclose(out["macro_f1"], (1 + 1 + 0) / 3, rtol=1e-6)


def _loo(emb, labels, k):
  emb, labels = np.asarray(emb), np.asarray(labels)
  return metrics.retrieval_recall(emb, labels, emb, labels, [k], leave_one_out=True)[k]


def test_recall_at_k_leave_one_out_by_hand():
  emb = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7]])
  labels = [0, 0, 1, 2, 3]
  # 0 <-> 1 find each other; 2 and 3 have no same-label partner; 4 is unique.
  np.testing.assert_allclose(_loo(emb, labels, 1), 1.0)
  labels = [0, 1, 1, 0, 2]
  # 0's nearest is 1 (miss); 1's nearest is 0 (miss); 2's nearest is 3 (miss); 3 -> 2 (miss).
  np.testing.assert_allclose(_loo(emb, labels, 1), 0.0)
  # Top-3: 0 -> {1, 4, 3} hit; 1 -> {0, 4, 3} miss; 2 -> {3, 4, 1} hit; 3 -> {2, 4, 1} miss.
  np.testing.assert_allclose(_loo(emb, labels, 3), 0.5)
  np.testing.assert_allclose(_loo(emb, labels, 4), 1.0)


# Brute-force references: loops over samples, written from the definitions.

def _brute_retrieval(query, query_labels, gallery, gallery_labels, k, leave_one_out):
  hits = answerable = 0
  for i in range(len(query)):
    candidates = [j for j in range(len(gallery)) if not (leave_one_out and i == j)]
    if not any(gallery_labels[j] == query_labels[i] for j in candidates):
      continue
    answerable += 1
    cos = [float(query[i] @ gallery[j] / np.linalg.norm(query[i]) / np.linalg.norm(gallery[j]))
           for j in candidates]
    top = [candidates[j] for j in np.argsort(cos)[::-1][:k]]
    hits += any(gallery_labels[j] == query_labels[i] for j in top)
  return hits / answerable


@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_recall_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  query, gallery = rng.normal(size=(37, 8)), rng.normal(size=(53, 8))
  query_labels, gallery_labels = rng.integers(0, 15, 37), rng.integers(0, 12, 53)
  ks = (1, 5, 10, 20, 30, 40, 50)
  # A chunk size that does not divide the queries exercises the padded last chunk.
  got = metrics.retrieval_recall(query, query_labels, gallery, gallery_labels, ks, chunk_size=16)
  for k in ks:
    np.testing.assert_allclose(got[k], _brute_retrieval(query, query_labels, gallery,
                                                        gallery_labels, k, False), rtol=1e-6)
  got = metrics.retrieval_recall(gallery, gallery_labels, gallery, gallery_labels, ks,
                                 leave_one_out=True, chunk_size=10)
  for k in ks:
    np.testing.assert_allclose(got[k], _brute_retrieval(gallery, gallery_labels, gallery,
                                                         gallery_labels, k, True), rtol=1e-6)


def test_top_k_hits_matches_brute_force():
  rng = np.random.default_rng(0)
  logits, labels = rng.normal(size=(40, 9)), rng.integers(0, 9, 40)
  mask = (rng.random(40) > 0.2).astype(np.float32)
  for k in (1, 3, 5, 12):
    expected = sum(m * (labels[i] in np.argsort(-logits[i])[:k]) for i, m in enumerate(mask))
    np.testing.assert_allclose(metrics.top_k_hits(jnp.asarray(logits), jnp.asarray(labels),
                                                  jnp.asarray(mask), k), expected)


def test_attribute_top_k_recall_matches_brute_force():
  rng = np.random.default_rng(1)
  scores = rng.random((30, 20))
  targets = (rng.random((30, 20)) < 0.15).astype(np.float32)
  targets[3] = 0  # An image without positives is left out.
  mask = np.ones(30, np.float32)
  mask[5] = 0
  for k in (3, 5):
    recalls = [targets[i][np.argsort(-scores[i])[:k]].sum() / targets[i].sum()
               for i in range(30) if targets[i].sum() > 0 and mask[i] > 0]
    total, count = metrics.attribute_top_k_recall(jnp.asarray(scores), jnp.asarray(targets),
                                                  jnp.asarray(mask), k)
    assert count == len(recalls)
    np.testing.assert_allclose(total / count, np.mean(recalls), rtol=1e-5)


def test_hamming_loss_and_f1_match_brute_force():
  rng = np.random.default_rng(2)
  targets = (rng.random((25, 7)) < 0.3).astype(np.float32)
  predicted = (rng.random((25, 7)) < 0.3).astype(np.float32)
  counts = metrics.multilabel_counts(jnp.asarray(targets), jnp.asarray(predicted), jnp.ones(25))
  wrong = sum(targets[i, c] != predicted[i, c] for i in range(25) for c in range(7))
  np.testing.assert_allclose(metrics.hamming_loss(counts["fp"], counts["fn"], 25, 7),
                             wrong / (25 * 7), rtol=1e-6)
  tp = sum(targets[i, c] * predicted[i, c] for i in range(25) for c in range(7))
  np.testing.assert_allclose(metrics.multilabel_metrics(**counts)["micro_f1"],
                             2 * tp / (targets.sum() + predicted.sum()), rtol=1e-6)


def test_mean_average_precision_matches_brute_force():
  rng = np.random.default_rng(3)
  scores = rng.random((50, 6))
  targets = (rng.random((50, 6)) < 0.3).astype(np.float32)
  targets[:, 4] = 0  # A class without positives is left out of the mean.
  aps = []
  for c in range(6):
    order = sorted(range(50), key=lambda i: -scores[i, c])
    positives = [rank for rank, i in enumerate(order, 1) if targets[i, c]]
    if positives:
      aps.append(np.mean([(n + 1) / rank for n, rank in enumerate(positives)]))
  np.testing.assert_allclose(metrics.mean_average_precision(scores, targets), np.mean(aps),
                             rtol=1e-12)


def test_group_accuracy_matches_brute_force():
  rng = np.random.default_rng(4)
  scores = rng.random((40, 10))
  targets = np.zeros((40, 10), np.float32)
  for i in range(40):
    targets[i, rng.integers(0, 4)] = 1
    if i % 7:  # Some samples have no positive in the second group: not counted there.
      targets[i, 4 + rng.integers(0, 6)] = 1
  for group in ((0, 1, 2, 3), (4, 5, 6, 7, 8, 9)):
    g = list(group)
    counted = [i for i in range(40) if targets[i, g].sum() == 1]
    correct = sum(np.argmax(scores[i, g]) == np.argmax(targets[i, g]) for i in counted)
    got = metrics.group_accuracy_counts(jnp.asarray(scores), jnp.asarray(targets),
                                        jnp.ones(40), group)
    np.testing.assert_allclose(got, (correct, len(counted)))


def test_per_class_and_averaged_report_by_hand():
  # [true, predicted]: class 0: 3 of 4 right; class 1: 1 of 2; class 2: never predicted.
  cm = np.array([[3, 1, 0], [1, 1, 0], [1, 0, 0]])
  report = metrics.per_class_report(cm)
  np.testing.assert_allclose(report["precision"], [3 / 5, 1 / 2, 0])
  np.testing.assert_allclose(report["recall"], [3 / 4, 1 / 2, 0])
  f1_0 = 2 * 0.6 * 0.75 / 1.35
  np.testing.assert_allclose(report["f1"], [f1_0, 0.5, 0])
  np.testing.assert_allclose(report["support"], [4, 2, 1])
  averaged = metrics.averaged_report(cm)
  np.testing.assert_allclose(averaged["macro_f1"], (f1_0 + 0.5) / 3)
  np.testing.assert_allclose(averaged["weighted_recall"], (3 + 1 + 0) / 7)  # = accuracy
  np.testing.assert_allclose(averaged["weighted_precision"], (4 * 0.6 + 2 * 0.5) / 7)


def test_top_k_accuracy_by_hand():
  scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]])
  labels = np.array([2, 0, 1])
  # Ranks of the labels: 2nd, 1st, 2nd (tied with class 0, counted in its favour).
  assert metrics.top_k_accuracy(scores, labels, 1) == 1 / 3
  assert metrics.top_k_accuracy(scores, labels, 2) == 1.0


def test_roc_auc_by_hand():
  # The textbook example: AUC 0.75.
  np.testing.assert_allclose(metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75)
  fpr, tpr = metrics.roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
  np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
  # Ties between a positive and a negative count one half.
  np.testing.assert_allclose(metrics.roc_auc([0.5, 0.5], [0, 1]), 0.5)
  assert np.isnan(metrics.roc_auc([0.2, 0.3], [1, 1]))
  rng = np.random.default_rng(0)
  scores, labels = rng.random(200), rng.random(200) < 0.3
  # AUC = probability that a random positive outscores a random negative.
  pairs = (scores[labels][:, None] > scores[~labels][None, :]).mean()
  np.testing.assert_allclose(metrics.roc_auc(scores, labels), pairs, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_label_scores_match_the_confusion_matrix_when_every_class_is_kept(seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 6, 200)
  predicted = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 6, 200))
  names = np.asarray(list("abcdef"), dtype=object)
  scores = metrics.label_scores(names[labels], names[predicted], set(names))
  confusion = metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(predicted),
                                       jnp.ones(200), 6)
  reference = metrics.classification_metrics(confusion)
  assert scores["accuracy"] == pytest.approx(float(reference["accuracy"]))
  assert scores["macro_f1"] == pytest.approx(float(reference["macro_f1"]), rel=1e-6)
