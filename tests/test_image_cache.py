"""Catalog images named by URLs (data/image_cache.py), against a local HTTP server on
127.0.0.1 that the tests start: good images, 404s, slow responses, truncated and
oversized bodies, redirect loops, non-images and a flaky server. Nothing leaves the
machine."""

import os

import numpy as np
import pytest
from PIL import Image

import local_shop
from conftest import SAMPLE_DIR
from local_shop import Shop, jpeg
from fashion_jax.data import image_cache, sources
from fashion_jax.errors import ConfigError

_OPTIONS = image_cache.FetchOptions(workers=4, timeout=1.0, retries=2, backoff=0.05,
                                    max_redirects=3, max_bytes=200_000)


@pytest.fixture(scope="module")
def shop():
  with local_shop.serve() as url:
    yield url


def test_each_failure_comes_back_with_its_reason_and_good_images_are_cached(shop, tmp_path):
  Shop.hits.clear()
  urls = {name: f"{shop}/{name}" for name in (
      "img/a", "img/b", "img/same_as_a", "moved.jpg", "missing.jpg", "slow.jpg",
      "truncated.jpg", "huge.jpg", "loop.jpg", "page.html", "broken.jpg", "flaky.jpg")}
  got = image_cache.fetch_all(list(urls.values()), str(tmp_path), _OPTIONS)
  reasons = {name: str(got[url]) for name, url in urls.items()
             if isinstance(got[url], image_cache.FetchError)}
  assert set(reasons) == {"missing.jpg", "slow.jpg", "truncated.jpg", "huge.jpg", "loop.jpg",
                          "page.html", "broken.jpg"}, reasons
  assert reasons["missing.jpg"].startswith("HTTP 404")
  assert reasons["slow.jpg"] == "timed out after 1 s"
  assert reasons["truncated.jpg"].startswith("truncated")
  assert reasons["huge.jpg"].startswith("too large")
  assert reasons["loop.jpg"] == "more than 3 redirects"
  assert reasons["page.html"] == "not an image (Content-Type text/html)"
  assert reasons["broken.jpg"].startswith("does not decode as an image")
  # Good ones: the bytes served, decodable; the same photo under two URLs stored once.
  with open(got[urls["img/a"]], "rb") as f:
    assert f.read() == Shop.photos["a"]
  assert got[urls["img/same_as_a"]] == got[urls["img/a"]]
  assert np.asarray(Image.open(got[urls["moved.jpg"]])).shape[-1] == 3
  # Transient failures are retried with back-off (twice 503, then served); permanent
  # ones are not; a timeout is tried 1 + retries times.
  assert Shop.hits["/flaky.jpg"] == 3 and not isinstance(got[urls["flaky.jpg"]], Exception)
  assert Shop.hits["/missing.jpg"] == 1 and Shop.hits["/page.html"] == 1
  assert Shop.hits["/slow.jpg"] == 3
  assert len(os.listdir(tmp_path / "objects")) == 3  # a (twice), b (moved too), c.
  assert not [n for n in os.listdir(tmp_path / "objects") if "partial" in n]


def test_a_rerun_fetches_only_what_is_missing(shop, tmp_path):
  urls = [f"{shop}/img/a", f"{shop}/img/b"]
  image_cache.fetch_all(urls[:1], str(tmp_path), _OPTIONS)
  Shop.hits.clear()
  got = image_cache.fetch_all(urls, str(tmp_path), _OPTIONS)
  assert dict(Shop.hits) == {"/img/b": 1}
  assert all(os.path.isfile(path) for path in got.values())


@pytest.mark.slow
def test_a_catalog_with_url_rows_trains_on_the_rows_it_could_fetch(shop, tmp_path):
  from conftest import tiny_config
  from fashion_jax.training import train
  from fashion_jax.tasks import task_config
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))[:40]
  Shop.photos.update({n: jpeg(n) for n in names})
  lines = ["sku,image,category"]
  for i, name in enumerate(names):
    lines.append(f"SKU{i},{shop}/img/{name},{'Shirts' if i % 2 else 'Shoes'}")
  lines += [f"SKU-404,{shop}/missing.jpg,Shirts", f"SKU-html,{shop}/page.html,Shoes"]
  (tmp_path / "shop.csv").write_text("\n".join(lines) + "\n")
  dataset = sources.dataset_config("catalog", root=str(tmp_path / "shop.csv"), id_column="sku",
                                   image_cache=str(tmp_path / "cache"))
  table, report = sources.load_source(dataset, ["category"])
  assert len(table.ids) == 40 and "SKU-404" not in list(table.ids)
  problems = report.to_dict()["problems"]["rows whose image URL could not be fetched"]
  assert problems["count"] == 2
  assert problems["first"][0].startswith(f"{tmp_path / 'shop.csv'}:42 ({shop}/missing.jpg: HTTP 404")
  config = tiny_config(tasks={"category": task_config("softmax", "category")})
  config.datasets.products = dataset
  config.checkpoint.best_metric = ""
  metrics = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert np.isfinite(metrics["val/category/loss"])
  assert "rows whose image URL could not be fetched" in (tmp_path / "run" / "data_report.json").read_text()
  # Evaluate and the catalog index read the same rows through the same cache.
  from fashion_jax.evaluation import scoring
  from fashion_jax.serving import index_build
  scored = scoring.evaluate(str(tmp_path / "run"), scoring.Options(
      split="all", checkpoint="latest", grid_images=0))
  assert scored["metrics"]["category"]["samples"] == 40
  catalog = index_build.read_catalog("dataset:products", str(tmp_path / "run"))
  assert len(catalog) == 40 and catalog.image(0)[:2] == b"\xff\xd8"  # JPEG bytes, cached.


def test_prepare_download_fills_the_cache_ahead_of_training(shop, tmp_path):
  from conftest import load_config
  from fashion_jax.tools import prepare
  (tmp_path / "export.csv").write_text(
      f"image,category\n{shop}/img/a,Shirts\n{shop}/img/b,Shoes\n{shop}/missing.jpg,Shoes\n")
  config = load_config("catalog")
  config.datasets.catalog.root = str(tmp_path / "export.csv")
  config.datasets.catalog.image_cache = str(tmp_path / "cache")
  summary = prepare.download(config)
  assert summary["rows"] == 2
  assert summary["problems"]["rows whose image URL could not be fetched"]["count"] == 1
  assert len(os.listdir(tmp_path / "cache" / "objects")) == 2
  Shop.hits.clear()
  assert prepare.download(config)["rows"] == 2
  assert dict(Shop.hits) == {"/missing.jpg": 1}  # Only what is not in the cache yet.
  config.datasets.catalog.image_cache = ""
  with pytest.raises(ConfigError, match="set config.datasets.catalog.image_cache=DIR"):
    prepare.download(config)


@pytest.mark.slow
def test_the_audit_reads_url_rows_through_the_cache(shop, tmp_path):
  pytest.importorskip("cleanlab")
  from conftest import load_config
  from fashion_jax.audit import catalog_audit
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))[:30]
  Shop.photos.update({n: jpeg(n) for n in names})
  lines = ["sku,image,category"] + [
      f"SKU{i},{shop}/img/{name},{'Shirts' if i % 2 else 'Shoes'}" for i, name in enumerate(names)]
  lines += [f"SKU-404,{shop}/missing.jpg,Shirts", f"SKU-copy,{shop}/img/{names[3]},Shoes"]
  (tmp_path / "shop.csv").write_text("\n".join(lines) + "\n")
  config = load_config("catalog")
  config.datasets.catalog.update(root=str(tmp_path / "shop.csv"), id_column="sku",
                                 image_cache=str(tmp_path / "cache"))
  config.catalog.softmax = "category"
  report = catalog_audit.audit(config, catalog_audit.Options(
      out=str(tmp_path / "audit"), image_size=64, duplicate_image_size=64, sheet_rows=0,
      progress=False))
  data = report["datasets"]["catalog"]
  assert data["rows"] == 31 and data["tasks"]["category"]["rows_labelled"] == 31
  assert data["skipped_rows"]["rows whose image URL could not be fetched"]["count"] == 1
  groups = (tmp_path / "audit" / "catalog_near_duplicates.csv").read_text()
  assert "SKU3," in groups and "SKU-copy," in groups  # The same photo under two SKUs.
  assert len(os.listdir(tmp_path / "cache" / "objects")) == 30  # Fetched once each.
