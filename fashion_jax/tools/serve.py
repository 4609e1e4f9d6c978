r"""Serves a model over HTTP, with a catalog index and a web page.

    python -m fashion_jax serve --model=exports/demo --index=index [--port=8000]
    python -m fashion_jax serve --model=runs/demo --catalog=dataset:products

Then open http://127.0.0.1:8000/ (drop a photo: its tags and similar catalog items),
or call the API (http://127.0.0.1:8000/docs). With --catalog (a folder of images,
split:NAME or dataset:NAME[:SPLIT] of the run's data) and no --index, the index is
built first, or reused, in <model>/serving_index. Binds to 127.0.0.1 unless --host says
otherwise. A model or index that cannot be loaded stops it at start-up, named.
"""

import os

from absl import flags

from fashion_jax import errors
from fashion_jax.evaluation import trained
from fashion_jax.tools import cli

FLAGS = flags.FLAGS


def _define_flags():
  flags.DEFINE_string("model", None, "An export folder (python -m fashion_jax export) or a "
                      "training workdir.")
  flags.DEFINE_string("index", "", "A catalog index (python -m fashion_jax index build) for "
                      "/similar, /products and the page's results.")
  flags.DEFINE_string("catalog", "", "Without --index: build (or reuse) the index of this "
                      "catalog in <model>/serving_index first.")
  flags.DEFINE_enum("backend", "onnx", ["onnx", "jax"], "How an export folder is run.")
  flags.DEFINE_string("checkpoint", "best", f"A workdir's checkpoint: "
                      f"{trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0: every interface).")
  flags.DEFINE_integer("port", 8000, "Port to listen on.")
  flags.DEFINE_float("max_upload_mb", 10.0, "Largest accepted upload (413 beyond).")
  flags.DEFINE_integer("max_pixels", 40_000_000, "Largest accepted image, width x height, "
                       "read from its header before decoding (413 beyond).")
  flags.DEFINE_integer("max_batch", 32, "Most images in one model call.")
  flags.DEFINE_float("max_wait_ms", 5.0, "How long an upload waits for others to batch with.")


def check_index(model, index, index_path: str, model_path: str) -> None:
  from fashion_jax.serving import artifact
  spec = artifact.output_specs(model.metadata).get(index.embedding_task)
  if spec is None or spec.get("dim") != index.vectors.shape[1]:
    raise errors.ConfigError(
        f"--index={index_path} holds {index.vectors.shape[1]}-d '{index.embedding_task}' "
        f"embeddings, which --model={model_path} does not make; build the index with this "
        "model.")


def load(model_path: str, index_path: str = "", backend: str = "onnx",
         checkpoint: str = "best", catalog: str = ""):
  """(model, index or None), checked against each other; ConfigError names what failed.
  With `catalog` and no `index_path`, the index is built (or reused) first."""
  from fashion_jax.serving import catalog_index, index_build, runtimes
  model = runtimes.load_model(model_path, backend, checkpoint)
  if catalog and not index_path:
    index_path = os.path.join(model_path, "serving_index")
    table = index_build.read_catalog(catalog, model.metadata["source"]["workdir"])
    index_build.build(model, table, index_path, catalog=catalog, model_path=model_path)
  index = catalog_index.CatalogIndex.load(index_path) if index_path else None
  if index is not None:
    check_index(model, index, index_path, model_path)
  return model, index


def main(argv):
  del argv
  import uvicorn
  from fashion_jax.serving import app as app_lib
  model, index = load(FLAGS.model, FLAGS.index, FLAGS.backend, FLAGS.checkpoint, FLAGS.catalog)
  app = app_lib.create_app(model, index, max_upload_mb=FLAGS.max_upload_mb,
                           max_pixels=FLAGS.max_pixels, max_batch=FLAGS.max_batch,
                           max_wait_ms=FLAGS.max_wait_ms)
  print(f"Serving {FLAGS.model}" + (f" with {len(index)} products" if index else "")
        + f" on http://{FLAGS.host}:{FLAGS.port}/", flush=True)
  uvicorn.run(app, host=FLAGS.host, port=FLAGS.port, log_level="warning")
  return 0


def run():
  cli.run(main, _define_flags, required=["model"])


if __name__ == "__main__":
  run()
