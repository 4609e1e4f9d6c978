"""The TFDS dataset definition and the `tfds` source, built from the embedded sample."""

import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_config
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled, pipeline, product_images, sources, tfds_builder
from fashion_jax.errors import DataError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("tfds"))
  # The command users run, in its own process (as a user would; no TensorFlow installed).
  done = subprocess.run([sys.executable, "-m", "fashion_jax", "build_tfds",
                         f"--manual_dir={product_images.SAMPLE_DIR}", f"--data_dir={out}"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip().endswith("fashion_product_images/1.0.0")
  return out


def _tfds_config(data_dir):
  config = tiny_config()
  config.datasets.products.source = "tfds"
  config.datasets.products.root = data_dir
  return config


@pytest.mark.slow
def test_tfds_dataset_reads_back_as_the_kaggle_folder(data_dir):
  folder, _ = sources.load_source(tiny_config().datasets.products, ["articleType", "usage"])
  table, _ = sources.load_source(_tfds_config(data_dir).datasets.products,
                                 ["articleType", "usage"])
  assert len(table) == len(folder) == 480
  assert list(table.ids) == list(folder.ids)
  for column in ("articleType", "usage"):
    assert list(table.columns[column]) == list(folder.columns[column])
  for i in (0, 233, 479):
    assert table.image(i) == folder.image(i)  # The JPEG bytes, not re-encoded.
  # grain worker processes receive the source pickled.
  images = pickle.loads(pickle.dumps(table.images))
  assert images[7] == folder.image(7)


@pytest.mark.slow
def test_training_data_from_tfds_matches_the_folder(data_dir):
  config = tiny_config()
  tasks = tasks_lib.parse_tasks(config.tasks)
  from_folder = labelled.prepare_data(config, tasks, None)
  from_tfds = labelled.prepare_data(_tfds_config(data_dir), tasks, None)
  for split in ("train", "val", "test"):
    assert list(from_tfds.splits[split].table.ids) == list(from_folder.splits[split].table.ids)
  a = next(pipeline.train_iterator(from_folder.splits["train"], config.data, 8, 0))
  b = next(pipeline.train_iterator(from_tfds.splits["train"], config.data, 8, 0))
  jax.tree.map(np.testing.assert_array_equal, a, b)  # Images, labels, masks.


def test_tfds_errors_name_what_is_wrong(data_dir, tmp_path):
  config = _tfds_config(data_dir)
  with pytest.raises(DataError, match=r"has no feature\(s\) \['productDisplayName'\]"):
    sources.load_source(config.datasets.products, ["productDisplayName"])
  config.datasets.products.root = str(tmp_path)
  with pytest.raises(DataError, match="cannot open TFDS dataset 'fashion_product_images/train'"
                                      ".*python -m fashion_jax build_tfds"):
    sources.load_source(config.datasets.products, ["gender"])
  with pytest.raises(DataError, match="styles.csv not found"):
    tfds_builder.build(str(tmp_path), str(tmp_path / "out"))
