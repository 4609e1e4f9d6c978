"""inspect_data (tools/inspect_data.py): every problem of a table in one report, and a
non-zero exit when something would stop training."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import local_shop
from conftest import REPO, SAMPLE_DIR, load_config
from fashion_jax.tools import inspect_data

_GOOD = 30


@pytest.fixture(scope="module")
def shop():
  with local_shop.serve() as url:
    yield url


def _shop_table(folder, shop, repeat: bool = True) -> str:
  """A table with every kind of bad row training skips, a few of each (`repeat`: and a
  repeated id and image)."""
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))[:_GOOD]
  lines = ["sku,image,category"]
  for i, name in enumerate(names):
    shutil.copy(os.path.join(SAMPLE_DIR, "images", name), folder / name)
    lines.append(f"SKU{i},{name},{'Shirts' if i % 2 else 'Shoes'}")
  (folder / "garbage1.jpg").write_bytes(b"not an image")
  (folder / "garbage2.jpg").write_bytes(b"\xff\xd8 nor this")
  lines += [f"BAD-404,{shop}/missing.jpg,Shirts", f"BAD-html,{shop}/page.html,Shoes",
            f"BAD-loop,{shop}/loop.jpg,Shoes",
            "BAD-fields,a.jpg,Shirts,extra,fields",
            "BAD-nofile,gone.jpg,Shirts", "BAD-nofile2,sub/gone.jpg,Shoes",
            "BAD-decode1,garbage1.jpg,Shirts", "BAD-decode2,garbage2.jpg,Shoes",
            *([f"SKU0,{names[1]},Shirts"] if repeat else [])]
  path = folder / "shop.csv"
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def _config(table, folder, **catalog):
  config = load_config("catalog")
  config.datasets.catalog.update(root=table, id_column="sku", image_cache=str(folder / "cache"))
  config.catalog.update(softmax="category", **catalog)
  return config


def test_every_bad_row_of_every_kind_is_listed_and_training_would_start(shop, tmp_path):
  table = _shop_table(tmp_path, shop)
  report = inspect_data.inspect(_config(table, tmp_path), progress=False)
  assert report["errors"] == []
  data = report["datasets"]["catalog"]
  skipped = data["skipped"]
  urls = skipped["rows whose image URL could not be fetched"]
  assert urls["count"] == 3 and len(urls["all"]) == 3
  for place, reason in zip(urls["all"], ("missing.jpg: HTTP 404", "page.html: not an image",
                                          "loop.jpg: more than")):
    assert "shop.csv:" in place and f"{shop}/{reason}" in place
  assert skipped["malformed rows (wrong number of fields)"]["count"] == 1
  missing = skipped["rows whose image file is missing"]
  assert missing["count"] == 2 and all("gone.jpg" in place for place in missing["all"])
  images = data["images"]
  assert images["unreadable"] == 2 and len(images["unreadable_all"]) == 2
  assert data["duplicate_ids"] == 1 and data["duplicate_ids_all"] == ["SKU0"]
  assert ["SKU1", "SKU0"] in [sorted(g, reverse=True) for g in images["duplicate_images_all"]]
  assert data["rows"] == _GOOD + 3  # The good rows, the two that do not decode, the repeat.
  assert data["tasks"]["category"]["classes_in_train"] == 2


@pytest.mark.slow
def test_what_would_stop_training_is_an_error_and_the_exit_status_says_so(shop, tmp_path):
  table = _shop_table(tmp_path, shop, repeat=False)
  out = tmp_path / "report.json"
  # Every sku is its own identity: P x K batches would have no positives.
  result = subprocess.run(
      [sys.executable, "-m", "fashion_jax", "inspect_data", "--config=configs/catalog.py",
       f"--config.datasets.catalog.root={table}", "--config.datasets.catalog.id_column=sku",
       f"--config.datasets.catalog.image_cache={tmp_path / 'cache'}",
       "--config.catalog.softmax=category", "--config.catalog.identity=sku", f"--out={out}",
       "--nocheck_images"], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Would stop training" in result.stdout and "'sku'" in result.stdout
  report = json.loads(out.read_text())
  assert len(report["errors"]) == 1 and "shared by two training images" in report["errors"][0]
  # The rows are still reported in full beside the error.
  assert report["datasets"]["catalog"]["skipped"][
      "rows whose image URL could not be fetched"]["count"] == 3


def test_a_table_that_cannot_be_read_is_an_error_not_a_traceback(tmp_path):
  report = inspect_data.inspect(_config(str(tmp_path / "nowhere.csv"), tmp_path),
                                progress=False)
  assert len(report["errors"]) == 1 and "nowhere.csv" in report["errors"][0]
