"""ArrayRecord packs: the same rows, bytes and splits as the source they were packed from."""

import os

import numpy as np
import pytest

from conftest import tiny_config
from fashion_jax.tools import prepare
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled, packed, pipeline, sources
from fashion_jax.errors import DataError


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("pack"))
  summary = prepare.prepare(tiny_config(), "", out, rows_per_shard=150, progress=False)
  assert summary["rows"] == 480 and len(summary["shards"]) == 4 and not summary["unreadable"]
  return out


def test_pack_reads_back_as_the_original_table(pack_dir):
  config = tiny_config()
  original, _ = sources.load_source(config.datasets.products, ["articleType", "gender"])
  config.datasets.products.source = "array_record"
  config.datasets.products.root = pack_dir
  table, _ = sources.load_source(config.datasets.products, ["articleType", "gender"])
  assert list(table.ids) == list(original.ids)
  for column in ("articleType", "gender"):
    assert list(table.columns[column]) == list(original.columns[column])
  for i in (0, 149, 150, 479):  # Across shard boundaries.
    assert table.image(i) == original.image(i)
  with pytest.raises(DataError, match=r"packed without column\(s\) \['usage'\]"):
    sources.load_source(config.datasets.products, ["usage"])


def test_training_data_from_a_pack_matches_the_folder(pack_dir):
  config = tiny_config()
  tasks = tasks_lib.parse_tasks(config.tasks)
  from_folder = labelled.prepare_data(config, tasks, None)
  config.datasets.products.source = "array_record"
  config.datasets.products.root = pack_dir
  from_pack = labelled.prepare_data(config, tasks, None)
  for split in ("train", "val", "test"):
    assert list(from_pack.splits[split].table.ids) == list(from_folder.splits[split].table.ids)
  a = next(pipeline.train_iterator(from_folder.splits["train"], config.data, 8, 0))
  b = next(pipeline.train_iterator(from_pack.splits["train"], config.data, 8, 0))
  np.testing.assert_array_equal(a["image"], b["image"])


def test_incomplete_pack_is_named(pack_dir, tmp_path):
  import shutil
  broken = tmp_path / "broken"
  shutil.copytree(pack_dir, broken)
  os.remove(broken / packed.ROWS_FILE)
  config = tiny_config()
  config.datasets.products.source = "array_record"
  config.datasets.products.root = str(tmp_path / "nothing")
  with pytest.raises(DataError, match="is not a pack"):
    sources.load_source(config.datasets.products, ["gender"])
