r"""Visual search: index a folder of product images, then find the items most like a photo.

    python -m fashion_jax search index --workdir=runs/demo --images=catalog/ --out=gallery
    python -m fashion_jax search query --index=gallery photo.jpg [--k=10] [--sheet=out.png] \
        [--filter=articleType=Tshirts]

`index` builds a catalog index (serving/catalog_index.py: FAISS over the embeddings of
an embedding task, the first one or --task, with every head's predictions for
filters); `python -m fashion_jax index build` is the same with more choices. A query
prints one JSON line per query image: {"query", "results": [{"id", "image", "score"}]},
scores being cosine similarities, best first; --sheet also draws them.
"""

import json
import sys

import numpy as np
from absl import flags

from fashion_jax.tools import cli
from fashion_jax import errors
from fashion_jax.evaluation import plots, trained
from fashion_jax.data import transforms
from fashion_jax.serving import artifact

FLAGS = flags.FLAGS


def _define_flags():
  """Defined when run as a command, so the tools can be imported together."""
  flags.DEFINE_string("workdir", None, "index: the training workdir (query: overrides the "
                      "index's own model).")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_string("task", "", "The embedding task; default: the first one.")
  flags.DEFINE_string("images", None, "index: the gallery folder (searched recursively).")
  flags.DEFINE_string("out", "gallery", "index: the index folder to write.")
  flags.DEFINE_string("index", None, "query: an index written by 'index'.")
  flags.DEFINE_integer("k", 10, "query: results per image.")
  flags.DEFINE_multi_string("filter", [], "query: keep products whose prediction (task=value)"
                            " or catalog label (catalog.column=value) matches; repeatable.")
  flags.DEFINE_string("sheet", "", "query: also write a PNG contact sheet here.")
  flags.DEFINE_integer("batch_size", 32, "Images per model call.")


def build_index(workdir: str, images: str, out: str, task_name: str = "",
                checkpoint: str = "best", batch_size: int = 32) -> dict:
  from fashion_jax.serving import export, index_build
  model = export.LiveModel(workdir, checkpoint)
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
  from fashion_jax.serving import export, models
  if workdir:
    return export.LiveModel(workdir, str(index.manifest["model"]["source"]["checkpoint_step"]))
  path = index.manifest["model_path"]
  if artifact.is_export(path):
    return models.load_model(path)
  return export.LiveModel(path, str(index.manifest["model"]["source"]["checkpoint_step"]))


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


def main(argv):
  commands = ("index", "query")
  if len(argv) < 2 or argv[1] not in commands:
    raise errors.ConfigError(f"the first argument must be one of {commands}.")
  if argv[1] == "index":
    if not FLAGS.workdir or not FLAGS.images:
      raise errors.ConfigError("index needs --workdir and --images.")
    print(json.dumps(build_index(FLAGS.workdir, FLAGS.images, FLAGS.out, FLAGS.task,
                                 FLAGS.checkpoint, FLAGS.batch_size)))
  else:
    if not FLAGS.index or len(argv) < 3:
      raise errors.ConfigError("query needs --index and at least one image or folder.")
    for line in query(FLAGS.index, argv[2:], FLAGS.k, FLAGS.workdir or "", FLAGS.sheet,
                      FLAGS.batch_size, FLAGS.filter):
      print(json.dumps(line))
  return 0


def run():
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
