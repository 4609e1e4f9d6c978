"""The HTTP service: tags uploads, finds similar catalog items, searches by label, and
serves its web page (static/), all from one process.

  POST /predict           image upload -> per task its top classes with probabilities,
                          attributes above their thresholds (?embedding=true: vectors)
  POST /similar           image upload or ?id=<product> -> the k nearest products that
                          pass ?filter=task=value (repeatable), with scores and image URLs
  GET  /products          ?label=task=value ranks products by that probability; filters
  GET  /products/{id}     one product: predicted tags and catalog labels
  GET  /images/{id}       a product's image (only files under the catalog root)
  GET  /api/info          the model's tasks and labels (the page's filters and label box)
  GET  /healthz           status with counters of requests, model calls and images
  GET  /docs              OpenAPI documentation (assets served locally)

Concurrent requests are batched: uploads wait up to `max_wait_ms` for others and go
through the model together, one call at a time on a worker thread.
"""

import asyncio
import collections
import concurrent.futures
import os
import time
import urllib.parse

import numpy as np
from fastapi import File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from fashion_jax.serving import artifact, outputs, uploads

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


class Batcher:
  """Collects images from concurrent requests into single model calls."""

  def __init__(self, model, max_batch: int = 32, max_wait_ms: float = 5.0):
    self.model = model
    self.max_batch = max_batch
    self.max_wait = max_wait_ms / 1000
    self.queue: asyncio.Queue | None = None
    self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")
    self.calls = 0
    self.images = 0
    self.task = None

  def start(self) -> None:
    self.queue = asyncio.Queue()
    self.task = asyncio.get_running_loop().create_task(self._loop())

  async def stop(self) -> None:
    if self.task:
      self.task.cancel()
    self.worker.shutdown(wait=False)

  async def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
    future = asyncio.get_running_loop().create_future()
    await self.queue.put((image, future))
    return await future

  async def _loop(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      batch = [await self.queue.get()]
      deadline = loop.time() + self.max_wait
      while len(batch) < self.max_batch:
        remaining = deadline - loop.time()
        try:
          batch.append(self.queue.get_nowait() if remaining <= 0
                       else await asyncio.wait_for(self.queue.get(), remaining))
        except (asyncio.QueueEmpty, asyncio.TimeoutError):
          break
      images = np.stack([image for image, _ in batch]).astype(np.float32)
      self.calls += 1
      self.images += len(batch)
      try:
        values = await loop.run_in_executor(self.worker, self.model, images)
      except Exception as e:  # A model failure fails these requests, not the service.
        for _, future in batch:
          if not future.done():
            future.set_exception(e)
        continue
      for i, (_, future) in enumerate(batch):
        if not future.done():
          future.set_result({name: value[i] for name, value in values.items()})


def _error(status: int, message: str) -> HTTPException:
  return HTTPException(status_code=status, detail=message)


def create_app(model, index=None, *, max_upload_mb: float = 10.0,
               max_pixels: int = 40_000_000, max_batch: int = 32,
               max_wait_ms: float = 5.0):
  """The FastAPI app serving `model` (serving.runtimes.Model) and, if given, `index`
  (a CatalogIndex built with the same model's embeddings)."""
  metadata = model.metadata
  specs = artifact.output_specs(metadata)
  size = artifact.image_size(metadata)
  max_bytes = int(max_upload_mb * 1024 * 1024)
  batcher = Batcher(model, max_batch, max_wait_ms)
  counters = collections.Counter()
  started = time.time()

  async def lifespan(_app):
    batcher.start()
    yield
    await batcher.stop()

  app = FastAPIOffline(title="fashion_jax", lifespan=lifespan,
                       description="Tags product photos, finds similar catalog items and "
                                   "searches the catalog by label.")
  app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

  @app.middleware("http")
  async def count_and_limit(request: Request, call_next):
    counters["requests"] += 1
    length = request.headers.get("content-length")
    if request.method == "POST" and length and length.isdigit():
      try:
        uploads.check_size(int(length), max_bytes + 64 * 1024)  # Multipart framing.
      except uploads.UploadError as e:
        counters["refused"] += 1
        return JSONResponse({"detail": str(e)}, status_code=e.status)
    return await call_next(request)

  async def read_upload(file: UploadFile) -> np.ndarray:
    data = await file.read(max_bytes + 1)
    try:
      return uploads.read_image(data, size, max_bytes, max_pixels)
    except uploads.UploadError as e:
      counters["refused"] += 1
      raise _error(e.status, f"{file.filename or 'upload'}: {e}") from e

  def need_index():
    if index is None:
      raise _error(404, "no catalog index: start the service with --index=INDEX")
    return index

  def product_summary(row: int, score: float, key: str = "score") -> dict:
    product_id = index.ids[row]
    return {"id": product_id, key: round(score, 6),
            "image_url": "/images/" + urllib.parse.quote(product_id, safe=""),
            "tags": index.tags(row)}

  def search(run, *args):
    try:
      return run(*args)
    except ValueError as e:  # A bad filter or label, named by the index.
      raise _error(400, str(e)) from e

  @app.get("/", include_in_schema=False)
  async def page():
    return FileResponse(os.path.join(STATIC_DIR, "index.html"))

  @app.get("/healthz")
  async def healthz():
    return {"status": "ok", "uptime_s": round(time.time() - started, 1),
            "requests": counters["requests"], "refused": counters["refused"],
            "model_calls": batcher.calls, "images": batcher.images,
            "products": 0 if index is None else len(index),
            "model": metadata["source"]}

  @app.get("/api/info")
  async def info():
    return {"image_size": size,
            "tasks": [{"name": name, "form": spec["form"], "labels": spec.get("classes", [])}
                      for name, spec in specs.items()],
            "products": 0 if index is None else len(index),
            "catalog_columns": [] if index is None else sorted(index.catalog_labels)}

  @app.post("/predict")
  async def predict(file: UploadFile = File(...), top_k: int = Query(3, ge=1, le=100),
                    embedding: bool = False):
    values = await batcher(await read_upload(file))
    line = {}
    for name, spec in specs.items():
      for section, value in outputs.fields(spec, values[name], top_k, embedding).items():
        line.setdefault(section, {})[name] = value
    return line

  @app.post("/similar")
  async def similar(file: UploadFile | None = File(None), id: str | None = None,
                    k: int = Query(10, ge=1, le=1000), filter: list[str] = Query([])):
    catalog = need_index()
    if (file is None) == (id is None):
      raise _error(400, "send an image in the 'file' field or a product ?id=, not both")
    if file is not None:
      values = await batcher(await read_upload(file))
      vector, exclude = values[catalog.embedding_task], None
      query = {"predictions": {name: outputs.fields(spec, values[name], 3, False)
                               ["predictions"] for name, spec in specs.items()
                               if spec["form"] in ("classes", "attributes")}}
    else:
      try:
        exclude = catalog.row(id)
      except KeyError as e:
        raise _error(404, f"no product with id {id!r} in the index") from e
      vector = catalog.vectors[exclude]
      query = {"id": id, **catalog.product(exclude),
               "image_url": "/images/" + urllib.parse.quote(id, safe="")}
    hits = search(catalog.similar, vector[None], k, filter, exclude)[0]
    return {"query": query, "results": [product_summary(r, s) for r, s in hits]}

  @app.get("/products")
  async def products(label: str | None = None, filter: list[str] = Query([]),
                     k: int = Query(24, ge=1, le=1000)):
    catalog = need_index()
    if label:
      task, sep, value = label.partition("=")
      if not sep:
        raise _error(400, f"label={label!r}: expected task=value, e.g. articleType=Shirts")
      hits = search(catalog.by_label, task, value, k, filter)
      return {"label": label, "results": [product_summary(r, s, "probability")
                                          for r, s in hits]}
    mask = search(catalog.filter_mask, filter)
    rows = np.arange(len(catalog)) if mask is None else np.flatnonzero(mask)
    return {"label": None, "results": [product_summary(int(r), 1.0) for r in rows[:k]]}

  @app.get("/products/{product_id:path}")
  async def product(product_id: str):
    catalog = need_index()
    try:
      return catalog.product(catalog.row(product_id))
    except KeyError as e:
      raise _error(404, f"no product with id {product_id!r} in the index") from e

  @app.get("/images/{product_id:path}", include_in_schema=False)
  async def image(product_id: str):
    catalog = need_index()
    try:
      path = catalog.image_path(catalog.row(product_id))
    except KeyError as e:
      raise _error(404, f"no product with id {product_id!r} in the index") from e
    except PermissionError as e:
      raise _error(403, str(e)) from e
    if not os.path.isfile(path):
      raise _error(404, f"product {product_id!r}: its image file is gone")
    return FileResponse(path)

  @app.get("/favicon.ico", include_in_schema=False)
  async def favicon():
    return RedirectResponse("/static/favicon.svg")

  app.state.batcher = batcher
  return app
