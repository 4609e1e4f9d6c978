"""From a configured source to batches: split, vocabularies, labels, and grain pipelines.

    source rows -> stratified split -> vocabularies (train split only) -> label ids + masks
      -> grain: [process shard] -> shuffle(seed) -> repeat -> decode -> augment -> batch

A batch is a dict of numpy arrays: 'image' uint8 [B, H, W, 3], 'labels' {task: ids [B]
or multi-hot [B, C]}, 'masks' {task: float32 [B]} (0 = this sample does not train or
score this task).
"""

import dataclasses
import math
import os
from typing import Iterator

import grain
import numpy as np
from absl import logging

from fashion_jax.data import sources
from fashion_jax.data import splits as splits_lib
from fashion_jax.data import transforms
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.data.report import DataReport
from fashion_jax.errors import CheckpointMismatchError, ConfigError, DataError

VOCAB_FILE = "vocab.json"
REPORT_FILE = "data_report.json"


@dataclasses.dataclass
class SplitData:
  """One split's rows with their encoded labels and per-task masks."""

  table: sources.Table
  labels: dict[str, np.ndarray]
  masks: dict[str, np.ndarray]

  def __len__(self) -> int:
    return len(self.table)


@dataclasses.dataclass
class Data:
  vocabs: dict[str, vocab_lib.Vocab]
  splits: dict[str, SplitData]
  report: DataReport


def encode_split(table: sources.Table, tasks, vocabs) -> SplitData:
  labels, masks = {}, {}
  for task in tasks:
    values = table.columns[task.column]
    vocab = vocabs[task.name]
    if task.spec.multi_label:
      labels[task.name], masks[task.name] = vocab.encode_multi_hot(values)
    else:
      ids = vocab.encode(values)
      labels[task.name] = ids
      masks[task.name] = (ids != vocab_lib.MISSING).astype(np.float32)
  return SplitData(table=table, labels=labels, masks=masks)


def _build_vocabs(train_table, tasks, rare_policy) -> dict[str, vocab_lib.Vocab]:
  vocabs = {}
  for task in tasks:
    separator = task.option("separator") if task.spec.multi_label else None
    try:
      vocabs[task.name] = vocab_lib.build_vocab(
          task.column, train_table.columns[task.column], task.min_count, rare_policy, separator)
    except ConfigError as e:
      raise ConfigError(f"config.tasks.{task.name}: {e}") from e
  return vocabs


def _check_saved_vocabs(saved, tasks, path):
  """A resumed run must use the label ids its checkpoint was trained with."""
  expected = {t.name: t.column for t in tasks}
  found = {name: v.column for name, v in saved.items()}
  if expected != found:
    raise CheckpointMismatchError(
        f"{path} was written for tasks {found} but the config has {expected}. "
        "Use a new --workdir for a different task list.")


def prepare_data(config, tasks, workdir: str | None) -> Data:
  """Reads the source, splits it, and builds (or reloads) the vocabularies."""
  data_config = config.data
  columns = sorted({t.column for t in tasks} | {data_config.stratify})
  table, report = sources.load_source(data_config, columns)
  if table.splits is not None:
    split_rows = {name: np.flatnonzero(table.splits == name) for name in splits_lib.SPLITS}
  else:
    split_rows = splits_lib.stratified_split(
        table.columns[data_config.stratify], data_config.val_fraction,
        data_config.test_fraction, config.seed)
  tables = {name: table.subset(rows) for name, rows in split_rows.items()}
  vocab_path = os.path.join(workdir, VOCAB_FILE) if workdir else None
  if vocab_path and os.path.exists(vocab_path):
    vocabs = vocab_lib.load_vocabs(vocab_path)
    _check_saved_vocabs(vocabs, tasks, vocab_path)
  else:
    vocabs = _build_vocabs(tables["train"], tasks, data_config.rare_policy)
    if vocab_path:
      vocab_lib.save_vocabs(vocab_path, vocabs)
  if workdir:
    report.save(os.path.join(workdir, REPORT_FILE))
  encoded = {name: encode_split(t, tasks, vocabs) for name, t in tables.items()}
  logging.info("Split sizes: %s; classes per task: %s",
               {k: len(v) for k, v in encoded.items()},
               {k: len(v) for k, v in vocabs.items()})
  if len(encoded["train"]) == 0:
    raise DataError("The training split is empty after reading and filtering the data.")
  return Data(vocabs=vocabs, splits=encoded, report=report)


class Examples:
  """grain random-access source over one split: encoded image bytes and labels."""

  def __init__(self, split: SplitData):
    self.split = split

  def __len__(self) -> int:
    return len(self.split)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    table = self.split.table
    try:
      encoded, error = table.image(index), None
    except (OSError, ValueError) as e:
      encoded, error = b"", str(e)
    return {"encoded": encoded, "error": error, "where": table.images.describe(table.rows[index]),
            "labels": {k: v[index] for k, v in self.split.labels.items()},
            "masks": {k: v[index] for k, v in self.split.masks.items()}}

  def __repr__(self) -> str:  # grain checks the source's repr when restoring an iterator.
    return f"Examples(n={len(self)}, images={self.split.table.images!r})"


class Decode(grain.transforms.Map):
  """Decodes and resizes; an unreadable image becomes a blank, fully masked sample.

  Masking keeps batch shapes static (no recompilation) and the run going; the file is
  named in the log so it can be fixed.
  """

  def __init__(self, image_size: int):
    self.image_size = image_size

  def map(self, element: dict) -> dict:
    masks = element["masks"]
    try:
      if element["error"]:
        raise transforms.ImageDecodeError(element["error"])
      image = transforms.decode_image(element["encoded"], self.image_size)
    except transforms.ImageDecodeError as e:
      logging.warning("Skipping unreadable image %s: %s", element["where"], e)
      image = np.full((self.image_size, self.image_size, 3), 255, np.uint8)
      masks = {k: np.float32(0.0) for k in masks}
    return {"image": image, "labels": element["labels"], "masks": masks}


class Augment(grain.transforms.RandomMap):
  def random_map(self, element: dict, rng: np.random.Generator) -> dict:
    return {**element, "image": transforms.random_flip(element["image"], rng)}


def _read_options(data_config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=data_config.num_threads,
                           prefetch_buffer_size=data_config.prefetch_buffer_size)


def train_iterator(split: SplitData, data_config, batch_size: int, seed: int,
                   process_index: int = 0, process_count: int = 1):
  """Endless, checkpointable iterator of training batches for this process.

  Each process reads a disjoint shard. Order and augmentation depend only on `seed`
  and the position in the stream, so a restored iterator continues exactly.
  """
  if len(split) // process_count < batch_size:
    raise ConfigError(f"The training split has {len(split)} samples, fewer than one batch "
                     f"per process ({batch_size}); lower config.batch_size.")
  ds = grain.MapDataset.source(Examples(split))[process_index::process_count]
  ds = ds.shuffle(seed=seed).repeat(None)
  ds = ds.map(Decode(data_config.image_size)).random_map(Augment(), seed=seed + 1)
  iter_ds = ds.to_iter_dataset(_read_options(data_config))
  iter_ds = iter_ds.batch(batch_size, drop_remainder=True)
  if data_config.num_workers > 0:
    iter_ds = iter_ds.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=data_config.num_workers))
  return iter(iter_ds)


def _pad(batch: dict, batch_size: int) -> dict:
  def pad(x):
    missing = batch_size - x.shape[0]
    return x if missing == 0 else np.concatenate([x, np.zeros((missing, *x.shape[1:]), x.dtype)])
  # Padded rows get mask 0 (zeros), so they count in no metric.
  return {"image": pad(batch["image"]),
          "labels": {k: pad(v) for k, v in batch["labels"].items()},
          "masks": {k: pad(v) for k, v in batch["masks"].items()}}


def eval_batches(split: SplitData, data_config, batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict]:
  """Every sample of this process's shard once, in order, in full (padded) batches.

  All processes yield the same number of batches, as the sharded eval step needs.
  """
  ds = grain.MapDataset.source(Examples(split))[process_index::process_count]
  ds = ds.map(Decode(data_config.image_size))
  num_batches = math.ceil(math.ceil(len(split) / process_count) / batch_size)
  iterator = iter(ds.to_iter_dataset(_read_options(data_config)).batch(batch_size))
  empty = None
  for _ in range(num_batches):
    batch = next(iterator, None)
    if batch is None:  # This shard ran out before the others.
      batch = empty
    empty = _empty_like(batch)
    yield _pad(batch, batch_size)


def _empty_like(batch: dict) -> dict:
  """A batch of zero rows with the same structure (what a finished shard contributes)."""
  return {"image": np.zeros_like(batch["image"][:0]),
          "labels": {k: np.zeros_like(v[:0]) for k, v in batch["labels"].items()},
          "masks": {k: np.zeros_like(v[:0]) for k, v in batch["masks"].items()}}
