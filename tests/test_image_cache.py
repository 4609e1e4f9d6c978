"""Catalog images named by URLs (data/image_cache.py), against a local HTTP server on
127.0.0.1 that the tests start: good images, 404s, slow responses, truncated and
oversized bodies, redirect loops, non-images and a flaky server. Nothing leaves the
machine."""

import collections
import http.server
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE_DIR
from fashion_jax.data import image_cache, sources
from fashion_jax.errors import ConfigError

_OPTIONS = image_cache.FetchOptions(workers=4, timeout=1.0, retries=2, backoff=0.05,
                                    max_redirects=3, max_bytes=200_000)


def _jpeg(name: str) -> bytes:
  with open(os.path.join(SAMPLE_DIR, "images", name), "rb") as f:
    return f.read()


class _Shop(http.server.BaseHTTPRequestHandler):
  photos = {}
  hits = collections.Counter()

  def log_message(self, *args):
    del args

  def _send(self, status, body=b"", kind="image/jpeg", length=None, headers=()):
    self.send_response(status)
    self.send_header("Content-Type", kind)
    self.send_header("Content-Length", str(len(body) if length is None else length))
    for key, value in headers:
      self.send_header(key, value)
    self.end_headers()
    try:
      self.wfile.write(body)
    except BrokenPipeError:  # The client gave up first (the slow route's timeout).
      pass

  def do_GET(self):
    path = self.path
    self.hits[path] += 1
    if path.startswith("/img/"):
      self._send(200, self.photos[path.removeprefix("/img/")])
    elif path == "/missing.jpg":
      self._send(404, b"not found", "text/plain")
    elif path == "/slow.jpg":
      time.sleep(3)
      self._send(200, self.photos["a"])
    elif path == "/truncated.jpg":
      body = self.photos["a"]
      self._send(200, body[:len(body) // 2], length=len(body))
    elif path == "/huge.jpg":
      self._send(200, b"\xff" * 300_000)
    elif path == "/loop.jpg":
      self._send(302, headers=[("Location", "/loop.jpg")])
    elif path == "/moved.jpg":
      self._send(301, headers=[("Location", "/img/b")])
    elif path == "/page.html":
      self._send(200, b"<html>a product page</html>", "text/html")
    elif path == "/broken.jpg":
      self._send(200, b"not a jpeg at all")
    elif path == "/flaky.jpg":  # Fails twice, then serves.
      if self.hits[path] <= 2:
        self._send(503, b"busy", "text/plain")
      else:
        self._send(200, self.photos["c"])
    else:
      self._send(404, b"", "text/plain")


@pytest.fixture(scope="module")
def shop():
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))
  _Shop.photos = {"a": _jpeg(names[0]), "b": _jpeg(names[1]), "c": _jpeg(names[2]),
                  "same_as_a": _jpeg(names[0])}
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()
  server.server_close()


def test_each_failure_comes_back_with_its_reason_and_good_images_are_cached(shop, tmp_path):
  _Shop.hits.clear()
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
    assert f.read() == _Shop.photos["a"]
  assert got[urls["img/same_as_a"]] == got[urls["img/a"]]
  assert np.asarray(Image.open(got[urls["moved.jpg"]])).shape[-1] == 3
  # Transient failures are retried with back-off (twice 503, then served); permanent
  # ones are not; a timeout is tried 1 + retries times.
  assert _Shop.hits["/flaky.jpg"] == 3 and not isinstance(got[urls["flaky.jpg"]], Exception)
  assert _Shop.hits["/missing.jpg"] == 1 and _Shop.hits["/page.html"] == 1
  assert _Shop.hits["/slow.jpg"] == 3
  assert len(os.listdir(tmp_path / "objects")) == 3  # a (twice), b (moved too), c.
  assert not [n for n in os.listdir(tmp_path / "objects") if "partial" in n]


def test_a_rerun_fetches_only_what_is_missing(shop, tmp_path):
  urls = [f"{shop}/img/a", f"{shop}/img/b"]
  image_cache.fetch_all(urls[:1], str(tmp_path), _OPTIONS)
  _Shop.hits.clear()
  got = image_cache.fetch_all(urls, str(tmp_path), _OPTIONS)
  assert dict(_Shop.hits) == {"/img/b": 1}
  assert all(os.path.isfile(path) for path in got.values())


def test_a_catalog_with_url_rows_trains_on_the_rows_it_could_fetch(shop, tmp_path):
  from conftest import tiny_config
  from fashion_jax import train
  from fashion_jax.tasks import task_config
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))[:40]
  _Shop.photos.update({n: _jpeg(n) for n in names})
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
  _Shop.hits.clear()
  assert prepare.download(config)["rows"] == 2
  assert dict(_Shop.hits) == {"/missing.jpg": 1}  # Only what is not in the cache yet.
  config.datasets.catalog.image_cache = ""
  with pytest.raises(ConfigError, match="set config.datasets.catalog.image_cache=DIR"):
    prepare.download(config)
