"""Sources: the Kaggle folder layout and Hugging Face datasets read into the same Table."""

import os

import ml_collections
import numpy as np
import pytest

from conftest import SAMPLE_COLUMNS, read_sample_rows
from fashion_jax.data import product_images, sources
from fashion_jax.data.report import DataReport
from fashion_jax.errors import ConfigError, DataError


def _data_config(source="product_images", **kw):
  return ml_collections.ConfigDict(sources.dataset_config(source, **kw))


def test_embedded_sample_matches_its_csv():
  table, report = sources.load_source(_data_config(), ["articleType", "gender"])
  rows = read_sample_rows()
  assert len(table) == len(rows) >= 300
  assert list(table.ids) == [r["id"] for r in rows]
  assert list(table.columns["gender"]) == [r["gender"] for r in rows]
  assert table.image(0)[:2] == b"\xff\xd8"
  assert not report.counts


def test_messy_csv_is_reported_and_skipped_not_fatal(product_tree):
  report = DataReport("test")
  ids, values, paths = product_images.read_styles_csv(
      str(product_tree / "styles.csv"), str(product_tree / "images"),
      ["baseColour", "tags", "productDisplayName"], report)
  rows = read_sample_rows()[:80]
  assert len(ids) == 78  # 80 minus the missing image and the truncated row.
  assert rows[3]["id"] not in ids and rows[4]["id"] not in ids
  # Unquoted commas in the last, free-text column are rejoined, not dropped.
  assert values["productDisplayName"][1].endswith(", Pack of 2, Blue")
  assert values["baseColour"][2] == ""
  csv_path = str(product_tree / "styles.csv")
  assert report.counts["ids without an image file"] == 1
  assert report.examples["ids without an image file"] == [f"{rows[3]['id']} ({csv_path}:5)"]
  assert report.examples["malformed rows (wrong number of fields)"] == [f"{csv_path}:6"]
  assert report.counts["empty 'baseColour' labels (masked for that task)"] == 1
  assert all(os.path.exists(p) for p in paths)


def test_extra_commas_without_free_text_column_are_skipped(tmp_path):
  os.makedirs(tmp_path / "images")
  for i in (1, 2):
    (tmp_path / "images" / f"{i}.jpg").write_bytes(b"x")
  (tmp_path / "styles.csv").write_text("id,gender\n1,Men\n2,Women,Extra\n")
  report = DataReport("t")
  ids, _, _ = product_images.read_styles_csv(str(tmp_path / "styles.csv"), str(tmp_path / "images"),
                                      ["gender"], report)
  assert ids == ["1"]
  assert report.counts["malformed rows (wrong number of fields)"] == 1


def test_bom_is_ignored_and_missing_columns_name_the_file(tmp_path):
  os.makedirs(tmp_path / "images")
  (tmp_path / "images" / "7.jpg").write_bytes(b"x")
  (tmp_path / "styles.csv").write_bytes("\ufeffid,gender\n7,Men\n".encode("utf-8"))
  table, _ = sources.load_source(_data_config(root=str(tmp_path)), ["gender"])
  assert list(table.ids) == ["7"]
  with pytest.raises(DataError, match=r"styles.csv: missing column\(s\) \['usage'\]"):
    sources.load_source(_data_config(root=str(tmp_path)), ["usage"])


def test_unknown_source_or_field_names_the_config_field():
  config = _data_config()
  config.source = "kaggle"
  with pytest.raises(ConfigError, match=r"config.datasets.shop.source='kaggle' is not one of"):
    sources.load_source(config, ["gender"], where="config.datasets.shop")
  config = _data_config()
  config.csv_nmae = "styles.csv"  # A typo: no source has this field.
  with pytest.raises(ConfigError, match=r"config.datasets.shop: unknown field\(s\) \['csv_nmae'\]"):
    sources.load_source(config, ["gender"], where="config.datasets.shop")
  # Fields of other sources are ignored, so a source can be switched by one flag.
  config = _data_config()
  config.hf_split = "train"
  resolved = sources.resolve_dataset_config(config, "config.datasets.shop")
  assert "hf_split" not in resolved and resolved.csv_name == "styles.csv"
  with pytest.raises(ConfigError, match="Unknown field"):
    sources.dataset_config("product_images", annotations="fine")


def _local_hf_dataset(n=40):
  """The HF fashion-product-images-small schema, built from the embedded images."""
  import datasets
  rows = read_sample_rows()[:n]
  data = {c: [r[c] for r in rows] for c in SAMPLE_COLUMNS}
  data["id"] = [int(r["id"]) for r in rows]
  data["year"] = [int(r["year"]) for r in rows]
  data["usage"][0] = None  # The hub copy has missing values in several label columns.
  data["image"] = [os.path.join(product_images.SAMPLE_DIR, "images", f"{r['id']}.jpg") for r in rows]
  features = datasets.Features({**{c: datasets.Value("string") for c in SAMPLE_COLUMNS},
                                "id": datasets.Value("int64"), "year": datasets.Value("int64"),
                                "image": datasets.Image()})
  return datasets.Dataset.from_dict(data, features=features), rows


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_hugging_face_source_reads_local_copies(tmp_path, layout):
  dataset, rows = _local_hf_dataset()
  if layout == "save_to_disk":
    path = str(tmp_path / "hf")
    dataset.save_to_disk(path)
  else:
    path = str(tmp_path / "train.parquet")
    dataset.to_parquet(path)
  table, report = sources.load_source(
      _data_config(source="hugging_face", root=path), ["articleType", "usage", "year"])
  assert list(table.ids) == [r["id"] for r in rows]
  assert list(table.columns["articleType"]) == [r["articleType"] for r in rows]
  assert table.columns["usage"][0] == "" and table.columns["year"][1] == rows[1]["year"]
  assert report.counts["empty 'usage' labels (masked for that task)"] == 1
  with open(os.path.join(product_images.SAMPLE_DIR, "images", f"{rows[5]['id']}.jpg"), "rb") as f:
    assert table.image(5) == f.read()
  assert np.all(table.rows == np.arange(len(rows)))


def test_hugging_face_source_takes_a_shops_column_names_and_list_columns(tmp_path):
  import datasets
  dataset, rows = _local_hf_dataset(12)
  dataset = dataset.rename_columns({"image": "photo", "id": "sku"})
  tags = [[r["season"], r["usage"]] if i % 3 else [] for i, r in enumerate(rows)]
  dataset = dataset.add_column("tags", tags, feature=datasets.Sequence(datasets.Value("string")))
  path = str(tmp_path / "shop.parquet")
  dataset.to_parquet(path)
  table, _ = sources.load_source(
      _data_config(source="hugging_face", root=path, image_column="photo", id_column="sku"),
      ["articleType", "tags"])
  assert list(table.ids) == [r["id"] for r in rows]
  # Lists join like a catalog's: '' unknown, '|' no labels, 'a|b' labels.
  assert table.columns["tags"][0] == "|" and table.columns["tags"][1] == "|".join(tags[1])
  with open(os.path.join(product_images.SAMPLE_DIR, "images", f"{rows[2]['id']}.jpg"), "rb") as f:
    assert table.image(2) == f.read()
  with pytest.raises(DataError, match=r"missing column\(s\) \['image'\]"):
    sources.load_source(_data_config(source="hugging_face", root=path), ["articleType"])


@pytest.mark.slow
def test_hub_name_without_network_says_how_to_use_a_local_copy(tmp_path):
  from conftest import run_main
  # A closed local port stands in for the hub: no network reaches it.
  result = run_main(tmp_path / "run", "--config.datasets.products.source=hugging_face",
                    "--config.datasets.products.root=ashraq/fashion-product-images-small",
                    "--config.num_train_steps=2",
                    env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0",
                         "HF_DATASETS_OFFLINE": "0",
                         "HF_HOME": str(tmp_path / "hf_home")})  # An empty cache.
  assert result.returncode == 2, result.stderr[-3000:]
  message = result.stderr.splitlines()[-1]
  assert message.startswith("fashion_jax: DataError: config.datasets.products.root="
                            "'ashraq/fashion-product-images-small'")
  for hint in ("hub cannot be reached", "save_to_disk()", ".parquet", "HF_DATASETS_OFFLINE=1"):
    assert hint in message
  assert "Traceback" not in result.stderr
