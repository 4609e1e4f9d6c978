"""Vocabularies (train split only, rare classes) and deterministic stratified splits."""

import numpy as np
import pytest

from fashion_jax.data import splits, vocab
from fashion_jax.errors import ConfigError


def test_vocab_orders_by_frequency_and_drops_rare_classes():
  values = ["a", "b", "a", "c", "a", "b", ""]
  v = vocab.build_vocab("col", values, min_count=2, rare_policy="drop")
  assert v.classes == ["a", "b"]
  # Rare, unknown and empty values are masked (MISSING), not mapped to a real class.
  np.testing.assert_array_equal(v.encode(["b", "c", "zzz", "", "a"]), [1, -1, -1, -1, 0])


def test_vocab_folds_rare_classes_into_other():
  v = vocab.build_vocab("col", ["a", "a", "b", "c"], min_count=2, rare_policy="other")
  assert v.classes == ["a", vocab.OTHER]
  np.testing.assert_array_equal(v.encode(["c", "b", "a", "", "new"]), [1, 1, 0, -1, 1])


def test_multi_label_vocab_and_multi_hot():
  v = vocab.build_vocab("tags", ["x|y", "y", "", "y|z"], min_count=1, rare_policy="drop",
                        multi_label_separator="|")
  assert v.classes == ["y", "x", "z"]
  targets, mask = v.encode_multi_hot(["x|y", "", "z"])
  np.testing.assert_array_equal(targets, [[1, 1, 0], [0, 0, 0], [0, 0, 1]])
  np.testing.assert_array_equal(mask, [1, 0, 1])


def test_vocab_errors_name_the_problem():
  with pytest.raises(ConfigError, match="rare_policy"):
    vocab.build_vocab("c", ["a"], 1, "keep")
  with pytest.raises(ConfigError, match="column 'c'.*min_count=5"):
    vocab.build_vocab("c", ["a", "b"], 5, "drop")


def test_vocab_save_load_round_trip(tmp_path):
  vocabs = {"t": vocab.build_vocab("c", ["a", "b", "b"], 1, "drop"),
            "m": vocab.build_vocab("tags", ["x|y"], 1, "drop", "|")}
  vocab.save_vocabs(str(tmp_path / "vocab.json"), vocabs)
  assert vocab.load_vocabs(str(tmp_path / "vocab.json")) == vocabs


def test_stratified_split_is_deterministic_disjoint_and_proportional():
  strata = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20 + ["rare"] * 2)
  first = splits.stratified_split(strata, 0.2, 0.1, seed=3)
  again = splits.stratified_split(strata, 0.2, 0.1, seed=3)
  other = splits.stratified_split(strata, 0.2, 0.1, seed=4)
  for name in splits.SPLITS:
    np.testing.assert_array_equal(first[name], again[name])
  assert not np.array_equal(first["val"], other["val"])
  everything = np.concatenate([first[s] for s in splits.SPLITS])
  assert sorted(everything) == list(range(len(strata)))
  for value, n in [("a", 50), ("b", 30), ("c", 20)]:
    assert (strata[first["val"]] == value).sum() == round(n * 0.2)
    assert (strata[first["test"]] == value).sum() == round(n * 0.1)
  assert set(np.flatnonzero(strata == "rare")) <= set(first["train"])


def test_split_fractions_are_validated():
  with pytest.raises(ConfigError, match="val_fraction"):
    splits.stratified_split(np.array(["a"]), 0.6, 0.5, 0)
