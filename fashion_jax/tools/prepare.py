r"""Packs one configured dataset into ArrayRecord shards (see fashion_jax/data/packed.py).

    python -m fashion_jax prepare --config=configs/mtl.py --dataset=products \
        --config.datasets.products.root=/data/fashion-product-images --out=/data/packed/products
    python -m fashion_jax.main --config=configs/mtl.py --workdir=runs/mtl_packed \
        --config.datasets.products.source=array_record \
        --config.datasets.products.root=/data/packed/products

Packs the label columns that the config's tasks (and the split's stratify column) read.

    python -m fashion_jax prepare --download --config=configs/catalog.py \
        --config.datasets.catalog.root=/data/shop/export.csv \
        --config.datasets.catalog.image_cache=/data/shop/image_cache

`--download` only fills a catalog's image cache (images named by http(s) URLs, see
fashion_jax/data/image_cache.py) ahead of training, with a progress bar, and prints how
many rows have their image and which URLs failed, with their rows and reasons.
"""

import json

from absl import flags
from ml_collections import config_flags

from fashion_jax.tools import cli
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled, packed, sources
from fashion_jax.errors import ConfigError


def _define_flags():
  config_flags.DEFINE_config_file("config", None, "The experiment config.", lock_config=True)
  flags.DEFINE_string("dataset", "", "Which of config.datasets ('' = the only one).")
  flags.DEFINE_string("out", None, "Folder for the pack.")
  flags.DEFINE_integer("rows_per_shard", 10000, "Images per ArrayRecord shard.")
  flags.DEFINE_bool("download", False, "Only download the dataset's image URLs into its "
                    "image_cache (no --out).")


def _dataset(config, dataset: str):
  """(name, resolved config) of the dataset that --dataset names (or the only one)."""
  names = list(config.datasets)
  dataset = dataset or (names[0] if len(names) == 1 else "")
  if dataset not in names:
    raise ConfigError(f"--dataset={dataset!r}: name one of config.datasets {names}.")
  return dataset, sources.resolve_dataset_config(config.datasets[dataset],
                                                 f"config.datasets.{dataset}")


def download(config, dataset: str = "") -> dict:
  """Fills the dataset's image cache; {rows with their image, the cache, problems}."""
  dataset, dataset_config = _dataset(config, dataset)
  if not dataset_config.get("image_cache"):
    raise ConfigError(f"--download: set config.datasets.{dataset}.image_cache=DIR, the "
                      "folder to download the images into.")
  table, report = sources.load_source(dataset_config, [], config.seed,
                                      f"config.datasets.{dataset}")
  return {"rows": len(table.ids), "image_cache": dataset_config.image_cache,
          "problems": report.to_dict()["problems"]}


def prepare(config, dataset: str, out: str, rows_per_shard: int = 10000,
            progress: bool = True) -> dict:
  dataset, dataset_config = _dataset(config, dataset)
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  columns = sorted({t.column for t in tasks if t.dataset == dataset}
                   | ({dataset_config.stratify} if dataset_config.get("stratify") else set()))
  table, _ = sources.load_source(dataset_config, columns, config.seed,
                                 f"config.datasets.{dataset}")
  description = {"source": dataset_config.source, "root": dataset_config.root,
                 "columns": columns}
  return packed.pack(table, out, description, rows_per_shard, progress)


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  if FLAGS.download:
    print(json.dumps(download(FLAGS.config, FLAGS.dataset), indent=1))
    return 0
  if not FLAGS.out:
    raise ConfigError("--out is required: the folder for the pack (or --download).")
  summary = prepare(FLAGS.config, FLAGS.dataset, FLAGS.out, FLAGS.rows_per_shard)
  print(json.dumps({k: v for k, v in summary.items() if k != "shards"}
                   | {"shards": len(summary["shards"])}))
  return 0


def run():
  cli.run(main, _define_flags, required=["config"])


if __name__ == "__main__":
  run()
