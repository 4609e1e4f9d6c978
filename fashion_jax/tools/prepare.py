r"""Packs one configured dataset into ArrayRecord shards (see fashion_jax/data/packed.py).

    python -m fashion_jax.prepare --config=configs/mtl.py --dataset=products \
        --config.datasets.products.root=/data/fashion-product-images --out=/data/packed/products
    python -m fashion_jax.main --config=configs/mtl.py --workdir=runs/mtl_packed \
        --config.datasets.products.source=array_record \
        --config.datasets.products.root=/data/packed/products

Packs the label columns that the config's tasks (and the split's stratify column) read.
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


def prepare(config, dataset: str, out: str, rows_per_shard: int = 10000,
            progress: bool = True) -> dict:
  names = list(config.datasets)
  dataset = dataset or (names[0] if len(names) == 1 else "")
  if dataset not in names:
    raise ConfigError(f"--dataset={dataset!r}: name one of config.datasets {names}.")
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  dataset_config = sources.resolve_dataset_config(config.datasets[dataset],
                                                  f"config.datasets.{dataset}")
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
  summary = prepare(FLAGS.config, FLAGS.dataset, FLAGS.out, FLAGS.rows_per_shard)
  print(json.dumps({k: v for k, v in summary.items() if k != "shards"}
                   | {"shards": len(summary["shards"])}))
  return 0


def run():
  cli.run(main, _define_flags, required=["config", "out"])


if __name__ == "__main__":
  run()
