"""Sources by name: each `config.datasets` entry names one, and gets its fields.

A source reads one on-disk or hub layout into a `data.table.Table` (its module:
product_images, hugging_face, deepfashion_sources, packed, tfds_builder); this module
holds the registry, the fields every dataset has, their checks, and `load_source`.
Sources that need an optional package import it only when used.
"""

import dataclasses
from typing import Callable, Sequence

from absl import logging

from fashion_jax import checks, registry
from fashion_jax.data.report import DataReport
from fashion_jax.data.table import Table
from fashion_jax.data.vocab import RARE_POLICIES
from fashion_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Source:
  # 'module:function', imported when the source is first read:
  # (dataset config, label columns, seed, where) -> (Table, DataReport).
  loader: str
  options: dict  # The source's own config fields and their defaults.

  def load(self, *args):
    return registry.resolve(self.loader)(*args)


# Fields every dataset has. `sampler`: 'auto' = P identities x K images per batch
# ('pk', K = images_per_identity) when an embedding task reads this dataset, else
# 'random'. Boxes crop with `box_margin` (fraction of the box size) when crop_to_box.
DATASET_FIELDS = {"source": "", "root": "", "weight": 1.0, "rare_policy": "drop",
                  "sampler": "auto", "images_per_identity": 4, "crop_to_box": False,
                  "box_margin": 0.1}
SAMPLERS = ("auto", "random", "pk")
# What each dataset field accepts, checked before any data is read: (field path, value).
_FIELD_CHECKS: dict[str, Callable] = {
    "weight": lambda f, v: checks.number(v, f, 0),
    "rare_policy": lambda f, v: checks.choice(v, f, RARE_POLICIES),
    "sampler": lambda f, v: checks.choice(v, f, SAMPLERS),
    # >= 2 where P x K sampling uses it (see labelled.identity_task_of).
    "images_per_identity": lambda f, v: checks.number(v, f, 1, integer=True),
    "box_margin": lambda f, v: checks.number(v, f, 0),
    "val_fraction": lambda f, v: checks.number(v, f, 0, 1, high_open=True),
    "test_fraction": lambda f, v: checks.number(v, f, 0, 1, high_open=True),
    "val_items_fraction": lambda f, v: checks.number(v, f, 0, 1, high_open=True),
    "annotations": lambda f, v: checks.choice(v, f, ("coarse", "fine")),
    "split_seed": lambda f, v: checks.number(v, f, 0, integer=True),
    "split_file": lambda f, v: checks.existing_file(v, f),
    "empty_string": lambda f, v: checks.choice(v, f, EMPTY_STRING),
    "list_separator": lambda f, v: checks.non_empty_string(v, f),
    "image_column": lambda f, v: checks.non_empty_string(v, f),
    "label_column": lambda f, v: checks.non_empty_string(v, f),
}
# Sources without an official partition get a stratified one, drawn by `split_seed`
# (not config.seed: seeds of one study share a split), or the one a split file gives
# (`id,split` lines, as every run writes to <workdir>/split_<dataset>.csv). `stratify`
# '' = the column of the dataset's first single-label (softmax) task.
_STRATIFIED_SPLIT = {"stratify": "articleType", "val_fraction": 0.1, "test_fraction": 0.1,
                     "split_seed": 0, "split_file": ""}
_SHOP_SPLIT = {**_STRATIFIED_SPLIT, "stratify": ""}

EMPTY_STRING = ("missing", "no_labels")  # A catalog's '' label: unknown, or no labels.
TFDS_NAME = "fashion_product_images"  # data/tfds_builder.py's dataset.

SOURCES: dict[str, Source] = {
    "product_images": Source("fashion_jax.data.product_images:load",
                             {"csv_name": "styles.csv", **_STRATIFIED_SPLIT}),
    "hugging_face": Source("fashion_jax.data.hugging_face:load",
                           {"hf_split": "train", "image_column": "image", "id_column": "",
                            **_STRATIFIED_SPLIT}),
    "deepfashion_category": Source("fashion_jax.data.deepfashion_sources:load_category",
                                   {"annotations": "coarse"}),
    "deepfashion_inshop": Source("fashion_jax.data.deepfashion_sources:load_inshop",
                                 {"val_items_fraction": 0.05}),
    # A folder written by python -m fashion_jax prepare (see data/packed.py).
    "array_record": Source("fashion_jax.data.packed:load_packed", _STRATIFIED_SPLIT),
    # A prepared TFDS dataset (root = its data_dir; see data/tfds_builder.py).
    "tfds": Source("fashion_jax.data.tfds_builder:load_tfds",
                   {"tfds_name": TFDS_NAME, "tfds_split": "train", **_STRATIFIED_SPLIT}),
    # A shop's table: CSV/TSV/JSONL/Parquet with image paths (see data/catalog.py).
    "catalog": Source("fashion_jax.data.catalog:load_catalog", {
        "table": "", "image_column": "image", "id_column": "", "split_column": "",
        "multi_valued_columns": "", "list_separator": "|", "empty_string": "missing",
        # Folder where images named by http(s) URLs are downloaded once (data/image_cache.py).
        "image_cache": "", **_SHOP_SPLIT}),
    # root/<class>/<image> (torchvision's ImageFolder): one label column.
    "image_folder": Source("fashion_jax.data.catalog:load_image_folder",
                           {"label_column": "label", **_SHOP_SPLIT}),
}


def dataset_config(source: str, **fields) -> dict:
  """A `config.datasets` entry with every field of its source, so each is overridable."""
  if source not in SOURCES:
    raise ConfigError(f"Unknown source {source!r}; expected one of {sorted(SOURCES)}.")
  unknown = set(fields) - set(DATASET_FIELDS) - set(SOURCES[source].options)
  if unknown:
    raise ConfigError(f"Unknown field(s) {sorted(unknown)} for a '{source}' dataset.")
  return {**DATASET_FIELDS, **SOURCES[source].options, "source": source, **fields}


def resolve_dataset_config(dataset_config, where: str):
  """One `config.datasets` entry with exactly its source's fields (defaults filled in).

  Fields of other sources are ignored, so `--config.datasets.x.source=...` can switch a
  dataset's source from the command line; a field no source has is a typo and an error.
  """
  import ml_collections
  source = dataset_config.get("source")
  if source not in SOURCES:
    raise ConfigError(f"{where}.source={source!r} is not one of {sorted(SOURCES)}.")
  known = set(DATASET_FIELDS).union(*(s.options for s in SOURCES.values()))
  unknown = set(dataset_config) - known
  if unknown:
    raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; a '{source}' dataset has "
                      f"{sorted(set(DATASET_FIELDS) | set(SOURCES[source].options))}.")
  fields = {**DATASET_FIELDS, **SOURCES[source].options}
  resolved = ml_collections.ConfigDict(
      {k: dataset_config[k] if k in dataset_config else v for k, v in fields.items()})
  prefix = where.removeprefix("config.")
  for field, value in resolved.items():
    if field in _FIELD_CHECKS:
      _FIELD_CHECKS[field](f"{prefix}.{field}", value)
  for field in ("csv_name", "hf_split", "tfds_name", "tfds_split"):
    if field in resolved and not resolved[field]:
      raise ConfigError(f"{where}.{field} is empty: it needs a value (default "
                        f"{SOURCES[source].options[field]!r}).")
  if "val_fraction" in resolved and resolved.val_fraction + resolved.test_fraction >= 1:
    raise ConfigError(f"{where}.val_fraction={resolved.val_fraction} and test_fraction="
                      f"{resolved.test_fraction} leave no training split: their sum must be < 1.")
  return resolved


def load_source(dataset_config, columns: Sequence[str], seed: int = 0,
                where: str = "config.datasets.<name>") -> tuple[Table, DataReport]:
  """Reads one configured dataset with the label `columns` its tasks need."""
  dataset_config = resolve_dataset_config(dataset_config, where)
  logging.info("Reading %s (%s) from %s", where, dataset_config.source,
               dataset_config.root or "the embedded sample")
  return SOURCES[dataset_config.source].load(dataset_config, list(columns), seed, where)
