"""The grain pipeline: batches match the CSV, are deterministic by seed, and resume exactly."""

import collections
import os

import numpy as np
import pytest

from conftest import tiny_config
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled, pipeline, transforms
from fashion_jax.data.product_images import SAMPLE_DIR
from fashion_jax.tasks import task_config


def _prepare(root="", workdir=None, sampler="auto", rare_policy="drop", **task_overrides):
  config = tiny_config(root=root)
  config.datasets.products.sampler = sampler
  config.datasets.products.rare_policy = rare_policy
  if task_overrides:
    config.tasks = task_overrides
  tasks = tasks_lib.parse_tasks(config.tasks)
  return config, tasks, labelled.prepare_data(config, tasks, workdir)


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


def _identities(batch, task="embedding"):
  return batch["labels"][task]


def test_pk_batches_hold_p_identities_of_k_images_fixed_by_seed():
  config, tasks, data = _prepare()  # The embedding task makes 'auto' pick P x K.
  train = data.splits["train"]
  assert train.identity_task == "embedding" and train.images_per_identity == 4
  def batches(seed, process_index=0, process_count=1):
    it = pipeline.train_iterator(train, config.data, 16, seed, process_index, process_count)
    return [next(it) for _ in range(6)]
  first = batches(0)
  counts = collections.Counter()
  for b in first:
    runs = _identities(b).reshape(4, 4)  # P=4 identities x K=4 images.
    assert (runs == runs[:, :1]).all()
    counts.update(runs[:, 0].tolist())
  # An epoch visits each identity once: the sample's 12 article types make 3 batches
  # of 4, so 6 batches are two epochs with every identity exactly twice.
  assert len(set(train.labels["embedding"])) == 12
  assert counts == {i: 2 for i in range(12)}
  for x, y in zip(first, batches(0)):
    np.testing.assert_array_equal(x["image"], y["image"])
  assert any(not np.array_equal(x["labels"]["embedding"], y["labels"]["embedding"])
             for x, y in zip(first, batches(1)))
  # Processes draw from disjoint sets of identities.
  shards = [{i for b in batches(0, p, 2) for i in _identities(b).tolist()} for p in range(2)]
  assert shards[0] and shards[1] and not shards[0] & shards[1]


def test_pk_stream_runs_in_grain_worker_processes():
  import pickle
  config, tasks, data = _prepare()
  train = data.splits["train"]
  source = pipeline.IdentityBatches(pipeline.Examples(train), train.labels["embedding"],
                                    train.masks["embedding"] > 0, 4, 0)
  first = source[5]["labels"]["embedding"]
  assert pickle.loads(pickle.dumps(source))[5]["labels"]["embedding"] == first
  config.data.num_workers = 1
  in_process = next(pipeline.train_iterator(train, tiny_config().data, 8, 0))
  with_worker = next(pipeline.train_iterator(train, config.data, 8, 0))
  np.testing.assert_array_equal(in_process["labels"]["embedding"],
                                with_worker["labels"]["embedding"])


def test_pk_needs_a_batch_divisible_by_k():
  from fashion_jax.errors import ConfigError
  config, tasks, data = _prepare()
  with pytest.raises(ConfigError, match=r"not a multiple of config.datasets.products."
                                        r"images_per_identity=4"):
    pipeline.train_iterator(data.splits["train"], config.data, 10, 0)


def test_datasets_mix_by_weight_and_mask_each_others_tasks(product_tree):
  from fashion_jax import tasks as tasks_lib
  from fashion_jax.data.sources import dataset_config
  config = tiny_config()
  config.datasets = {"sample": dataset_config("product_images", weight=3.0),
                     "shop": dataset_config("product_images", root=str(product_tree),
                                            weight=1.0)}
  config.tasks = {"gender": task_config("softmax", "gender", dataset="sample"),
                  "tags": task_config("sigmoid", "tags", dataset="shop")}
  data = labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)
  assert {t.name: t.dataset for t in data.tasks} == {"gender": "sample", "tags": "shop"}
  shop_train = data.datasets["shop"]["train"]
  assert shop_train.masks["gender"].sum() == 0 and shop_train.labels["gender"].max() == -1
  it = pipeline.train_iterator(data.split("train"), config.data, 16, 0)
  for _ in range(4):
    b = next(it)
    from_sample, from_shop = b["masks"]["gender"] > 0, b["masks"]["tags"] > 0
    assert from_sample.sum() == 12 and from_shop.sum() == 4  # 3:1, and nobody has both.
    assert not (from_sample & from_shop).any()
    assert b["labels"]["tags"][from_sample].sum() == 0


def test_task_datasets_are_checked():
  from fashion_jax import tasks as tasks_lib
  from fashion_jax.data.sources import dataset_config
  from fashion_jax.errors import ConfigError
  config = tiny_config()
  config.datasets = {"a": dataset_config("product_images"), "b": dataset_config("product_images")}
  config.tasks = {"gender": task_config("softmax", "gender")}
  with pytest.raises(ConfigError, match="config.tasks.gender.dataset is not set"):
    labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)
  config.tasks.gender.dataset = "a"
  with pytest.raises(ConfigError, match="No task reads config.datasets.b"):
    labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)
  config.tasks.gender.dataset = "c"
  with pytest.raises(ConfigError, match=r"dataset='c' is not one of"):
    labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)


def test_box_crop_keeps_the_box_and_its_margin():
  pixels = np.zeros((100, 200, 3), np.uint8)
  pixels[20:60, 50:150] = 200
  crop = transforms.crop_to_box(pixels, (50, 20, 150, 60), 0.1)
  # 10% of the 100 x 40 box on each side: x 40..160, y 16..64.
  assert crop.shape == (48, 120, 3)
  assert transforms.crop_to_box(pixels, (0, 0, 200, 100), 0.5).shape == pixels.shape
  assert transforms.crop_to_box(pixels, (150, 60, 150, 60), 0.0).shape == pixels.shape
  import io
  from PIL import Image
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  out = transforms.decode_image(buffer.getvalue(), 32, box=(50, 20, 150, 60), box_margin=0.0)
  # The box fills the width; rows outside it are the white letterbox padding.
  assert out.shape == (32, 32, 3) and (out[16] == 200).all() and (out[0] == 255).all()


def test_class_weights_come_from_the_training_split_after_rare_classes_fold(tmp_path):
  import json
  config, tasks, data = _prepare(
      workdir=str(tmp_path), rare_policy="other",
      usage=task_config("softmax", "usage", min_count=20, class_weighting="inverse_frequency"))
  task = data.tasks[0]
  assert task.classes[-1] == "<other>"  # The rare usages, folded, get their own weight.
  train = data.splits["train"]
  counts = np.bincount(train.labels["usage"][train.masks["usage"] > 0],
                       minlength=len(task.classes))
  weights = np.asarray(task.class_weights)
  # Inverse frequency: weight x count is the same for every class present.
  present = counts > 0
  np.testing.assert_allclose(weights[present] * counts[present],
                             (weights[present] * counts[present])[0], rtol=1e-9)
  np.testing.assert_allclose((weights * counts).sum(), counts.sum(), rtol=1e-9)
  saved = json.loads((tmp_path / "class_weights.json").read_text())
  np.testing.assert_allclose(saved["usage"], weights)


def _photo():
  with open(os.path.join(SAMPLE_DIR, "images", os.listdir(os.path.join(SAMPLE_DIR, "images"))[0]),
            "rb") as f:
    return transforms.decode_image(f.read(), 64)


def test_augmentations_change_the_image_as_configured():
  image = _photo()
  rng = lambda: np.random.default_rng(3)  # noqa: E731
  crop = transforms.random_resized_crop(image, rng(), (0.3, 0.5), (0.75, 1.33))
  assert crop.shape == image.shape and not np.array_equal(crop, image)
  np.testing.assert_array_equal(crop, transforms.random_resized_crop(image, rng(), (0.3, 0.5),
                                                                     (0.75, 1.33)))
  # Brightness alone scales all channels alike: each pixel's hue survives.
  bright = transforms.colour_jitter(image, rng(), 0.4, 0, 0, 0).astype(float)
  factor = np.random.default_rng(3).uniform(0.6, 1.4)
  np.testing.assert_allclose(bright, np.clip(np.floor(image * np.float32(factor)), 0, 255),
                             atol=1)
  red = np.zeros((8, 8, 3), np.uint8)
  red[..., 0] = 200
  turned = transforms.colour_jitter(red, rng(), 0, 0, 0, 0.5)
  assert turned[..., 1:].max() > 50  # No longer pure red: hue jitter changes colours.
  np.testing.assert_array_equal(transforms.colour_jitter(red, rng(), 0.3, 0, 0, 0)[..., 1:], 0)
  erased = transforms.random_erasing(image, rng(), 1.0, (0.1, 0.2))
  changed = (erased != image).any(-1).mean()
  assert 0.05 < changed <= 0.2
  assert transforms.random_erasing(image, rng(), 0.0, (0.1, 0.2)) is image


def test_augmented_stream_is_fixed_by_the_seed_and_config_is_checked():
  from fashion_jax.errors import ConfigError
  config, tasks, data = _prepare(sampler="random")
  augment = pipeline.DEFAULT_AUGMENT.copy_and_resolve_references()
  augment.update(dict(crop_scale=(0.4, 1.0), brightness=0.3, contrast=0.3, saturation=0.3,
                      erase_probability=0.5))
  def first(seed):
    it = pipeline.train_iterator(data.splits["train"], config.data, 8, seed, augment_config=augment)
    return next(it)["image"]
  np.testing.assert_array_equal(first(0), first(0))
  assert not np.array_equal(first(0), first(1))
  plain = next(pipeline.train_iterator(data.splits["train"], config.data, 8, 0))["image"]
  assert not np.array_equal(first(0), plain)
  augment.crop_scale = (0.0, 1.0)
  with pytest.raises(ConfigError, match=r"config.augment.crop_scale=\(0.0, 1.0\)"):
    pipeline.train_iterator(data.splits["train"], config.data, 8, 0, augment_config=augment)


def test_decoded_batches_keep_order_and_report_unreadable_images(tmp_path):
  folder = os.path.join(SAMPLE_DIR, "images")
  paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:3]]
  (tmp_path / "empty.jpg").write_bytes(b"")
  (tmp_path / "text.jpg").write_bytes(b"not an image")
  paths[1:1] = [str(tmp_path / "empty.jpg"), str(tmp_path / "missing.jpg")]
  paths.append(str(tmp_path / "text.jpg"))
  batches = list(transforms.decoded_batches(paths, transforms.read_file, 32, batch_size=4))
  assert [len(chunk) for chunk, _, _ in batches] == [4, 2]
  assert [p for chunk, _, _ in batches for p in chunk] == paths
  images = [image for _, batch, _ in batches for image in batch]
  errors = [error for _, _, batch in batches for error in batch]
  readable = [i for i, image in enumerate(images) if image is not None]
  assert readable == [0, 3, 4]
  assert [i for i, error in enumerate(errors) if error is not None] == [1, 2, 5]
  assert isinstance(errors[2], FileNotFoundError) and "empty" in str(errors[1])
  with open(paths[3], "rb") as f:
    np.testing.assert_array_equal(images[3], transforms.decode_image(f.read(), 32))
