"""The workdir module: the files of a run, by name, and the reads that name the problem."""

import ml_collections
import pytest

from fashion_jax import workdir as workdir_lib
from fashion_jax.errors import ConfigError


def test_config_and_final_metrics_round_trip(tmp_path):
  config = ml_collections.ConfigDict({"seed": 3, "model": {"name": "resnet18"}})
  workdir_lib.write_config(str(tmp_path), config)
  assert workdir_lib.read_config(str(tmp_path)).model.name == "resnet18"
  assert workdir_lib.read_final_metrics(str(tmp_path)) is None
  workdir_lib.write_final_metrics(str(tmp_path), 7, {"val/a/accuracy": 0.5})
  assert workdir_lib.read_final_metrics(str(tmp_path)) == {"step": 7, "val/a/accuracy": 0.5}
  assert workdir_lib.read_class_weights(str(tmp_path)) == {}
  workdir_lib.write_class_weights(str(tmp_path), {"a": [1.0, 2.0]})
  assert workdir_lib.read_class_weights(str(tmp_path)) == {"a": [1.0, 2.0]}


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
  with pytest.raises(ConfigError, match="does not exist"):
    workdir_lib.read_config(str(tmp_path / "nope"))
  with pytest.raises(ConfigError, match="has no config.json: not a fashion_jax training"):
    workdir_lib.read_config(str(tmp_path))


def test_every_file_has_its_place(tmp_path):
  root = str(tmp_path)
  assert workdir_lib.split_path(root, "products").endswith("split_products.csv")
  assert workdir_lib.bad_samples_path(root, 0).endswith("bad_samples.json")
  assert workdir_lib.bad_samples_path(root, 2).endswith("bad_samples.process2.json")
  assert workdir_lib.eval_metrics_path(root, "test").endswith("eval/test/metrics.json")
