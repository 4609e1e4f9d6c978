"""The grain pipeline: batches match the CSV, are deterministic by seed, and resume exactly."""

import collections
import os

import numpy as np
import pytest

from conftest import tiny_config
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import pipeline, transforms
from fashion_jax.data.sources import SAMPLE_DIR
from fashion_jax.tasks import task_config


def _prepare(root="", workdir=None, sampler="auto", **task_overrides):
  config = tiny_config(root=root)
  config.datasets.products.sampler = sampler
  if task_overrides:
    config.tasks = task_overrides
  tasks = tasks_lib.parse_tasks(config.tasks)
  return config, tasks, pipeline.prepare_data(config, tasks, workdir)


def test_one_epoch_of_batches_matches_the_csv():
  config, tasks, data = _prepare(sampler="random")
  train = data.splits["train"]
  batch_size = 16
  it = pipeline.train_iterator(train, config.data, batch_size, seed=0)
  batches = [next(it) for _ in range(len(train) // batch_size)]
  b = batches[0]
  assert b["image"].shape == (16, 32, 32, 3) and b["image"].dtype == np.uint8
  assert b["labels"]["gender"].dtype == np.int32 and b["masks"]["gender"].dtype == np.float32
  # Over one epoch (the sample's 384 training rows split evenly into batches), the
  # labels seen are exactly the CSV labels of the training rows.
  assert len(train) % batch_size == 0
  seen = collections.Counter(
      data.vocabs["articleType"].classes[i] for x in batches for i in x["labels"]["articleType"])
  assert seen == collections.Counter(train.table.columns["articleType"])
  genders = collections.Counter(
      data.vocabs["gender"].classes[i] for x in batches for i in x["labels"]["gender"])
  assert genders == collections.Counter(train.table.columns["gender"])


def test_eval_batches_cover_the_split_once_in_order_with_padding():
  config, tasks, data = _prepare()
  val = data.splits["val"]
  batches = list(pipeline.eval_batches(val, config.data, 20))
  assert len(batches) == -(-len(val) // 20)
  masks = np.concatenate([b["masks"]["gender"] for b in batches])
  labels = np.concatenate([b["labels"]["gender"] for b in batches])
  assert masks[len(val):].sum() == 0  # Padding never counts.
  np.testing.assert_array_equal(labels[:len(val)], val.labels["gender"])
  names = [data.vocabs["gender"].classes[i] for i in labels[:len(val)]]
  assert names == list(val.table.columns["gender"])
  first = os.path.join(SAMPLE_DIR, "images", f"{val.table.ids[0]}.jpg")
  with open(first, "rb") as f:
    np.testing.assert_array_equal(batches[0]["image"][0], transforms.decode_image(f.read(), 32))


def test_shuffle_and_augmentation_are_fixed_by_the_seed():
  config, tasks, data = _prepare()
  train = data.splits["train"]
  def first_batches(seed):
    it = pipeline.train_iterator(train, config.data, 8, seed=seed)
    return [next(it) for _ in range(3)]
  a, b, c = first_batches(1), first_batches(1), first_batches(2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["labels"]["articleType"], y["labels"]["articleType"])
  assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_iterator_state_resumes_at_the_same_batch():
  config, tasks, data = _prepare()
  it = pipeline.train_iterator(data.splits["train"], config.data, 8, seed=0)
  for _ in range(5):
    next(it)
  state = it.get_state()
  expected = next(it)
  resumed = pipeline.train_iterator(data.splits["train"], config.data, 8, seed=0)
  resumed.set_state(state)
  got = next(resumed)
  np.testing.assert_array_equal(got["image"], expected["image"])
  np.testing.assert_array_equal(got["labels"]["gender"], expected["labels"]["gender"])


def test_processes_read_disjoint_shards():
  config, tasks, data = _prepare()
  val = data.splits["val"]
  shards = [np.concatenate([b["labels"]["articleType"][b["masks"]["articleType"] > 0]
                            for b in pipeline.eval_batches(val, config.data, 4, p, 2)])
            for p in range(2)]
  assert len(shards[0]) + len(shards[1]) == len(val)
  np.testing.assert_array_equal(shards[0], val.labels["articleType"][0::2])
  np.testing.assert_array_equal(shards[1], val.labels["articleType"][1::2])


def test_masks_follow_missing_labels_and_broken_images(product_tree, tmp_path):
  (product_tree / "images" / os.listdir(product_tree / "images")[0]).write_bytes(b"not a jpeg")
  config, tasks, data = _prepare(
      root=str(product_tree), workdir=str(tmp_path / "work"),
      colour=task_config("softmax", "baseColour"),
      tags=task_config("sigmoid", "tags"))
  assert os.path.exists(tmp_path / "work" / "vocab.json")
  assert os.path.exists(tmp_path / "work" / "data_report.json")
  everything = data.splits
  empty_colour = [(n, i) for n, s in everything.items()
                  for i, v in enumerate(s.table.columns["baseColour"]) if v == ""]
  assert len(empty_colour) == 1
  name, row = empty_colour[0]
  assert everything[name].masks["colour"][row] == 0
  assert everything[name].masks["tags"][row] == 1  # Other tasks still train.
  tags = data.vocabs["tags"]
  train = data.splits["train"]
  multi_hot = train.labels["tags"][0]
  assert {tags.classes[i] for i in np.flatnonzero(multi_hot)} == \
      set(train.table.columns["tags"][0].split("|"))
  # The broken image decodes to a fully masked sample instead of crashing the epoch.
  batches = [b for s in ("train", "val", "test")
             for b in pipeline.eval_batches(data.splits[s], config.data, 8)]
  total = sum(b["masks"]["tags"].sum() for b in batches)
  assert total == sum(s.masks["tags"].sum() for s in data.splits.values()) - 1


def test_resumed_workdir_reuses_vocab_and_rejects_other_tasks(tmp_path):
  from fashion_jax.errors import CheckpointMismatchError
  _prepare(workdir=str(tmp_path))
  with pytest.raises(CheckpointMismatchError, match="vocab.json was written for tasks"):
    _prepare(workdir=str(tmp_path), usage=task_config("softmax", "usage"))
