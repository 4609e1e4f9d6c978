"""Builds a catalog index (serving/catalog_index.py): a model run over every product.

The catalog is a folder of images (searched recursively; a product's id is its path
under the folder, without extension) or `split:NAME` / `dataset:NAME[:SPLIT]`, a split
of a training run's configured data, whose label columns become catalog labels
(`catalog.<column>` filters, and the ground truth of label-search benchmarks).

Products go through the model in batches and are written in shards of `shard_size`;
each shard is written atomically, so a build that stops resumes at the first missing
shard. `workers`/`worker` split the shards between processes (each writes its own;
whichever finds them all present writes the FAISS index and marks the index complete).
"""

import os

import numpy as np
from tqdm import tqdm

from fashion_jax.data import transforms
from fashion_jax.data.table import FileImages, Table
from fashion_jax.errors import ConfigError
from fashion_jax.serving import artifact, catalog_index
from fashion_jax.serving.catalog_index import MANIFEST, SHARDS, VECTORS

_IMAGE_SUFFIX = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"GI": ".gif", b"RI": ".webp"}


def folder_table(folder: str) -> Table:
  from fashion_jax.data.catalog import IMAGE_EXTENSIONS
  paths = []
  for root, _, names in sorted(os.walk(folder)):
    paths += [os.path.join(root, n) for n in sorted(names)
              if n.lower().endswith(IMAGE_EXTENSIONS)]
  if not paths:
    raise ConfigError(f"--catalog={folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it.")
  ids = [os.path.splitext(os.path.relpath(p, folder))[0] for p in paths]
  return Table(images=FileImages([os.path.abspath(p) for p in paths]),
               rows=np.arange(len(paths)), ids=np.asarray(ids, dtype=object), columns={})


def split_table(workdir: str, spec: str) -> Table:
  """`split:NAME` (the run's only dataset) or `dataset:NAME[:SPLIT]` (default: all rows)."""
  from fashion_jax import tasks as tasks_lib
  from fashion_jax import workdir as workdir_lib
  from fashion_jax.data import labelled
  config = workdir_lib.read_config(workdir)
  kind, _, rest = spec.partition(":")
  names = list(config.datasets)
  if kind == "split":
    if len(names) != 1:
      raise ConfigError(f"--catalog={spec}: {workdir} has datasets {names}; name one with "
                        "dataset:NAME:SPLIT.")
    dataset, split = names[0], rest
  else:
    dataset, _, split = rest.partition(":")
    split = split or "all"
    if dataset not in names:
      raise ConfigError(f"--catalog={spec}: {workdir} was trained on {names}.")
  if split not in ("train", "val", "test", "all"):
    raise ConfigError(f"--catalog={spec}: the split must be train, val, test or all.")
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  return labelled.read_split_table(config, tasks, dataset, split)[0]


def read_catalog(catalog: str, workdir: str = "") -> Table:
  if catalog.startswith(("split:", "dataset:")):
    if not workdir:
      raise ConfigError(f"--catalog={catalog}: a split of a run's data needs the run (--workdir, "
                        "or a model exported from one).")
    return split_table(workdir, catalog)
  if not os.path.isdir(catalog):
    raise ConfigError(f"--catalog={catalog}: no such folder (a folder of images, split:NAME "
                      "or dataset:NAME[:SPLIT]).")
  return folder_table(catalog)


def _image_file(table: Table, row: int, out: str) -> str:
  """Where the server finds product `row`'s image: its own file when it has one, else a
  copy under the index (images read from hubs, ArrayRecord or TFDS)."""
  if isinstance(table.images, FileImages):
    return table.images.paths[int(table.rows[row])]
  data = table.image(row)
  path = os.path.join(out, "images", f"{row}{_IMAGE_SUFFIX.get(data[:2], '.img')}")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return path


def _image_root(table: Table, out: str) -> str:
  if isinstance(table.images, FileImages) and len(table):
    return os.path.commonpath([os.path.dirname(table.images.paths[int(r)]) for r in table.rows])
  return os.path.join(os.path.abspath(out), "images")


def _write_shard(model, table: Table, rows: np.ndarray, out: str, shard: int,
                 batch_size: int, embedding: str, progress) -> int:
  """Runs the model over `rows`; returns how many images could not be read (skipped)."""
  metadata = model.metadata
  specs = artifact.output_specs(metadata)
  kept, outputs, failed = [], {name: [] for name in specs}, 0
  size = artifact.image_size(metadata)
  for chunk, images, errors in transforms.decoded_batches(rows, lambda r: table.image(int(r)),
                                                          size, batch_size):
    readable = [int(r) for r, error in zip(chunk, errors) if error is None]
    for row, error in zip(chunk, errors):
      if error is not None:
        failed += 1
        tqdm.write(f"warning: skipping {table.images.describe(int(table.rows[row]))}: {error}")
    if readable:
      values = model(np.stack([i for i in images if i is not None]).astype(np.float32))
      for name in specs:
        outputs[name].append(values[name])
      kept += readable
    progress.update(len(chunk))
  kept = np.asarray(kept, np.int64)
  arrays = {"ids": np.asarray([str(table.ids[r]) for r in kept]),
            "paths": np.asarray([_image_file(table, r, out) for r in kept])}
  for name, spec in specs.items():
    width = spec.get("dim") or len(spec.get("classes", ())) or 1
    stacked = (np.concatenate(outputs[name]) if outputs[name]
               else np.zeros((0, width), np.float32))
    arrays["embeddings" if name == embedding else f"out/{name}"] = stacked
  for column, values in table.columns.items():
    arrays[f"label/{column}"] = np.asarray([str(values[r]) for r in kept])
  path = catalog_index.shard_path(out, shard)
  tmp = path + ".tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, path)
  return failed


def catalog_index_embedding_task(metadata: dict, name: str = "") -> str:
  embeddings = [o["name"] for o in metadata["outputs"] if o["form"] == "embedding"]
  if not embeddings:
    raise ConfigError("The model has no embedding task: a catalog index searches embeddings.")
  if name and name not in embeddings:
    raise ConfigError(f"--task={name!r}: the model's embedding tasks are {embeddings}.")
  return name or embeddings[0]


def build(model, table: Table, out: str, *, catalog: str, model_path: str,
          embedding_task: str = "", batch_size: int = 64, shard_size: int = 4096,
          workers: int = 1, worker: int = 0,
          settings: catalog_index.SearchSettings | None = None) -> dict:
  """Writes (or resumes) the index at `out`; returns its manifest."""
  if not 0 <= worker < workers:
    raise ConfigError(f"--worker={worker}: expected 0 <= worker < --workers={workers}.")
  settings = settings or catalog_index.SearchSettings()
  metadata = model.metadata
  # Only the embedding task's vectors are searched; the others' outputs are kept too.
  task = catalog_index_embedding_task(metadata, embedding_task)
  outputs = [o for o in metadata["outputs"] if o["form"] != "embedding" or o["name"] == task]
  model_info = {**metadata, "outputs": outputs}
  count = len(table)
  shards = max(1, -(-count // shard_size))
  manifest = {"format": catalog_index.FORMAT, "version": catalog_index.VERSION,
              "catalog": catalog, "model_path": os.path.abspath(model_path),
              "model": model_info, "embedding_task": task, "count": count,
              "shard_size": shard_size, "shards": shards,
              "image_root": _image_root(table, out), "complete": False}
  manifest_path = os.path.join(out, MANIFEST)
  if os.path.exists(manifest_path):
    previous = catalog_index.read_manifest(out)
    same = {k: previous.get(k) for k in ("catalog", "model", "count", "shard_size")} == \
        {k: manifest[k] for k in ("catalog", "model", "count", "shard_size")}
    if not same:
      raise ConfigError(f"--out={out} holds an index of another model or catalog; choose "
                        "another folder, or delete it to rebuild (nothing was changed).")
    if previous.get("complete"):
      return previous
  elif os.path.exists(out) and os.listdir(out):
    raise ConfigError(f"--out={out} exists and is not a catalog index; choose another folder.")
  os.makedirs(os.path.join(out, SHARDS), exist_ok=True)
  if worker == 0 and not os.path.exists(manifest_path):
    catalog_index.write_json_atomic(manifest_path, manifest)
  mine = [s for s in range(shards) if s % workers == worker
          and not os.path.exists(catalog_index.shard_path(out, s))]
  failed = 0
  with tqdm(total=sum(min(shard_size, count - s * shard_size) for s in mine),
            desc=f"indexing {catalog}", unit="img", disable=None) as progress:
    for shard in mine:
      rows = np.arange(shard * shard_size, min(count, (shard + 1) * shard_size))
      failed += _write_shard(model, table, rows, out, shard, batch_size, task, progress)
  missing = [s for s in range(shards) if not os.path.exists(catalog_index.shard_path(out, s))]
  manifest["done"] = count - sum(min(shard_size, count - s * shard_size) for s in missing)
  if missing:  # Other workers' shards are still to come.
    return manifest
  manifest.update(complete=True, done=count)
  manifest["failed_this_run"] = failed
  # A loaded CatalogIndex builds the vector index when the file is missing; one left by an
  # earlier build may not match the shards any more.
  vectors_path = os.path.join(out, VECTORS)
  if os.path.exists(vectors_path):
    os.remove(vectors_path)
  catalog_index.write_json_atomic(manifest_path, manifest)
  loaded = catalog_index.CatalogIndex.load(out, settings)
  _write_vector_index(loaded, out)
  manifest["indexed"] = len(loaded)
  catalog_index.write_json_atomic(manifest_path, manifest)
  return manifest


def _write_vector_index(loaded, out: str) -> None:
  tmp = os.path.join(out, VECTORS + ".tmp")
  catalog_index.import_faiss().write_index(loaded.vector_index, tmp)
  os.replace(tmp, os.path.join(out, VECTORS))

