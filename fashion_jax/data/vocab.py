"""Label vocabularies: raw label strings <-> class ids, built from the training split only.

Vocabularies are saved in the workdir next to the checkpoints, so evaluation and
prediction map ids back to the names the model was trained with, and a resumed run
reuses them instead of rebuilding (which could reorder classes).
"""

import collections
import dataclasses
import json
import os
from typing import Sequence

import numpy as np
from fashion_jax.errors import ConfigError

OTHER = "<other>"
MISSING = -1  # Label id of a sample that does not train this task (mask 0).
RARE_POLICIES = ("drop", "other")


@dataclasses.dataclass
class Vocab:
  """Class names of one label column, most frequent first."""

  column: str
  classes: list[str]
  multi_label_separator: str | None = None  # Set for sigmoid (multi-label) columns.
  # Every label of the training split, also those under min_count that are not classes:
  # scoring leaves out only labels absent from here (see metrics.label_scores). None in
  # vocabularies saved before it existed (then: the classes).
  train_labels: list[str] | None = None
  # What a task kind learns from the training values besides classes (e.g. a regression
  # target's mean and std), saved with the vocabulary; bound to the task as Task.fitted.
  fitted: dict | None = None

  @property
  def known_labels(self) -> set[str]:
    return set(self.train_labels if self.train_labels is not None else self.classes)

  def __len__(self) -> int:
    return len(self.classes)

  @property
  def _index(self) -> dict[str, int]:
    return {c: i for i, c in enumerate(self.classes)}

  def encode(self, values: Sequence[str]) -> np.ndarray:
    """Single-label ids; MISSING for empty or unknown values (mapped to OTHER if present)."""
    index = self._index
    fallback = index.get(OTHER, MISSING)
    return np.asarray([index.get(v, fallback) if v else MISSING for v in values], np.int32)

  def encode_multi_hot(self, values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot targets [N, C] and a mask [N] that is 0 where the value is empty."""
    index = self._index
    targets = np.zeros((len(values), len(self.classes)), np.float32)
    for row, value in enumerate(values):
      for label in _split(value, self.multi_label_separator):
        if label in index:
          targets[row, index[label]] = 1.0
    mask = np.asarray([bool(v) for v in values], np.float32)
    return targets, mask

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _split(value: str, separator: str | None) -> list[str]:
  return [v.strip() for v in value.split(separator) if v.strip()] if value else []


def build_vocab(column: str, values: Sequence[str], min_count: int, rare_policy: str,
                multi_label_separator: str | None = None) -> Vocab:
  """Keeps classes seen at least `min_count` times; rare ones are dropped or folded.

  With `rare_policy='other'` the rare classes become one OTHER class, so their
  samples still train the task; with 'drop' their samples are masked out.
  """
  if rare_policy not in RARE_POLICIES:
    raise ConfigError(f"rare_policy={rare_policy!r}: expected one of {RARE_POLICIES}.")
  if multi_label_separator is None:
    counts = collections.Counter(v for v in values if v)
  else:
    counts = collections.Counter(
        label for v in values for label in _split(v, multi_label_separator))
  kept = sorted((c for c, n in counts.items() if n >= min_count),
                key=lambda c: (-counts[c], c))
  has_rare = any(n < min_count for n in counts.values())
  if rare_policy == "other" and has_rare and multi_label_separator is None:
    kept.append(OTHER)
  if not kept:
    raise ConfigError(f"column '{column}': no class has at least min_count={min_count} "
                     "training samples.")
  return Vocab(column=column, classes=kept, multi_label_separator=multi_label_separator,
               train_labels=sorted(counts))


def save_vocabs(path: str, vocabs: dict[str, Vocab]) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w") as f:
    json.dump({name: v.to_dict() for name, v in vocabs.items()}, f, indent=1)
  os.replace(tmp, path)  # Atomic: a crash never leaves a half-written vocabulary.


def load_vocabs(path: str) -> dict[str, Vocab]:
  with open(path) as f:
    return {name: Vocab(**d) for name, d in json.load(f).items()}
