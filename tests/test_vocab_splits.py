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


def test_split_file_round_trip_and_errors_name_file_and_line(tmp_path):
  from fashion_jax.errors import DataError
  ids = np.asarray(["10", "11", "12", "13"], dtype=object)
  path = str(tmp_path / "split.csv")
  splits.write_split_file(path, {"train": ids[[0, 2]], "val": ids[[3]], "test": ids[[1]]})
  rows = splits.read_split_file(path, ids, "where")
  assert {k: v.tolist() for k, v in rows.items()} == {"train": [0, 2], "val": [3],
                                                      "test": [1]}
  # Ids the data lacks (rows skipped when read) are fine; data rows without a split are not.
  assert splits.read_split_file(path, ids[:3], "where")["train"].tolist() == [0, 2]
  with pytest.raises(DataError, match=r"1 of the 5 rows of the data have no split.*'99'"):
    splits.read_split_file(path, np.append(ids, "99"), "where")
  (tmp_path / "bad.csv").write_text("id,split\n10,train\n11,holdout\n")
  with pytest.raises(DataError, match=r"bad.csv:3: expected '<id>,<split>'"):
    splits.read_split_file(str(tmp_path / "bad.csv"), ids, "where")
  (tmp_path / "twice.csv").write_text("id,split\n10,train\n10,test\n")
  with pytest.raises(DataError, match=r"twice.csv:3: id '10' is listed twice"):
    splits.read_split_file(str(tmp_path / "twice.csv"), ids, "where")
  (tmp_path / "header.csv").write_text("10,train\n")
  with pytest.raises(DataError, match="header 'id,split'"):
    splits.read_split_file(str(tmp_path / "header.csv"), ids, "where")


def test_seeds_share_a_split_and_a_run_writes_it_for_reuse(tmp_path):
  from conftest import tiny_config
  from fashion_jax import tasks as tasks_lib
  from fashion_jax.data import labelled

  def test_ids(config, workdir=None):
    tasks = tasks_lib.parse_tasks(config.tasks)
    data = labelled.prepare_data(config, tasks, workdir)
    return {s: list(d.table.ids) for s, d in data.splits.items()}

  config = tiny_config()
  first = test_ids(config, str(tmp_path / "run"))
  config.seed = 7  # Initialisation, shuffling and augmentation only.
  assert test_ids(config) == first
  config.datasets.products.split_seed = 1
  assert test_ids(config)["test"] != first["test"]
  # The written split file gives back the first split, whatever the split seed.
  config.datasets.products.split_file = str(tmp_path / "run" / "split_products.csv")
  assert test_ids(config) == first
