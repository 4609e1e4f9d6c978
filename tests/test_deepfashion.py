"""DeepFashion readers on a synthetic tree in the official file formats."""

import os
import sys

import numpy as np
import pytest

from conftest import REPO
from fashion_jax.evaluation import events
from fashion_jax.data import deepfashion
from fashion_jax.errors import DataError

from scripts import make_deepfashion_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return make_deepfashion_tree.make_tree(str(tmp_path_factory.mktemp("deepfashion")),
                                         num_images=48, num_attributes=40, seed=0)


def _raw_rows(path):
  with open(path) as f:
    return [line.split() for line in f.read().splitlines()[2:]]


def test_category_attribute_reader_matches_the_files(tree):
  root = os.path.join(tree, "category_attribute")
  data = deepfashion.load_category_attribute(root)
  assert len(data.categories) == 50 and data.categories[0] == "Anorak"
  assert data.category_types[-1] == 3
  raw_categories = _raw_rows(os.path.join(root, "Anno", "list_category_img.txt"))
  assert data.image_names == [r[0] for r in raw_categories]
  np.testing.assert_array_equal(data.category_labels, [int(r[1]) - 1 for r in raw_categories])
  # Names with spaces keep them; the last field is the type.
  assert "abstract 14" in data.attributes
  raw_attributes = np.array([[int(v) for v in r[1:]] for r in
                             _raw_rows(os.path.join(root, "Anno", "list_attr_img.txt"))])
  assert data.attribute_labels.shape == (48, 40)
  np.testing.assert_array_equal(data.attribute_labels, raw_attributes == 1)  # -1 and 0: negative
  assert (raw_attributes == 0).any()
  assert data.bboxes.shape == (48, 4)
  assert set(data.splits) == {"train", "val", "test"}


def test_inshop_reader(tree):
  data = deepfashion.load_inshop(os.path.join(tree, "inshop"))
  assert len(data.image_names) == 48
  assert data.image_names[0].startswith("img/") and "/id_00000001/" in data.image_names[0]
  for item in set(data.item_ids[data.splits == "query"]):
    assert (data.item_ids[data.splits == "gallery"] == item).any()  # Every query can be answered.
  assert data.bboxes.shape == (48, 4)


def _edit(path, line_number, new_text):
  with open(path) as f:
    lines = f.read().splitlines()
  if new_text is None:
    del lines[line_number - 1]
  else:
    lines[line_number - 1] = new_text
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


@pytest.fixture
def fresh_tree(tmp_path):
  return make_deepfashion_tree.make_tree(str(tmp_path), num_images=24, num_attributes=10)


def test_count_line_that_disagrees_names_the_file(fresh_tree):
  path = os.path.join(fresh_tree, "category_attribute", "Anno", "list_bbox.txt")
  _edit(path, 5, None)
  with pytest.raises(DataError, match=r"list_bbox.txt:1 says 24 rows but the file has 23"):
    deepfashion.load_category_attribute(os.path.join(fresh_tree, "category_attribute"))


def test_malformed_row_names_file_and_line(fresh_tree):
  path = os.path.join(fresh_tree, "category_attribute", "Anno", "list_attr_img.txt")
  _edit(path, 7, "img/x.jpg 1 -1")
  with pytest.raises(DataError, match=r"list_attr_img.txt:7: expected at least 11 fields"):
    deepfashion.load_category_attribute(os.path.join(fresh_tree, "category_attribute"))


def test_missing_image_and_empty_split_are_reported(fresh_tree):
  root = os.path.join(fresh_tree, "category_attribute")
  data = deepfashion.load_category_attribute(root)
  os.remove(os.path.join(root, data.image_names[3]))
  with pytest.raises(DataError, match=r"list_category_img.txt:6: image .* is listed but missing"):
    deepfashion.load_category_attribute(root)
  inshop = os.path.join(fresh_tree, "inshop")
  path = os.path.join(inshop, "Eval", "list_eval_partition.txt")
  with open(path) as f:
    text = f.read().replace(" query", " gallery")
  with open(path, "w") as f:
    f.write(text)
  with pytest.raises(DataError, match="the 'query' split has no rows"):
    deepfashion.load_inshop(inshop)


def test_files_listing_other_images_are_rejected(fresh_tree):
  root = os.path.join(fresh_tree, "category_attribute")
  path = os.path.join(root, "Eval", "list_eval_partition.txt")
  _edit(path, 4, "img/Other/img_99999999.jpg  train")
  with pytest.raises(DataError, match=r"list_eval_partition.txt:4: image img/Other"):
    deepfashion.load_category_attribute(root)


def test_wrong_root_says_where_to_point(tmp_path):
  with pytest.raises(DataError, match="no Anno/ or Anno_coarse/"):
    deepfashion.load_category_attribute(str(tmp_path))


@pytest.mark.parametrize("group_indices", [False, True])
def test_fine_reader_reads_both_attribute_layouts(tmp_path, group_indices):
  tree = make_deepfashion_tree.make_tree(str(tmp_path), num_images=24, num_attributes=10,
                                         fine_group_indices=group_indices)
  data = deepfashion.load_fine(os.path.join(tree, "category_attribute"))
  assert data.attribute_labels.shape == (24, 26) and len(data.attributes) == 26
  # Exactly one attribute per group is active, whichever layout the files use.
  start = 0
  for _, size in deepfashion.FINE_GROUPS:
    np.testing.assert_array_equal(data.attribute_labels[:, start:start + size].sum(1), 1)
    start += size
  assert set(data.splits) == {"train", "val", "test"}
  first_val = data.image_names[list(data.splits).index("val")]
  with open(os.path.join(tree, "category_attribute", "Anno_fine", "val.txt")) as f:
    assert f.readline().strip() == first_val


def test_fine_reader_rejects_misaligned_files(fresh_tree):
  path = os.path.join(fresh_tree, "category_attribute", "Anno_fine", "test_cate.txt")
  _edit(path, 1, None)
  with pytest.raises(DataError, match="the test files have different row counts"):
    deepfashion.load_fine(os.path.join(fresh_tree, "category_attribute"))


# A tiny random backbone: the two-stage configs' frozen stage freezes it on purpose.
_TINY = ["--config.model.name=resnet_tiny", "--config.model.width=8",
         "--config.model.pretrained=random",
         "--config.data.image_size=32", "--config.batch_size=8", "--config.num_train_steps=3",
         "--config.eval_every_steps=3", "--config.checkpoint.every_steps=3",
         "--config.optimizer.warmup_steps=1", "--config.data.num_threads=2"]
_CATEGORY = "--config.datasets.deepfashion.root={tree}/category_attribute"
_INSHOP = "--config.datasets.inshop.root={tree}/inshop"
_RECALLS = {f"{s}/embedding/recall_at_{k}" for s in ("val", "test")
            for k in (1, 5, 10, 20, 30, 40, 50)}
# config, its flags, metrics it must report (val and test).
_CONFIG_RUNS = {
    "category": ("deepfashion_category.py", [_CATEGORY],
                 {"val/category/accuracy", "val/category/top3_accuracy",
                  "test/category/top5_accuracy", "test/category/macro_f1"}),
    "attributes": ("deepfashion_attributes.py", [_CATEGORY],
                   {"val/attributes/top3_recall", "test/attributes/top5_recall",
                    "test/attributes/micro_f1", "test/attributes/macro_f1",
                    "test/attributes/hamming_loss", "test/attributes/mAP"}),
    "attributes_fine": ("deepfashion_attributes.py:fine", [_CATEGORY],
                        {f"test/attributes/{g}_accuracy" for g, _ in deepfashion.FINE_GROUPS}
                        | {"test/attributes/mean_group_accuracy", "test/attributes/mAP"}),
    "inshop": ("deepfashion_inshop.py", [_INSHOP], _RECALLS),
    "deepfashion_mtl": ("deepfashion_mtl.py",
                        [_CATEGORY, _INSHOP, "--config.stages.heads.until_step=2"],
                        _RECALLS | {"test/category/top5_accuracy", "test/attributes/mAP"}),
    "mtl_all": ("mtl_all.py", [_CATEGORY, _INSHOP, "--config.stages.heads.until_step=1"],
                _RECALLS | {"test/category/accuracy", "test/attributes/top5_recall",
                            "test/articleType/accuracy", "test/product_embedding/recall_at_1"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("run", sorted(_CONFIG_RUNS))
def test_deepfashion_configs_train_end_to_end_on_the_synthetic_tree(tree, tmp_path, run):
  import json
  import subprocess
  config, flags, expected = _CONFIG_RUNS[run]
  args = [sys.executable, "-m", "fashion_jax.main", f"--config={REPO}/configs/{config}",
          f"--workdir={tmp_path}", *(f.format(tree=tree) for f in flags), *_TINY]
  result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp_path / "final_metrics.json").read_text())
  assert expected <= set(metrics), expected - set(metrics)
  assert all(np.isfinite(v) for v in metrics.values())
  # The same figures reach TensorBoard.
  scalars = events.last_values(events.read_scalars(str(tmp_path)))
  for key in expected:
    np.testing.assert_allclose(scalars[key], metrics[key], rtol=1e-5)
  if "stages" in " ".join(flags):
    assert "Stage 'heads' from step 1" in result.stdout and "Stage 'joint'" in result.stdout


def test_category_run_uses_the_official_partition(tree, tmp_path):
  from fashion_jax.data import labelled
  from fashion_jax import tasks as tasks_lib
  from conftest import load_config
  config = load_config("deepfashion_category")
  config.datasets.deepfashion.root = os.path.join(tree, "category_attribute")
  data = labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), str(tmp_path))
  raw = deepfashion.load_category_attribute(config.datasets.deepfashion.root)
  for split in deepfashion.SPLITS:
    assert list(data.splits[split].table.ids) == [
        n for n, s in zip(raw.image_names, raw.splits) if s == split]
  assert data.splits["train"].box_margin == 0.1


def test_verify_reports_counts_that_differ_from_the_release_and_missing_images(fresh_tree):
  from fashion_jax.tools import verify_deepfashion
  root = os.path.join(fresh_tree, "inshop")
  counts, names = verify_deepfashion.measure("inshop", root)
  assert counts["images"] == 24 and counts["items"] == 8
  os.remove(os.path.join(root, names[2]))
  problems = verify_deepfashion.verify("inshop", root)
  assert "images: 24 (release: 52,712)" in problems
  assert problems[-1] == f"images missing on disk: 1 of 24, e.g. {names[2]}"
  assert verify_deepfashion.report("inshop", root) == 1


def test_verify_accepts_a_folder_that_matches(fresh_tree, monkeypatch):
  from fashion_jax.tools import verify_deepfashion
  root = os.path.join(fresh_tree, "category_attribute")
  counts, _ = verify_deepfashion.measure("category", root)
  monkeypatch.setitem(verify_deepfashion.EXPECTED, "category", counts)
  assert verify_deepfashion.verify("category", root) == []
  assert verify_deepfashion.report("category", root) == 0


def _source(kind, root, **fields):
  import ml_collections
  from fashion_jax.data import sources
  return ml_collections.ConfigDict(sources.dataset_config(kind, root=root, **fields))


def test_inshop_source_keeps_official_query_gallery_and_holds_out_val_items(tree):
  from fashion_jax.data import sources
  root = os.path.join(tree, "inshop")
  raw = deepfashion.load_inshop(root)
  table, _ = sources.load_source(_source("deepfashion_inshop", root, val_items_fraction=0.2),
                                 ["item_id", "clothes_group"], seed=0)
  test = table.splits == "test"
  assert list(table.roles[test]) == [s for s in raw.splits if s != "train"]
  val, train = table.splits == "val", table.splits == "train"
  val_items = set(table.columns["item_id"][val])
  assert len(val_items) == round(0.2 * len(set(raw.item_ids[raw.splits == "train"])))
  assert not val_items & set(table.columns["item_id"][train])
  for item in val_items:  # One query per held-out item: its first image.
    roles = list(table.roles[val & (table.columns["item_id"] == item)])
    assert roles[0] == "query" and set(roles[1:]) == {"gallery"}
  assert table.columns["clothes_group"][0].split("/")[0] in ("MEN", "WOMEN")
  other, _ = sources.load_source(_source("deepfashion_inshop", root, val_items_fraction=0.2),
                                 ["item_id"], seed=1)
  assert set(other.columns["item_id"][other.splits == "val"]) != val_items


def test_fine_source_names_groups_and_offers_one_column_per_group(tree):
  from fashion_jax.data import sources
  root = os.path.join(tree, "category_attribute")
  table, _ = sources.load_source(_source("deepfashion_category", root, annotations="fine"),
                                 ["attributes", "attribute_sleeve"])
  raw = deepfashion.load_fine(root)
  for row, (attributes, sleeve) in enumerate(zip(table.columns["attributes"],
                                                 table.columns["attribute_sleeve"])):
    names = attributes.split("|")
    assert len(names) == len(deepfashion.FINE_GROUPS)
    assert [n.split("/")[0] for n in names] == [g for g, _ in deepfashion.FINE_GROUPS]
    assert f"sleeve/{sleeve}" in names
    assert {n.split("/")[1] for n in names} == {
        raw.attributes[j] for j in np.flatnonzero(raw.attribute_labels[row])}
