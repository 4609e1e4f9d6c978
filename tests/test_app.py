"""The HTTP service on a loopback port, and its web page in a real headless Chromium."""

import concurrent.futures
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, sample_image_paths

httpx = pytest.importorskip("httpx")
from scripts import page_screenshot


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """The app on a loopback port, in a thread, as uvicorn serves it."""

  def __init__(self, app):
    import uvicorn
    self.port = free_port()
    self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                log_level="warning"))
    self.thread = threading.Thread(target=self.server.run, daemon=True)
    self.url = f"http://127.0.0.1:{self.port}"

  def __enter__(self):
    self.thread.start()
    deadline = time.time() + 30
    while not self.server.started:
      assert time.time() < deadline, "server did not start"
      time.sleep(0.05)
    return self

  def __exit__(self, *exc):
    self.server.should_exit = True
    self.thread.join(10)


@pytest.fixture(scope="module")
def service(exported, index_dir):
  from fashion_jax.serving import app as app_lib
  from fashion_jax.tools import serve
  model, index = serve.load(exported, index_dir)
  app = app_lib.create_app(model, index, max_upload_mb=0.25, max_pixels=4_000_000,
                           max_wait_ms=20)
  with Server(app) as server:
    server.index = index
    yield server


def upload(path_or_bytes, name="photo.jpg"):
  data = (open(path_or_bytes, "rb").read() if isinstance(path_or_bytes, str)
          else path_or_bytes)
  return {"file": (name, data, "application/octet-stream")}


@pytest.mark.slow
def test_predict_returns_tags_attributes_and_embedding(service):
  path = sample_image_paths(1)[0]
  response = httpx.post(f"{service.url}/predict?top_k=2&embedding=true", files=upload(path))
  assert response.status_code == 200, response.text
  body = response.json()
  assert set(body["predictions"]) == {"articleType", "gender", "subCategory", "season"}
  assert len(body["predictions"]["articleType"]) == 2
  assert len(body["embeddings"]["embedding"]) == 16
  info = httpx.get(f"{service.url}/api/info").json()
  assert {t["name"] for t in info["tasks"]} >= {"articleType", "gender"}
  assert httpx.get(f"{service.url}/openapi.json").json()["paths"].keys() >= {
      "/predict", "/similar", "/products", "/healthz"}
  docs = httpx.get(f"{service.url}/docs").text
  assert "cdn" not in docs.lower()  # Served locally: the page works offline.


@pytest.mark.slow
def test_concurrent_predict_requests_are_batched(service):
  path = sample_image_paths(1)[0]
  before = httpx.get(f"{service.url}/healthz").json()["model_calls"]
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    responses = list(pool.map(lambda _: httpx.post(f"{service.url}/predict", files=upload(path),
                                                   timeout=60), range(16)))
  assert [r.status_code for r in responses] == [200] * 16
  assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
  calls = httpx.get(f"{service.url}/healthz").json()["model_calls"] - before
  assert 1 <= calls < 16


@pytest.mark.slow
def test_similar_by_upload_and_by_id_with_filters_and_images(service):
  index = service.index
  product = index.ids[0]
  path = index.paths[0]
  body = httpx.post(f"{service.url}/similar?k=5", files=upload(path)).json()
  assert len(body["results"]) == 5 and body["results"][0]["id"] == product
  scores = [r["score"] for r in body["results"]]
  assert scores == sorted(scores, reverse=True)
  image = httpx.get(service.url + body["results"][1]["image_url"])
  assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
  by_id = httpx.post(f"{service.url}/similar", params={"id": product, "k": 5}).json()
  assert product not in [r["id"] for r in by_id["results"]]  # The query item itself.
  gender = by_id["query"]["tags"]["gender"][0]["label"]
  filtered = httpx.post(f"{service.url}/similar",
                        params={"id": product, "k": 50, "filter": f"gender={gender}"}).json()
  assert filtered["results"] and all(r["tags"]["gender"][0]["label"] == gender
                                     for r in filtered["results"])
  ranked = httpx.get(f"{service.url}/products",
                     params={"label": f"gender={gender}", "k": 5}).json()["results"]
  probabilities = [r["probability"] for r in ranked]
  assert len(ranked) == 5 and probabilities == sorted(probabilities, reverse=True)
  bad = httpx.get(f"{service.url}/products", params={"label": "gender=Robots"})
  assert bad.status_code == 400 and "not one of gender's labels" in bad.json()["detail"]
  assert httpx.post(f"{service.url}/similar", params={"id": "nope"}).status_code == 404


def png_with_size(width: int, height: int) -> bytes:
  """A valid PNG header that claims width x height (a decompression bomb's header)."""
  buffer = io.BytesIO()
  Image.new("L", (1, 1)).save(buffer, "PNG")
  data = bytearray(buffer.getvalue())
  data[16:24] = struct.pack(">II", width, height)
  data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
  return bytes(data)


@pytest.mark.slow
def test_bad_uploads_get_clear_errors_and_the_service_keeps_serving(service, tmp_path):
  url = f"{service.url}/predict"
  noise = np.random.RandomState(0).randint(0, 255, (400, 400, 3), np.uint8)
  big = io.BytesIO()
  Image.fromarray(noise).save(big, "PNG")  # ~480 KB, over the 0.25 MB limit.
  cases = {
      "too_large": (big.getvalue(), 413, "over the limit"),
      "text": (b"name,colour\nshirt,blue\n", 415, "not an image"),
      "many_pixels": (png_with_size(3000, 3000), 413, "--max_pixels"),
      "bomb": (png_with_size(60000, 60000), 413, ""),
      "truncated": (open(sample_image_paths(1)[0], "rb").read()[:3000], 400, "truncated"),
      "empty": (b"", 400, "empty upload"),
  }
  for name, (data, status, message) in cases.items():
    response = httpx.post(url, files=upload(data, f"{name}.bin"))
    assert response.status_code == status, (name, response.text)
    assert message in response.json()["detail"]
    if name != "too_large":  # Refused from its Content-Length, before the form is read.
      assert f"{name}.bin" in response.json()["detail"]
  assert httpx.post(url, files=upload(sample_image_paths(1)[0])).status_code == 200
  health = httpx.get(f"{service.url}/healthz").json()
  assert health["status"] == "ok" and health["refused"] >= len(cases)


@pytest.mark.slow
def test_images_are_served_only_from_the_catalog_root(service):
  index = service.index
  for attempt in ("../../../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                  "..%2F..%2Fsetup.cfg"):
    response = httpx.get(f"{service.url}/images/{attempt}")
    assert response.status_code == 404 and b"root:" not in response.content
  original = index.paths[1]
  index.paths[1] = os.path.join(REPO, "setup.cfg")  # A path outside the root.
  try:
    response = httpx.get(f"{service.url}/images/{index.ids[1]}")
    assert response.status_code == 403 and "outside the catalog root" in response.text
  finally:
    index.paths[1] = original


@pytest.mark.slow
def test_bounded_load_on_loopback_has_no_failed_requests(service):
  paths = sample_image_paths(4)

  def client(number):
    failures = 0
    with httpx.Client(base_url=service.url, timeout=60) as http:
      for i in range(20):
        if i % 2:
          response = http.post("/similar?k=5", files=upload(paths[(number + i) % 4]))
        else:
          response = http.post("/predict", files=upload(paths[(number + i) % 4]))
        failures += response.status_code != 200
    return failures

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    assert sum(pool.map(client, range(8))) == 0


@pytest.mark.slow
def test_serve_refuses_a_missing_model_or_damaged_index_at_start_up(exported, index_dir,
                                                                    tmp_path):
  damaged = tmp_path / "index"
  shutil.copytree(index_dir, damaged)
  (damaged / "index.json").write_text("{not json")
  for args, message in (([f"--model={tmp_path}/nope"], f"--model={tmp_path}/nope: no such"),
                        ([f"--model={exported}", f"--index={damaged}"],
                         f"{damaged}/index.json: unreadable")):
    result = subprocess.run([sys.executable, "-m", "fashion_jax", "serve", *args, "--port=1"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


# --- The web page, in a real browser ---
def chromium_driver():
  """Debian's chromium; missing: skipped here, a failure under CI=true."""
  browser = page_screenshot.open_browser()
  if browser is None:
    if os.environ.get("CI") == "true":
      pytest.fail("Chromium is not installed: .ci/run installs chromium and chromium-driver.")
    pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
  return browser


@pytest.mark.slow
def test_web_page_tags_an_upload_and_searches_in_a_real_browser(service, tmp_path):
  from selenium.webdriver.common.by import By
  browser = chromium_driver()
  try:
    wait, loaded = page_screenshot.upload_and_wait(browser, service.url, sample_image_paths(1)[0])
    tasks = {e.get_attribute("data-task")
             for e in browser.find_elements(By.CSS_SELECTOR, "#tags .tag-row")}
    assert tasks >= {"articleType", "gender"}
    browser.save_screenshot(str(tmp_path / "page.png"))

    first = browser.find_elements(By.CSS_SELECTOR, "#results .result")[1]
    clicked = first.get_attribute("data-id")
    first.click()
    wait.until(lambda b: f"similar to product {clicked}" in b.find_element(By.ID, "status").text)
    wait.until(lambda b: all(b.execute_script(loaded)) and b.execute_script(loaded))
    ids = [e.get_attribute("data-id") for e in browser.find_elements(By.CSS_SELECTOR, ".result")]
    assert clicked not in ids

    def shown(b):
      return [e.get_attribute("data-id") for e in b.find_elements(By.CSS_SELECTOR, ".result")]

    chip = browser.find_element(By.CSS_SELECTOR, '#chips .chip[data-filter^="gender="]')
    gender_filter = chip.get_attribute("data-filter")
    chip.click()
    wait.until(lambda b: f"only {gender_filter}" in b.find_element(By.ID, "status").text)
    want = httpx.post(f"{service.url}/similar", params={"id": clicked, "k": 12,
                                                        "filter": gender_filter}).json()
    assert shown(browser) == [r["id"] for r in want["results"]]
    for product_id in shown(browser):
      tags = service.index.tags(service.index.row(product_id))
      assert f"gender={tags['gender'][0]['label']}" == gender_filter

    label = f"articleType={service.index.outputs['articleType']['classes'][0]}"
    browser.find_element(By.ID, "label-input").send_keys(label)
    browser.find_element(By.CSS_SELECTOR, "#label-form button").click()
    wait.until(lambda b: f"ranked by {label}" in b.find_element(By.ID, "status").text)
    wait.until(lambda b: all(b.execute_script(loaded)))
    want = httpx.get(f"{service.url}/products", params={"label": label, "k": 12,
                                                        "filter": gender_filter}).json()
    assert shown(browser) == [r["id"] for r in want["results"]]
    browser.save_screenshot(str(tmp_path / "label.png"))
    assert os.path.getsize(tmp_path / "page.png") > 10_000
  finally:
    browser.quit()
