"""Visual search over a folder of product photos: index them with a training run's
embedding task, then find the items most like a query photo (the search command,
tools/search.py). The index is a catalog index (serving/catalog_index.py)."""

import sys

import numpy as np

from fashion_jax import errors
from fashion_jax.data import transforms
from fashion_jax.evaluation import plots, trained
from fashion_jax.serving import artifact


def build_index(workdir: str, images: str, out: str, task_name: str = "",
                checkpoint: str = "best", batch_size: int = 32) -> dict:
  from fashion_jax.serving import index_build, runtimes
  model = runtimes.LiveModel(workdir, checkpoint)
  manifest = index_build.build(model, index_build.folder_table(images), out, catalog=images,
                               model_path=workdir, embedding_task=task_name,
                               batch_size=batch_size)
  dim = next(o["dim"] for o in manifest["model"]["outputs"]
             if o["name"] == manifest["embedding_task"])
  return {"index": out, "images": manifest["indexed"], "dim": dim,
          "task": manifest["embedding_task"], "workdir": model.run.workdir,
          "checkpoint_step": model.run.step}


def index_model(index, workdir: str = ""):
  """The model that built `index` (its workdir at the same step, or its export), or the
  model of `workdir` instead."""
  from fashion_jax.serving import runtimes
  if workdir:
    return runtimes.LiveModel(workdir, str(index.manifest["model"]["source"]["checkpoint_step"]))
  path = index.manifest["model_path"]
  if artifact.is_export(path):
    return runtimes.load_model(path)
  return runtimes.LiveModel(path, str(index.manifest["model"]["source"]["checkpoint_step"]))


def embed_files(model, paths, task: str, batch_size: int = 32):
  """Embeddings of the readable images among `paths` (unreadable ones are logged)."""
  vectors, kept = [], []
  size = artifact.image_size(model.metadata)
  for chunk, images, failures in transforms.decoded_batches(paths, transforms.read_file, size,
                                                            batch_size):
    for path, error in zip(chunk, failures):
      if error is not None:
        print(f"warning: skipping {path}: {error}", file=sys.stderr)
    readable = [image for image in images if image is not None]
    if readable:
      vectors.append(model(np.stack(readable).astype(np.float32))[task])
      kept += [path for path, error in zip(chunk, failures) if error is None]
  if not vectors:
    raise errors.DataError("None of the images could be read.")
  return np.concatenate(vectors), kept


def query(index_path: str, images, k: int = 10, workdir: str = "", sheet: str = "",
          batch_size: int = 32, filters=()) -> list[dict]:
  from fashion_jax.serving import catalog_index
  index = catalog_index.CatalogIndex.load(index_path)
  model = index_model(index, workdir)
  task = index.embedding_task
  vectors, paths = embed_files(model, trained.list_images(images), task, batch_size)
  if vectors.shape[1] != index.vectors.shape[1]:
    raise errors.ConfigError(f"{index_path} holds {index.vectors.shape[1]}-d embeddings "
                             f"but the model's '{task}' makes {vectors.shape[1]}-d.")
  try:
    found = index.similar(vectors, k, filters)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from e
  results = [{"query": path, "results": [{"id": index.ids[row], "image": index.paths[row],
                                          "score": round(score, 6)} for row, score in hits]}
             for path, hits in zip(paths, found)]
  if sheet:
    size = artifact.image_size(model.metadata)

    def load(path):
      return transforms.decode_image(transforms.read_file(path), size)

    rows = [(load(r["query"]), "query", [(load(x["image"]), f"{x['score']:.3f}")
                                         for x in r["results"]]) for r in results]
    plots.contact_sheet(sheet, rows, f"{k} most similar in {index_path}")
  return results
