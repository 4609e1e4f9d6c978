"""A shop's own data (data/catalog.py): a product table in four formats and an image
folder, built here from the embedded sample, read into the same Table and trained on."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import load_config, read_sample_rows, tiny_config
from fashion_jax.evaluation import trained
from fashion_jax.training import train
from fashion_jax.tools import predict
from fashion_jax.evaluation import scoring
from fashion_jax.data import sources
from fashion_jax.data.product_images import SAMPLE_DIR
from fashion_jax.errors import ConfigError, DataError
from fashion_jax.tasks import task_config

_COLUMNS = ["sku", "image", "category", "colour", "tags", "split"]


def _rows(count=48):
  """Catalog rows from the sample: nested folders, PNG and JPEG, a multi-valued column
  (lists, some empty), missing labels (nulls) and a shop split column."""
  rows = []
  for i, row in enumerate(read_sample_rows()[:count]):
    folder = f"{row['masterCategory']}/{row['subCategory']}".replace(" ", "_")
    extension = "png" if i % 3 == 0 else "jpg"
    tags = [row["season"], row["usage"]] if i % 5 else []
    rows.append({"sku": f"SKU-{row['id']}", "image": f"images/{folder}/{row['id']}.{extension}",
                 "category": row["subCategory"] if i % 7 else None, "colour": row["baseColour"],
                 "tags": tags,
                 "split": ("test" if i % 10 == 9 else "val" if i % 10 == 8 else "train")})
  return rows


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
  root = tmp_path_factory.mktemp("catalog")
  rows = _rows()
  for row in rows:
    source = os.path.join(SAMPLE_DIR, "images", os.path.basename(row["image"]).split(".")[0] + ".jpg")
    target = root / row["image"]
    target.parent.mkdir(parents=True, exist_ok=True)
    if row["image"].endswith(".png"):
      Image.open(source).save(target)
    else:
      shutil.copy(source, target)

  def cell(value, list_form):
    if value is None:
      return "" if not list_form else None
    if isinstance(value, list):
      return value if list_form else "|".join(value)
    return value

  for form, delimiter in (("csv", ","), ("tsv", "\t")):
    with open(root / f"products.{form}", "w", newline="") as f:
      writer = csv.writer(f, delimiter=delimiter)
      writer.writerow(_COLUMNS)
      for i, row in enumerate(rows):
        writer.writerow([cell(row[c], False) for c in _COLUMNS])
        if i == 3:  # A broken row: one field short.
          writer.writerow(["SKU-broken", "images/x.jpg", "Topwear"])
  with open(root / "products.jsonl", "w") as f:
    for i, row in enumerate(rows):
      f.write(json.dumps({c: cell(row[c], True) for c in _COLUMNS}) + "\n")
      if i == 3:
        f.write('{"sku": "SKU-broken", "image": \n')
  import pyarrow as pa
  import pyarrow.parquet as pq
  pq.write_table(pa.Table.from_pylist([{c: cell(row[c], True) for c in _COLUMNS}
                                       for row in rows]), root / "products.parquet")
  return root


def _dataset(root, table, **fields):
  return sources.dataset_config("catalog", root=str(root), table=table, id_column="sku",
                                split_column="split", multi_valued_columns="tags", **fields)


def test_the_four_forms_of_one_catalog_read_into_the_same_table(catalog):
  tables = {}
  for form in ("csv", "tsv", "jsonl", "parquet"):
    # In CSV and TSV an empty list is an empty string: this shop means "no tags" by it.
    table, report = sources.load_source(
        _dataset(catalog, f"products.{form}", empty_string="no_labels"),
        ["category", "colour", "tags"])
    tables[form] = table
    if form != "parquet":  # The broken row is reported with its line and skipped.
      (kind,) = [k for k in report.counts if k.startswith(("malformed", "unreadable"))]
      line = "5 (Expecting value)" if form == "jsonl" else "6"  # JSON lines have no header.
      assert report.examples[kind] == [f"{catalog / f'products.{form}'}:{line}"]
  rows = _rows()
  reference = tables["csv"]
  assert list(reference.ids) == [r["sku"] for r in rows]
  assert list(reference.splits) == [r["split"] for r in rows]
  for form, table in tables.items():
    assert list(table.ids) == list(reference.ids), form
    assert list(table.splits) == list(reference.splits), form
    assert [table.images.describe(i) for i in table.rows] == [
        reference.images.describe(i) for i in reference.rows], form
    for column in ("category", "colour", "tags"):
      assert list(table.columns[column]) == list(reference.columns[column]), (form, column)
  # An empty list is no labels ('|': all negatives); labels are joined; a null is
  # unknown ('': that task masked, the others trained).
  tags = list(tables["parquet"].columns["tags"])
  assert tags[5] == "|" and tags[1] == f"{rows[1]['tags'][0]}|{rows[1]['tags'][1]}"
  assert list(tables["parquet"].columns["category"]).count("") == sum(
      r["category"] is None for r in rows) > 0


def test_an_empty_string_is_unknown_or_no_labels_as_configured(catalog):
  csv_table, _ = sources.load_source(_dataset(catalog, "products.csv"), ["tags"])
  no_labels, _ = sources.load_source(_dataset(catalog, "products.csv", empty_string="no_labels"),
                                     ["tags"])
  # Row 5's empty list is '' in the CSV: unknown by default, or "no tags" if the shop says so.
  assert csv_table.columns["tags"][5] == "" and no_labels.columns["tags"][5] == "|"


def test_urls_and_bad_split_values_name_the_row(tmp_path, catalog):
  (tmp_path / "shop.csv").write_text("image,category,split\nhttps://cdn.shop/1.jpg,Shirts,train\n")
  with pytest.raises(DataError, match=r"shop.csv:2: image='https://cdn.shop/1.jpg' is a URL: "
                                      r"set datasets.<name>.image_cache=DIR"):
    sources.load_source(sources.dataset_config("catalog", root=str(tmp_path / "shop.csv")),
                        ["category"])
  shutil.copy(os.path.join(SAMPLE_DIR, "images", os.listdir(os.path.join(SAMPLE_DIR, "images"))[0]),
              tmp_path / "a.jpg")
  (tmp_path / "shop.csv").write_text("image,category,split\na.jpg,Shirts,holdout\n")
  with pytest.raises(DataError, match=r"shop.csv:2: split='holdout' is not one of train, val"):
    sources.load_source(sources.dataset_config("catalog", root=str(tmp_path / "shop.csv"),
                                               split_column="split"), ["category"])
  with pytest.raises(DataError, match=r"no column\(s\) \['colour'\]"):
    sources.load_source(sources.dataset_config("catalog", root=str(tmp_path / "shop.csv")),
                        ["colour"])


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("folders")
  for row in read_sample_rows()[:60]:
    target = root / row["masterCategory"] / f"{row['id']}.jpg"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(os.path.join(SAMPLE_DIR, "images", f"{row['id']}.jpg"), target)
  (root / "Apparel" / "notes.txt").write_text("not an image")
  return root


def test_an_image_folder_is_one_label_column_from_the_folder_names(image_folder):
  table, report = sources.load_source(
      sources.dataset_config("image_folder", root=str(image_folder)), ["label"])
  expected = [r["masterCategory"] for r in read_sample_rows()[:60]]
  assert sorted(table.columns["label"]) == sorted(expected)
  assert all(table.ids[i].startswith(table.columns["label"][i] + os.sep) for i in range(len(table)))
  assert report.counts["files that are not images (skipped)"] == 1


def _train(dataset, tasks, workdir):
  config = tiny_config(tasks)
  config.datasets = {"shop": dataset}
  config.eval_test = True
  metrics = train.train_and_evaluate(config, str(workdir))
  return config, metrics


@pytest.mark.slow
def test_configs_catalog_builds_its_tasks_from_the_command_line_and_trains(catalog, tmp_path):
  # As `--config.catalog.softmax=category --config.catalog.multilabel=tags
  # --config.catalog.identity=colour` would set them, after get_config() returned.
  config = load_config("catalog")
  shrunk = tiny_config()
  # The tiny model has no pretrained weights to fine-tune in stages.
  for field in ("data", "model", "batch_size", "num_train_steps", "log_every_steps",
                "eval_every_steps", "checkpoint", "optimizer", "stages"):
    config[field] = shrunk[field]
  config.checkpoint.best_metric = ""
  config.datasets.catalog.update(root=str(catalog / "products.csv"), id_column="sku",
                                 split_column="split", empty_string="no_labels")
  config.catalog.update(softmax="category", multilabel="tags", identity="colour")
  workdir = tmp_path / "run"
  metrics = train.train_and_evaluate(config, str(workdir))
  assert np.isfinite(metrics["val/category/accuracy"]) and np.isfinite(metrics["val/tags/loss"])
  stored = json.loads((workdir / "config.json").read_text())
  assert {name: (t["kind"], t["column"]) for name, t in stored["tasks"].items()} == {
      "category": ("softmax", "category"), "tags": ("sigmoid", "tags"),
      "embedding": ("embedding", "colour")}
  assert stored["datasets"]["catalog"]["multi_valued_columns"] == "tags"
  # Per-tag thresholds chosen on val when training ended, saved with the vocabulary, used
  # on test beside the configured 0.5, and by predict.
  vocab = json.loads((workdir / "vocab.json").read_text())["tags"]
  thresholds = vocab["fitted"]["thresholds"]
  assert len(thresholds) == len(vocab["classes"]) and all(0 < t <= 1 for t in thresholds)
  # Only attributes with enough validation positives are tuned; the others keep 0.5.
  assert set(vocab["fitted"]["tuned"]) <= set(vocab["classes"])
  assert all(t == 0.5 for c, t in zip(vocab["classes"], thresholds)
             if c not in vocab["fitted"]["tuned"])
  assert np.isfinite(metrics["test/tags/micro_f1"]) and "test/tags/micro_f1_at_0.5" in metrics
  run = trained.load(str(workdir), "latest")
  (line,) = predict.predict_lines(run, [str(catalog / _rows()[1]["image"])])
  by_label = dict(zip(vocab["classes"], thresholds))
  assert all(p["score"] >= by_label[p["label"]] for p in line["predictions"]["tags"])
  scored = scoring.evaluate(str(workdir),
      scoring.Options(split="test", checkpoint="latest", grid_images=0))
  assert scored["metrics"]["tags"]["micro_f1"] == pytest.approx(metrics["test/tags/micro_f1"])
  assert "micro_f1_at_0.5" in scored["metrics"]["tags"]
  with open(workdir / "split_catalog.csv") as f:
    written = dict(csv.reader(f))
  assert written["SKU-" + read_sample_rows()[9]["id"]] == "test"  # The shop's own split.


@pytest.mark.slow
def test_a_catalog_config_that_names_no_column_says_how(tmp_path):
  config = load_config("catalog")
  with pytest.raises(ConfigError, match="config.catalog names no column"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


@pytest.mark.slow
def test_an_identity_column_with_one_image_per_value_is_refused_naming_it(catalog, tmp_path):
  config = load_config("catalog")
  config.datasets.catalog.update(root=str(catalog / "products.csv"), id_column="sku")
  config.catalog.update(softmax="category", identity="sku")  # One image per SKU here.
  with pytest.raises(DataError, match="no value of column 'sku' .* is shared by two "
                                      "training images"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.slow
def test_trains_on_an_image_folder(image_folder, tmp_path):
  tasks = {"label": task_config("softmax", "label", dataset="shop")}
  _, metrics = _train(sources.dataset_config("image_folder", root=str(image_folder)), tasks,
                      tmp_path / "run")
  assert np.isfinite(metrics["val/label/accuracy"])


def test_inspect_data_reports_what_the_catalog_holds(catalog, tmp_path):
  from fashion_jax.tools import inspect_data
  config = load_config("catalog")
  config.datasets.catalog.update(root=str(catalog / "products.csv"), id_column="sku",
                                 split_column="split", empty_string="no_labels")
  config.catalog.update(softmax="category,colour", multilabel="tags")
  config.tasks = {}
  # One image broken, one duplicated under another id.
  rows = _rows()
  (catalog / rows[2]["image"]).write_bytes(b"not an image")
  shutil.copy(catalog / rows[4]["image"], catalog / "copy.jpg")
  with open(catalog / "products.csv", "a") as f:
    f.write(f"SKU-copy,copy.jpg,{rows[4]['category']},{rows[4]['colour']},,train\n")
  try:
    report = inspect_data.inspect(config, progress=False)["datasets"]["catalog"]
  finally:
    shutil.copy(os.path.join(SAMPLE_DIR, "images", rows[2]["image"].split("/")[-1]
                             .replace(".png", ".jpg")), catalog / "tmp.jpg")
    Image.open(catalog / "tmp.jpg").save(catalog / rows[2]["image"])
    lines = (catalog / "products.csv").read_text().splitlines()
    (catalog / "products.csv").write_text("\n".join(lines[:-1]) + "\n")
  assert report["rows"] == len(rows) + 1
  assert report["skipped"]["malformed rows (wrong number of fields)"]["count"] == 1
  assert report["images"]["unreadable"] == 1
  assert report["images"]["duplicate_images_all"] == [[f"SKU-{rows[4]['sku'][4:]}", "SKU-copy"]]
  assert report["splits"] == {"train": sum(r["split"] == "train" for r in rows) + 1,
                              "val": sum(r["split"] == "val" for r in rows),
                              "test": sum(r["split"] == "test" for r in rows)}
  category = report["tasks"]["category"]
  assert category["coverage"] == pytest.approx(
      (sum(r["category"] is not None for r in rows) + 1) / (len(rows) + 1))
  tags = report["tasks"]["tags"]
  assert tags["rows_with_no_labels"] == sum(not r["tags"] for r in rows) + 1


def test_a_row_without_an_id_leaves_the_split_column_aligned(tmp_path):
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))[:3]
  for name in names:
    shutil.copy(os.path.join(SAMPLE_DIR, "images", name), tmp_path / name)
  (tmp_path / "shop.csv").write_text(
      "sku,image,category,split\n"
      f"A,{names[0]},Shirts,train\n,{names[1]},Shoes,val\nC,{names[2]},Shoes,test\n")
  table, report = sources.load_source(sources.dataset_config(
      "catalog", root=str(tmp_path / "shop.csv"), id_column="sku", split_column="split"),
      ["category"])
  assert list(table.ids) == ["A", "C"]
  assert list(table.splits) == ["train", "test"]  # The skipped row's 'val' is not kept.
  assert report.counts["rows without an id ('sku' empty)"] == 1
