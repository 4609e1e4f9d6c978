"""Label hierarchies between softmax tasks (e.g. masterCategory > subCategory > articleType).

`config.hierarchy` names chains of task names, comma-separated chains of '>'-joined
names. Which parent class each child class belongs to is learned from the training
split: the parent label it co-occurs with most often.
"""

import numpy as np

from fashion_jax.errors import ConfigError


def parse(spec: str, tasks) -> list[tuple[str, str]]:
  """(parent task, child task) pairs of `config.hierarchy`."""
  by_name = {t.name: t for t in tasks}
  pairs = []
  for chain in filter(None, (c.strip() for c in spec.split(","))):
    names = [n.strip() for n in chain.split(">")]
    for name in names:
      if name not in by_name or by_name[name].kind != "softmax":
        softmax = sorted(n for n, t in by_name.items() if t.kind == "softmax")
        raise ConfigError(f"config.hierarchy: {name!r} in {chain!r} is not a softmax task; "
                          f"softmax tasks: {softmax}.")
    if len(names) < 2:
      raise ConfigError(f"config.hierarchy: {chain!r} needs a parent and a child ('a>b').")
    datasets = {by_name[n].dataset for n in names}
    if len(datasets) > 1:
      raise ConfigError(f"config.hierarchy: the tasks of {chain!r} read different datasets "
                        f"{sorted(datasets)}; a hierarchy links labels of the same images.")
    pairs += list(zip(names[:-1], names[1:]))
  return pairs


def learn_parents(parent_labels: np.ndarray, child_labels: np.ndarray, num_parents: int,
                  num_children: int) -> np.ndarray:
  """[num_children] parent id of each child class (-1: never seen with a parent label)."""
  both = (parent_labels >= 0) & (child_labels >= 0)
  counts = np.zeros((num_children, num_parents), np.int64)
  np.add.at(counts, (child_labels[both], parent_labels[both]), 1)
  return np.where(counts.sum(1) > 0, counts.argmax(1), -1)


def consistency(parent_predictions: np.ndarray, child_predictions: np.ndarray,
                parents: np.ndarray) -> float:
  """Fraction of samples whose predicted child belongs to the predicted parent.

  Child classes without a known parent are not counted.
  """
  expected = parents[child_predictions]
  known = expected >= 0
  return float((expected[known] == parent_predictions[known]).mean()) if known.any() else 1.0
