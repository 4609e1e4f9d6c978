r"""Visual search: index a folder of product images, then find the items most like a photo.

    python -m fashion_jax.search index --workdir=runs/demo --images=catalog/ --out=gallery.npz
    python -m fashion_jax.search query --index=gallery.npz photo.jpg [--k=10] [--sheet=out.png]

The index holds the unit-norm embeddings of an embedding task (the first one, or
--task) with the image paths and the workdir/checkpoint that made them. A query
prints one JSON line per query image: {"query", "results": [{"image", "score"}]},
scores being cosine similarities, best first; --sheet also draws them.
"""

import json
import os
import sys

import numpy as np
from absl import flags

from fashion_jax.tools import cli
from fashion_jax import errors, metrics, plots, trained
from fashion_jax.data import transforms

FLAGS = flags.FLAGS


def _define_flags():
  """Defined when run as a command, so the tools can be imported together."""
  flags.DEFINE_string("workdir", None, "index: the training workdir (query: overrides the "
                      "index's own).")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_string("task", "", "The embedding task; default: the first one.")
  flags.DEFINE_string("images", None, "index: the gallery folder (searched recursively).")
  flags.DEFINE_string("out", "gallery.npz", "index: where to write the index.")
  flags.DEFINE_string("index", None, "query: an index written by 'index'.")
  flags.DEFINE_integer("k", 10, "query: results per image.")
  flags.DEFINE_string("sheet", "", "query: also write a PNG contact sheet here.")
  flags.DEFINE_integer("batch_size", 32, "Images per model call.")


def _embedding_task(run, name: str):
  embeddings = [t for t in run.tasks if t.spec.embeds]
  if not embeddings:
    raise errors.ConfigError(f"{run.workdir} has no embedding task to search with.")
  return run.task(name) if name else embeddings[0]


def embed(run, task, paths, batch_size: int = 32) -> tuple[np.ndarray, list[str]]:
  """Embeddings of the readable images among `paths` (unreadable ones are logged)."""
  vectors, kept = [], []
  for path, outputs, error in trained.predict_files(run, paths, batch_size):
    if error:
      print(f"warning: skipping {path}: {error}", file=sys.stderr)
      continue
    vectors.append(outputs[task.name])
    kept.append(path)
  if not vectors:
    raise errors.DataError("None of the images could be read.")
  return np.stack(vectors).astype(np.float32), kept


def build_index(workdir: str, images: str, out: str, task_name: str = "",
                checkpoint: str = "best", batch_size: int = 32) -> dict:
  run = trained.load(workdir, checkpoint)
  task = _embedding_task(run, task_name)
  vectors, paths = embed(run, task, trained.list_images([images]), batch_size)
  np.savez(out, embeddings=vectors, paths=np.asarray([os.path.abspath(p) for p in paths]),
           workdir=run.workdir, task=task.name, step=run.step)
  return {"index": out, "images": len(paths), "dim": int(vectors.shape[1]), "task": task.name,
          "workdir": run.workdir, "checkpoint_step": run.step}


def load_index(path: str) -> dict:
  try:
    with np.load(path) as f:
      index = {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise errors.DataError(f"--index={path}: not an index written by 'search index' ({e}).") \
        from e
  missing = {"embeddings", "paths", "workdir", "task", "step"} - set(index)
  if missing:
    raise errors.DataError(f"--index={path}: not a search index (no {sorted(missing)}).")
  return index


def query(index_path: str, images, k: int = 10, workdir: str = "", sheet: str = "",
          batch_size: int = 32) -> list[dict]:
  index = load_index(index_path)
  run = trained.load(workdir or str(index["workdir"]), str(int(index["step"])))
  task = run.task(str(index["task"]))
  vectors, paths = embed(run, task, trained.list_images(images), batch_size)
  if vectors.shape[1] != index["embeddings"].shape[1]:
    raise errors.ConfigError(f"{index_path} holds {index['embeddings'].shape[1]}-d embeddings "
                             f"but {run.workdir}'s '{task.name}' makes {vectors.shape[1]}-d.")
  scores, nearest = metrics.cosine_top_k(vectors, index["embeddings"], k)
  gallery = index["paths"]
  results = [{"query": path, "results": [{"image": str(gallery[j]), "score": round(float(s), 6)}
                                         for s, j in zip(row_scores, row)]}
             for path, row_scores, row in zip(paths, scores, nearest)]
  if sheet:
    size = run.config.data.image_size

    def load(path):
      with open(path, "rb") as f:
        return transforms.decode_image(f.read(), size)

    rows = [(load(r["query"]), "query", [(load(x["image"]), f"{x['score']:.3f}")
                                         for x in r["results"]]) for r in results]
    plots.contact_sheet(sheet, rows, f"{k} most similar in {os.path.basename(index_path)}")
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
                      FLAGS.batch_size):
      print(json.dumps(line))
  return 0


def run():
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
