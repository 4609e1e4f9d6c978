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

from absl import flags

from fashion_jax import errors
from fashion_jax.evaluation import trained
from fashion_jax.serving import visual_search
from fashion_jax.tools import cli

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


def main(argv):
  commands = ("index", "query")
  if len(argv) < 2 or argv[1] not in commands:
    raise errors.ConfigError(f"the first argument must be one of {commands}.")
  if argv[1] == "index":
    if not FLAGS.workdir or not FLAGS.images:
      raise errors.ConfigError("index needs --workdir and --images.")
    print(json.dumps(visual_search.build_index(FLAGS.workdir, FLAGS.images, FLAGS.out, FLAGS.task,
                                 FLAGS.checkpoint, FLAGS.batch_size)))
  else:
    if not FLAGS.index or len(argv) < 3:
      raise errors.ConfigError("query needs --index and at least one image or folder.")
    for line in visual_search.query(FLAGS.index, argv[2:], FLAGS.k, FLAGS.workdir or "", FLAGS.sheet,
                      FLAGS.batch_size, FLAGS.filter):
      print(json.dumps(line))
  return 0


def run():
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
