"""Metric arithmetic against hand-worked examples."""

import jax.numpy as jnp
import numpy as np

from fashion_jax import metrics


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


def test_recall_at_1_leave_one_out():
  emb = jnp.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7]])
  emb = emb / jnp.linalg.norm(emb, axis=1, keepdims=True)
  labels = jnp.array([0, 0, 1, 2, 3])
  # 0 <-> 1 find each other; 2 and 3 have no same-label partner; 4 is unique.
  np.testing.assert_allclose(metrics.recall_at_k(emb, labels, jnp.ones(5), 1), 1.0)
  labels = jnp.array([0, 1, 1, 0, 2])
  # 0's nearest is 1 (miss); 1's nearest is 0 (miss); 2's nearest is 3 (miss); 3 -> 2 (miss).
  np.testing.assert_allclose(metrics.recall_at_k(emb, labels, jnp.ones(5), 1), 0.0)
  # Top-3: 0 -> {1, 4, 3} hit; 1 -> {0, 4, 3} miss; 2 -> {3, 4, 1} hit; 3 -> {2, 4, 1} miss.
  np.testing.assert_allclose(metrics.recall_at_k(emb, labels, jnp.ones(5), 3), 0.5)
  np.testing.assert_allclose(metrics.recall_at_k(emb, labels, jnp.ones(5), 4), 1.0)
  # Masked samples are neither queries nor candidates: with 1 masked, 0 -> 4 hit,
  # 2 -> 3 hit, 3 -> 2 hit, 4 -> 3 miss (with 1 present, 0 -> 1 would be a hit too).
  masked = metrics.recall_at_k(emb, jnp.array([0, 0, 1, 1, 0]), jnp.array([1, 0, 1, 1, 1.0]), 1)
  np.testing.assert_allclose(masked, 3 / 4)
