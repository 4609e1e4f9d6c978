"""A run's labelled data: each configured dataset read, split and encoded.

    each dataset: source rows -> official, stratified or file split -> label ids + masks
    vocabularies: each task's from its own dataset's training split (or the workdir's)

`prepare_data` gives training its `Data` (and `Data.save` writes what it learned to the
workdir); `read_labelled` encodes any labelled data with a trained run's vocabularies.
Label encoding itself belongs to each task's kind (fashion_jax/tasks/).
"""

import dataclasses
import json
import os

import numpy as np
from absl import logging

from fashion_jax import hierarchy as hierarchy_lib
from fashion_jax import tasks as tasks_lib
from fashion_jax import workdir as workdir_lib
from fashion_jax.data import sources
from fashion_jax.data import splits as splits_lib
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.data.table import ROLES, Table
from fashion_jax.errors import CheckpointMismatchError, ConfigError, DataError


@dataclasses.dataclass
class SplitData:
  """One split of one dataset: rows, encoded labels, per-task masks and how to read them."""

  table: Table
  labels: dict[str, np.ndarray]
  masks: dict[str, np.ndarray]
  roles: np.ndarray  # int32 [N], values of ROLES.
  dataset: str = ""
  weight: float = 1.0  # Share of the training mixture.
  identity_task: str | None = None  # Set: sample P identities x K images per batch.
  images_per_identity: int = 4
  box_margin: float | None = None  # Set: crop each image to its box plus this margin.

  def __len__(self) -> int:
    return len(self.table)


@dataclasses.dataclass
class Data:
  tasks: list  # The configured tasks, with their dataset resolved and their classes bound.
  vocabs: dict[str, vocab_lib.Vocab]
  datasets: dict[str, dict[str, SplitData]]  # dataset name -> split name -> data.
  reports: dict = dataclasses.field(default_factory=dict)  # dataset name -> DataReport.
  hierarchy: dict = dataclasses.field(default_factory=dict)  # Learned parents (hierarchy.py).
  vocabs_saved: bool = False  # The vocabularies were read from the workdir.

  def save(self, workdir: str) -> None:
    """Writes what the run learned from the data next to its checkpoints: vocabularies
    (unless they came from there), data report, class weights, hierarchy."""
    if not self.vocabs_saved:
      vocab_lib.save_vocabs(workdir_lib.path(workdir, workdir_lib.VOCAB), self.vocabs)
      self.vocabs_saved = True
    save_reports(workdir_lib.path(workdir, workdir_lib.DATA_REPORT), self.reports)
    # What the loss weighed each class with.
    workdir_lib.write_class_weights(
        workdir, {t.name: list(t.class_weights) for t in self.tasks if t.class_weights})
    hierarchy_lib.save(workdir_lib.path(workdir, workdir_lib.HIERARCHY), self.hierarchy)
    for name, split_data in self.datasets.items():
      splits_lib.write_split_file(workdir_lib.split_path(workdir, name),
                                  {s: d.table.ids for s, d in split_data.items()})

  @property
  def splits(self) -> dict[str, SplitData]:
    """The splits of the only dataset (single-dataset runs, tools and tests)."""
    if len(self.datasets) != 1:
      raise ValueError(f"{len(self.datasets)} datasets: use Data.datasets.")
    return next(iter(self.datasets.values()))

  def split(self, name: str) -> list[SplitData]:
    """That split of every dataset, in config order."""
    return [splits[name] for splits in self.datasets.values()]


def encode_split(table: Table, tasks, vocabs, dataset: str = "") -> SplitData:
  """Encodes the labels of `dataset`'s tasks; other datasets' tasks get mask 0."""
  labels, masks = {}, {}
  for task in tasks:
    vocab = vocabs[task.name]
    if task.dataset == dataset:
      labels[task.name], masks[task.name] = task.spec.encode(
          task, vocab, table.columns[task.column])
    else:
      labels[task.name] = task.spec.missing_labels(task, vocab, len(table))
      masks[task.name] = np.zeros(len(table), np.float32)
  roles = (np.zeros(len(table), np.int32) if table.roles is None
           else np.asarray([ROLES[r] for r in table.roles], np.int32))
  return SplitData(table=table, labels=labels, masks=masks, roles=roles, dataset=dataset)


def _build_vocabs(train_tables, tasks, datasets_config) -> dict[str, vocab_lib.Vocab]:
  vocabs = {}
  for task in tasks:
    try:
      vocabs[task.name] = task.spec.build_vocab(
          task, train_tables[task.dataset].columns[task.column],
          datasets_config[task.dataset].rare_policy)
    except ConfigError as e:
      raise ConfigError(f"config.tasks.{task.name}: {e}") from e
  return vocabs


def check_saved_vocabs(saved, tasks, path):
  """A resumed run must use the label ids its checkpoint was trained with."""
  expected = {t.name: t.column for t in tasks}
  found = {name: v.column for name, v in saved.items()}
  if expected != found:
    raise CheckpointMismatchError(
        f"{path} was written for tasks {found} but the config has {expected}. "
        "Use a new --workdir for a different task list.")


def resolve_datasets(tasks, datasets_config) -> list:
  """Names each task's dataset: its `dataset` field, or the only configured dataset."""
  names = list(datasets_config)
  if not names:
    raise ConfigError("config.datasets is empty: configure at least one dataset.")
  resolved = []
  for task in tasks:
    dataset = task.dataset
    if not dataset:
      if len(names) > 1:
        raise ConfigError(f"config.tasks.{task.name}.dataset is not set and there are "
                          f"{len(names)} datasets {names}: name the one with its labels.")
      dataset = names[0]
    if dataset not in names:
      raise ConfigError(f"config.tasks.{task.name}.dataset={dataset!r} is not one of the "
                        f"configured datasets {names}.")
    resolved.append(dataclasses.replace(task, dataset=dataset))
  unused = [n for n in names if not any(t.dataset == n for t in resolved)]
  if unused:
    raise ConfigError(f"No task reads config.datasets.{unused[0]}: set a task's dataset field "
                      "to it, or remove it.")
  return resolved


def stratify_column(dataset_config, tasks, name: str) -> str | None:
  """The column a dataset's split is stratified on: `stratify`, or when that is '' the
  column of its first single-label task (None: no such task, a plain random split)."""
  if dataset_config.get("stratify"):
    return dataset_config.stratify
  return next((t.column for t in tasks if t.dataset == name and t.spec.single_label), None)


def split_rows(table, dataset_config, where: str, stratify: str | None = None
               ) -> dict[str, np.ndarray]:
  """Row indices per split: the dataset's own partition, its split file, or a split
  stratified on the `stratify` column (stratify_column)."""
  if table.splits is not None:  # The dataset's own partition (DeepFashion, a shop's column).
    return {name: np.flatnonzero(table.splits == name) for name in splits_lib.SPLITS}
  if dataset_config.split_file:
    return splits_lib.read_split_file(dataset_config.split_file, table.ids,
                                      f"{where}.split_file")
  labels = (table.columns[stratify] if stratify
            else np.full(len(table), "", dtype=object))
  return splits_lib.stratified_split(labels, dataset_config.val_fraction,
                                     dataset_config.test_fraction, dataset_config.split_seed,
                                     where)


def identity_task_of(tasks, dataset_config, where: str):
  """The embedding task whose identities a P x K sampler groups by, if any."""
  embeddings = [t.name for t in tasks if t.spec.embeds]
  if dataset_config.sampler == "random" or not embeddings:
    if dataset_config.sampler == "pk":
      raise ConfigError(f"{where}.sampler='pk' needs an embedding task reading this dataset.")
    return None
  if dataset_config.images_per_identity < 2:
    raise ConfigError(f"{where}.images_per_identity={dataset_config.images_per_identity} "
                      "must be >= 2 (a triplet needs a positive).")
  return embeddings[0]


def prepare_data(config, tasks, workdir: str | None, write_files: bool = True) -> Data:
  """Reads every configured dataset, splits it, and builds (or reloads) the vocabularies.

  A workdir's saved vocabularies are reused (a resumed run keeps its label ids). With
  `write_files`, `Data.save(workdir)` writes what the run learned from the data; a
  trainer passes False and saves once every other check has passed, so that a run that
  fails to start leaves its workdir as it was.
  """
  tasks = resolve_datasets(tasks, config.datasets)
  tables, reports = {}, {}
  datasets_config = {name: sources.resolve_dataset_config(c, f"config.datasets.{name}")
                     for name, c in config.datasets.items()}
  for name, dataset_config in datasets_config.items():
    where = f"config.datasets.{name}"
    table, reports[name] = read_table(config, name, dataset_config, tasks)
    rows = split_rows(table, dataset_config, where, stratify_column(dataset_config, tasks, name))
    tables[name] = {split: table.subset(r) for split, r in rows.items()}
    if len(tables[name]["train"]) == 0:
      raise DataError(f"{where}: the training split is empty after reading and filtering.")
  vocab_path = workdir_lib.path(workdir, workdir_lib.VOCAB) if workdir else None
  saved_vocabs = bool(vocab_path and os.path.exists(vocab_path))
  if saved_vocabs:
    vocabs = vocab_lib.load_vocabs(vocab_path)
    check_saved_vocabs(vocabs, tasks, vocab_path)
  else:
    vocabs = _build_vocabs({n: t["train"] for n, t in tables.items()}, tasks, datasets_config)

  datasets = {}
  for name, split_tables in tables.items():
    dataset_config = datasets_config[name]
    where = f"config.datasets.{name}"
    identity_task = identity_task_of([t for t in tasks if t.dataset == name], dataset_config,
                                     where)
    datasets[name] = {}
    for split, table in split_tables.items():
      data = encode_split(table, tasks, vocabs, name)
      if split == "train" and identity_task:
        _check_identities(data, next(t for t in tasks if t.name == identity_task), where)
      data.weight = dataset_config.weight
      data.identity_task = identity_task
      data.images_per_identity = dataset_config.images_per_identity
      if dataset_config.crop_to_box:
        if table.boxes is None:
          raise ConfigError(f"{where}.crop_to_box is set but {dataset_config.source} data "
                            "has no bounding boxes.")
        data.box_margin = float(dataset_config.box_margin)
      datasets[name][split] = data
      _report_unknown_labels(data, [t for t in tasks if t.dataset == name], split,
                             reports[name])
    logging.info("%s split sizes: %s", where, {k: len(v) for k, v in datasets[name].items()})
  logging.info("Classes per task: %s", {k: len(v) for k, v in vocabs.items()})
  train_labels = {t.name: datasets[t.dataset]["train"].labels[t.name] for t in tasks}
  train_masks = {t.name: datasets[t.dataset]["train"].masks[t.name] for t in tasks}
  tasks = tasks_lib.bind_data(tasks, vocabs, train_labels, train_masks)
  data = Data(tasks=tasks, vocabs=vocabs, datasets=datasets, reports=reports,
              hierarchy=hierarchy_lib.learn(config.get("hierarchy", ""), tasks, datasets),
              vocabs_saved=saved_vocabs)
  if workdir and write_files:
    data.save(workdir)
  return data


def _check_identities(data: SplitData, task, where: str) -> None:
  """P x K batches need identities with 2+ training images (a triplet needs a positive)."""
  labels = data.labels[task.name][data.masks[task.name] > 0]
  shared = int(np.sum(np.bincount(labels) >= 2)) if len(labels) else 0
  if shared == 0:
    raise DataError(
        f"{where}: no value of column {task.column!r} (the identities of embedding task "
        f"{task.name!r}) is shared by two training images, so P x K batches cannot be "
        "built: every identity needs 2+ images. Give an identity column whose values repeat "
        "(a style or product group, not a per-image id), or drop the embedding task.")


def read_labelled(config, tasks, vocabs, dataset: str, split: str) -> tuple[SplitData, object]:
  """One split of a configured dataset ('all': every row), encoded with given
  vocabularies (a trained run's): labels outside them are masked, and listed in the
  returned DataReport. For scoring a trained model on its own or any other labelled data.
  """
  table, report, dataset_config = read_split_table(config, tasks, dataset, split)
  data = encode_split(table, tasks, vocabs, dataset)
  if dataset_config.crop_to_box and table.boxes is not None:
    data.box_margin = float(dataset_config.box_margin)
  _report_unknown_labels(data, [t for t in tasks if t.dataset == dataset], split, report)
  return data, report


def read_split_table(config, tasks, dataset: str, split: str):
  """(the rows of one split of a configured dataset, or 'all' of them, unencoded; its
  DataReport; the resolved dataset config): the split is the one training drew."""
  where = f"config.datasets.{dataset}"
  dataset_config = sources.resolve_dataset_config(config.datasets[dataset], where)
  table, report = read_table(config, dataset, dataset_config, tasks)
  if split != "all":
    stratify = stratify_column(dataset_config, tasks, dataset)
    table = table.subset(split_rows(table, dataset_config, where, stratify)[split])
  return table, report, dataset_config


def read_table(config, name: str, dataset_config, tasks):
  """The rows of dataset `name` with the label columns its tasks (and its split) need."""
  columns = {t.column for t in tasks if t.dataset == name}
  stratify = stratify_column(dataset_config, tasks, name)
  if stratify:
    columns.add(stratify)
  return sources.load_source(dataset_config, sorted(columns), config.seed,
                             f"config.datasets.{name}")


def _report_unknown_labels(data: SplitData, tasks, split: str, report) -> None:
  """Labels outside a task's vocabulary (rare in, or absent from, the training split) are
  masked; the report says how many and which, per split."""
  for task in tasks:
    values = data.table.columns[task.column]
    masked = task.spec.masked_values(task, values, data.masks[task.name])
    if masked is None:
      continue
    what, rows = masked
    for i in rows:
      report.add(f"{split} '{task.column}' {what}", f"{values[i]!r} (id {data.table.ids[i]})")
  report.log_new()


def save_reports(path: str, reports) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump({name: r.to_dict() for name, r in reports.items()}, f, indent=2)
