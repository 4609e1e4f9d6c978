r"""The catalog index: build it, look into it, search it by label, score label search.

    python -m fashion_jax index build --model=exports/demo --catalog=catalog_photos/ --out=index
    python -m fashion_jax index build --workdir=runs/demo --catalog=split:test --out=index_test
    python -m fashion_jax index info --index=index
    python -m fashion_jax index label --index=index --label=articleType=Tshirts \
        [--filter=gender=Men] [--k=10]
    python -m fashion_jax index label_benchmark --index=index_test

`build` runs the model (an export folder, run by ONNX Runtime, or a training workdir)
over every product of the catalog (a folder of images, or split:NAME /
dataset:NAME[:SPLIT] of the run's data, whose labels become catalog.<column> filters)
and writes embeddings, predictions and the FAISS index; it resumes where it stopped
(rerun the same command) and splits the work between processes with --workers/--worker.
`label_benchmark` scores label search (precision@1, @10, MRR, macro over labels)
against the catalog's own labels.
"""

import json

from absl import flags

from fashion_jax import errors
from fashion_jax.evaluation import trained
from fashion_jax.tools import cli

FLAGS = flags.FLAGS
COMMANDS = ("build", "info", "label", "label_benchmark")


def _define_flags():
  flags.DEFINE_string("model", None, "build: an export folder or a training workdir.")
  flags.DEFINE_string("workdir", None, "build: a training workdir (the model, and the data "
                      "for split:NAME catalogs).")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_enum("backend", "onnx", ["onnx", "jax"], "How an export folder is run.")
  flags.DEFINE_string("catalog", None, "build: a folder of images, split:NAME or "
                      "dataset:NAME[:SPLIT].")
  flags.DEFINE_string("out", None, "build: the index folder.")
  flags.DEFINE_string("task", "", "build: the embedding task; default: the first one.")
  flags.DEFINE_integer("batch_size", 64, "build: images per model call.")
  flags.DEFINE_integer("shard_size", 4096, "build: products per shard file.")
  flags.DEFINE_integer("workers", 1, "build: processes sharing the catalog.")
  flags.DEFINE_integer("worker", 0, "build: this process's number, 0..workers-1.")
  flags.DEFINE_integer("exact_max", 100_000, "Up to this many products: exact search; "
                       "beyond: HNSW.")
  flags.DEFINE_string("index", None, "info/label/label_benchmark: the index folder.")
  flags.DEFINE_string("label", None, "label: task=value, the label to rank products by.")
  flags.DEFINE_multi_string("filter", [], "label: task=value or catalog.column=value; "
                            "repeatable.")
  flags.DEFINE_integer("k", 10, "label: products to list.")


def _build():
  from fashion_jax.serving import artifact, catalog_index, index_build, runtimes
  path = FLAGS.model or FLAGS.workdir
  if not path or not FLAGS.catalog or not FLAGS.out:
    raise errors.ConfigError("build needs --model (or --workdir), --catalog and --out.")
  model = runtimes.load_model(path, FLAGS.backend, FLAGS.checkpoint)
  workdir = FLAGS.workdir or (path if not artifact.is_export(path)
                              else model.metadata["source"]["workdir"])
  table = index_build.read_catalog(FLAGS.catalog, workdir)
  manifest = index_build.build(
      model, table, FLAGS.out, catalog=FLAGS.catalog, model_path=path,
      embedding_task=FLAGS.task, batch_size=FLAGS.batch_size, shard_size=FLAGS.shard_size,
      workers=FLAGS.workers, worker=FLAGS.worker,
      settings=catalog_index.SearchSettings(exact_max=FLAGS.exact_max))
  return {k: manifest.get(k) for k in ("count", "indexed", "done", "complete",
                                       "embedding_task")} | {"index": FLAGS.out}


def _load():
  from fashion_jax.serving import catalog_index
  if not FLAGS.index:
    raise errors.ConfigError("name the index with --index.")
  return catalog_index.CatalogIndex.load(
      FLAGS.index, catalog_index.SearchSettings(exact_max=FLAGS.exact_max))


def main(argv):
  if len(argv) < 2 or argv[1] not in COMMANDS:
    raise errors.ConfigError(f"the first argument must be one of {COMMANDS}.")
  command = argv[1]
  if command == "build":
    print(json.dumps(_build()))
    return 0
  index = _load()
  if command == "info":
    m = index.manifest
    print(json.dumps({"products": len(index), "catalog": m["catalog"], "model": m["model_path"],
                      "embedding_task": index.embedding_task, "dim": index.vectors.shape[1],
                      "vector_index": type(index.vector_index).__name__,
                      "filters": sorted(index.scores) + [f"catalog.{c}" for c in
                                                         sorted(index.catalog_labels)],
                      "image_root": index.root}))
  elif command == "label":
    task, sep, value = (FLAGS.label or "").partition("=")
    if not sep:
      raise errors.ConfigError("label needs --label=task=value.")
    try:
      hits = index.by_label(task, value, FLAGS.k, FLAGS.filter)
    except ValueError as e:
      raise errors.ConfigError(str(e)) from e
    for row, probability in hits:
      print(json.dumps({"id": index.ids[row], "image": index.paths[row],
                        "probability": round(probability, 6)}))
  else:
    from fashion_jax.serving import label_search
    print(json.dumps(label_search.all_scores(index)))
  return 0


def run():
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
