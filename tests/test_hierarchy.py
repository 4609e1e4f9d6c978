"""Hierarchies of label tasks (hierarchy.py): learned parents, consistency, decoding."""

import numpy as np
import pytest

from fashion_jax.errors import ConfigError
from fashion_jax.evaluation import metrics


def test_hierarchy_parents_and_consistency_by_hand():
  from fashion_jax import hierarchy
  parent = np.array([0, 0, 1, 1, 1, -1])
  child = np.array([0, 1, 2, 2, 1, 3])  # Child 1 is seen under parent 0 once, 1 once.
  parents = hierarchy.learn_parents(parent, child, 2, 4)
  np.testing.assert_array_equal(parents, [0, 0, 1, -1])  # Ties: the lower parent id.
  # Predictions: (0, 0) ok, (1, 0) contradicts, (1, 2) ok, (0, 3) unknown child: skipped.
  assert hierarchy.consistency(np.array([0, 1, 1, 0]), np.array([0, 0, 2, 3]), parents) == 2 / 3


def test_hierarchy_consistent_predictions_by_hand():
  from fashion_jax import hierarchy
  parents = np.array([0, 0, 1, 1])  # Children 0, 1 under parent 0; 2, 3 under parent 1.
  parent_p = np.array([[0.6, 0.4]])
  child_p = np.array([[0.1, 0.1, 0.7, 0.1]])
  # Predicted parent 0: masked to children 0, 1 (renormalised) -> child 0 (first max).
  masked, chosen = hierarchy.consistent(parent_p, child_p, parents, "predicted")
  assert chosen.tolist() == [0]
  np.testing.assert_allclose(masked, [[0.5, 0.5, 0, 0]])
  # Joint: P(1) x P(child 2) = 0.28 beats P(0) x P(child 0) = 0.06 -> parent 1, child 2.
  masked, chosen = hierarchy.consistent(parent_p, child_p, parents, "joint")
  assert chosen.tolist() == [1] and masked.argmax() == 2
  np.testing.assert_allclose(masked, [[0, 0, 0.875, 0.125]])
  # After either, every prediction is consistent.
  assert hierarchy.consistency(chosen, masked.argmax(-1), parents) == 1.0


def test_hierarchy_decoding_is_a_product_of_experts_leaf_first():
  import jax
  from fashion_jax import hierarchy
  rng = np.random.default_rng(0)
  # master (3 classes; class 2 has no sub-class) > sub (4; sub 3 never seen with a master)
  # > article (5; article 4 never seen with a sub).
  learned = {"sub": {"parent": "master", "parents": np.array([0, 0, 1, -1])},
             "article": {"parent": "sub", "parents": np.array([0, 1, 1, 2, -1])}}
  links = hierarchy.decoding_links(learned, "bottom_up")
  assert [(c, p) for c, p, _ in links] == [("article", "sub"), ("sub", "master")]
  assert hierarchy.decoding_links(learned, "none") == ()
  logits = {"master": rng.normal(size=(6, 3)), "sub": rng.normal(size=(6, 4)),
            "article": rng.normal(size=(6, 5)), "colour": rng.normal(size=(6, 2))}
  decoded = {k: np.asarray(jax.nn.softmax(v)) for k, v in hierarchy.decode(
      {k: jax.numpy.asarray(v, jax.numpy.float32) for k, v in logits.items()}, links).items()}
  p = {k: metrics.softmax(v) for k, v in logits.items()}
  # By hand: sub' ~ P(sub) x sum of its articles' P; sub 3 has no article: its own P.
  sub_evidence = np.stack([p["article"][:, 0], p["article"][:, 1] + p["article"][:, 2],
                           p["article"][:, 3], p["sub"][:, 3]], -1)
  sub = p["sub"] * sub_evidence
  sub /= sub.sum(-1, keepdims=True)
  # master' ~ P(master) x sum of its decoded subs (sub 3 has no master); master 2: own P.
  master = p["master"] * np.stack([sub[:, 0] + sub[:, 1], sub[:, 2], p["master"][:, 2]], -1)
  master /= master.sum(-1, keepdims=True)
  np.testing.assert_allclose(decoded["sub"], sub, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(decoded["master"], master, rtol=1e-5, atol=1e-6)
  for untouched in ("article", "colour"):
    np.testing.assert_allclose(decoded[untouched], p[untouched], rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match="hierarchy_decoding='top_down' is not one of"):
    hierarchy.decoding_links(learned, "top_down")

def test_label_scores_by_hand():
  truth = ["a", "a", "b", "c", "rare", "", "new"]
  guess = ["a", "b", "b", "b", "a", "a", "a"]
  known = {"a", "b", "c", "rare"}  # 'new' never in training; '' has no label.
  scores = metrics.label_scores(truth, guess, known)
  assert scores["n"] == 5 and scores["excluded"] == 2
  assert scores["accuracy"] == pytest.approx(2 / 5)  # 'rare' (a dropped class) is an error.
  # F1 = 2tp / (2tp + fp + fn) per label among truth and predictions of the scored rows:
  # a 2/4 (fp: rare, fn: a->b), b 2/4 (fp: a, c), c 0, rare 0.
  assert scores["macro_f1"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)
