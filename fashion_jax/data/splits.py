"""Train/val/test splits: deterministic stratified ones, and split files (`id,split`).

A split file fixes the split apart from the run's seed: seeds then vary initialisation,
shuffling and augmentation only, and another program (scripts/torch_baseline.py) can
train and score on exactly the same rows. Every run writes its split to its workdir.
"""

import csv
import os

import numpy as np
from absl import logging

from fashion_jax.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def stratified_split(strata: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int, where: str = "config.datasets.<name>") -> dict[str, np.ndarray]:
  """Splits row indices so every stratum is spread over the splits in proportion.

  Within each stratum the rows are permuted by `seed`, then the first
  round(n * test_fraction) go to test, the next round(n * val_fraction) to val, the
  rest to train. A stratum too small to give a split a row keeps it in train, so
  rare classes are never evaluated without being trained on.
  """
  if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ConfigError(f"{where}.val_fraction={val_fraction} and test_fraction="
                     f"{test_fraction} must be in [0, 1) and sum to less than 1.")
  rng = np.random.default_rng(seed)
  parts = {s: [] for s in SPLITS}
  for value in sorted(set(strata.tolist())):
    rows = np.flatnonzero(strata == value)
    rows = rows[rng.permutation(len(rows))]
    n_test = int(round(len(rows) * test_fraction)) if len(rows) >= 3 else 0
    n_val = int(round(len(rows) * val_fraction)) if len(rows) >= 3 else 0
    parts["test"].append(rows[:n_test])
    parts["val"].append(rows[n_test:n_test + n_val])
    parts["train"].append(rows[n_test + n_val:])
  return {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}


SPLIT_FILE_COLUMNS = ("id", "split")


def write_split_file(path: str, ids_by_split: dict[str, np.ndarray]) -> None:
  """`id,split` rows, split by split in SPLITS order: a run's split, to reuse or share."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(SPLIT_FILE_COLUMNS)
    for split in SPLITS:
      writer.writerows((row_id, split) for row_id in ids_by_split.get(split, ()))
  os.replace(tmp, path)


def read_split_file(path: str, ids: np.ndarray, where: str) -> dict[str, np.ndarray]:
  """Row indices of each split of a table with `ids`, from an `id,split` CSV.

  Every id of the table must be in the file; ids of the file the table lacks (rows
  left out as malformed, or without an image) are ignored and counted in the log.
  """
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      lines = list(csv.reader(f))
  except OSError as e:
    raise DataError(f"{where}: cannot read {path}: {e.strerror}") from e
  if not lines or tuple(h.strip() for h in lines[0]) != SPLIT_FILE_COLUMNS:
    raise DataError(f"{path}: the first line must be the header 'id,split' (found "
                    f"{lines[0] if lines else 'an empty file'}).")
  assigned = {}
  for line_no, fields in enumerate(lines[1:], start=2):
    if not fields:
      continue
    if len(fields) != 2 or fields[1].strip() not in SPLITS:
      raise DataError(f"{path}:{line_no}: expected '<id>,<split>' with split one of "
                      f"{list(SPLITS)}, got {','.join(fields)!r}.")
    row_id = fields[0].strip()
    if row_id in assigned:
      raise DataError(f"{path}:{line_no}: id {row_id!r} is listed twice.")
    assigned[row_id] = fields[1].strip()
  split_of = [assigned.get(str(row_id)) for row_id in ids]
  missing = [str(row_id) for row_id, split in zip(ids, split_of) if split is None]
  if missing:
    raise DataError(f"{path}: {len(missing)} of the {len(ids)} rows of the data have no "
                    f"split (first ids: {missing[:5]}). Use the split file written by a run "
                    "on this data, or add those ids.")
  unused = len(assigned) - len(ids)
  if unused:
    logging.info("%s: %d ids are not in the data (left out when it was read).", path, unused)
  split_of = np.asarray(split_of, dtype=object)
  return {s: np.flatnonzero(split_of == s).astype(np.int64) for s in SPLITS}
