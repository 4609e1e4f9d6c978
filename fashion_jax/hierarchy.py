"""Label hierarchies between softmax tasks (e.g. masterCategory > subCategory > articleType).

`config.hierarchy` names chains of task names, comma-separated chains of '>'-joined
names. Which parent class each child class belongs to is learned from the training
split: the parent label it co-occurs with most often.

`config.hierarchy_decoding = 'bottom_up'` lets each parent task's prediction also use its
child task's evidence (`decode`): inside the model's inference function, so evaluate,
predict, exported models and the service all score the same decoded probabilities.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import workdir as workdir_lib
from fashion_jax.errors import ConfigError



def parse(spec: str, tasks) -> list[tuple[str, str]]:
  """(parent task, child task) pairs of `config.hierarchy`."""
  by_name = {t.name: t for t in tasks}
  pairs = []
  for chain in filter(None, (c.strip() for c in spec.split(","))):
    names = [n.strip() for n in chain.split(">")]
    for name in names:
      if name not in by_name or not by_name[name].spec.single_label:
        single = sorted(n for n, t in by_name.items() if t.spec.single_label)
        raise ConfigError(f"config.hierarchy: {name!r} in {chain!r} is not a single-label "
                          f"(softmax) task; those tasks: {single}.")
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


def learn(spec: str, tasks, datasets) -> dict[str, dict]:
  """{child task: {"parent": parent task, "parents": parent id of each child class}} from
  the training split of the tasks' dataset."""
  by_name = {t.name: t for t in tasks}
  learned = {}
  for parent, child in parse(spec, tasks):
    train = datasets[by_name[child].dataset]["train"]
    labels = {n: np.where(train.masks[n] > 0, train.labels[n], -1) for n in (parent, child)}
    learned[child] = {"parent": parent, "parents": learn_parents(
        labels[parent], labels[child], len(by_name[parent].classes),
        len(by_name[child].classes)).tolist()}
  return learned


def save(path: str, learned: dict) -> None:
  if learned:
    with open(path, "w") as f:
      json.dump(learned, f, indent=1)


def load(workdir: str) -> dict[str, dict]:
  path = workdir_lib.path(workdir, workdir_lib.HIERARCHY)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {child: {"parent": v["parent"], "parents": np.asarray(v["parents"])}
            for child, v in json.load(f).items()}


def consistency(parent_predictions: np.ndarray, child_predictions: np.ndarray,
                parents: np.ndarray) -> float:
  """Fraction of samples whose predicted child belongs to the predicted parent.

  Child classes without a known parent are not counted.
  """
  expected = parents[child_predictions]
  known = expected >= 0
  return float((expected[known] == parent_predictions[known]).mean()) if known.any() else 1.0


MODES = ("none", "predicted", "joint")


def consistent(parent_probabilities: np.ndarray, child_probabilities: np.ndarray,
               parents: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
  """Child probabilities restricted to one parent, and that parent, per sample.

  mode 'predicted': the parent is the parent task's arg-max, and the child's
  probabilities are masked to that parent's children (renormalised).
  mode 'joint': the (parent, child) pair with the highest P(parent) x P(child) among
  the pairs the hierarchy allows; the child's probabilities are masked to its parent's
  children. Child classes without a known parent are never masked out.
  """
  if mode not in MODES[1:]:
    raise ConfigError(f"hierarchy mode {mode!r} is not one of {MODES[1:]}.")
  unknown = parents < 0
  if mode == "predicted":
    chosen = parent_probabilities.argmax(-1)
  else:
    # Best allowed pair: P(parent of c) x P(c), over child classes c.
    pair = np.where(unknown, -1.0, child_probabilities *
                    parent_probabilities[:, np.maximum(parents, 0)])
    chosen = np.where(pair.max(-1) >= 0, parents[pair.argmax(-1)], parent_probabilities.argmax(-1))
  allowed = (parents[None, :] == chosen[:, None]) | unknown[None, :]
  masked = np.where(allowed, child_probabilities, 0.0)
  total = masked.sum(-1, keepdims=True)
  masked = np.where(total > 0, masked / np.maximum(total, 1e-30), child_probabilities)
  return masked, chosen


DECODINGS = ("none", "bottom_up")


def check_decoding(name: str, where: str = "config.hierarchy_decoding") -> None:
  if name not in DECODINGS:
    raise ConfigError(f"{where}={name!r} is not one of {DECODINGS}.")


def decoding_links(learned: dict, decoding: str) -> tuple:
  """Static (child task, parent task, parent id of each child class) links for `decode`,
  every child before its own parent (leaf-most first), or () for decoding 'none'."""
  check_decoding(decoding)
  if decoding == "none":
    return ()
  pending = {child: (v["parent"], tuple(int(p) for p in v["parents"]))
             for child, v in learned.items()}
  links = []
  while pending:
    # A child that is nobody's parent among the pending links goes first.
    ready = sorted(c for c in pending if c not in {p for p, _ in pending.values()})
    if not ready:
      raise ConfigError(f"config.hierarchy links {sorted(pending)} in a cycle.")
    for child in ready:
      links.append((child, *pending.pop(child)))
  return tuple(links)


def decode(outputs: dict, links: tuple) -> dict:
  """Parent tasks' logits combined with their child tasks' evidence (product of experts):

      log P'(parent) = log P(parent) + log sum_{c: parent(c) = parent} P'(c)

  leaf-most first, so the root also hears the leaves through the middle. The child
  task's own outputs are left as they are. A parent class no child class belongs to
  keeps its own probability as the missing evidence. Written with a constant matrix
  product (no scatter), so the decoded model exports to ONNX as it is.
  """
  if not links:
    return outputs
  outputs = dict(outputs)
  for child, parent, parents in links:
    parents = np.asarray(parents)
    num_parents = outputs[parent].shape[-1]
    membership = np.zeros((len(parents), num_parents), np.float32)
    known = parents >= 0
    membership[np.flatnonzero(known), parents[known]] = 1.0
    has_child = membership.any(0)
    evidence = jax.nn.softmax(outputs[child].astype(jnp.float32), -1) @ membership
    log_parent = jax.nn.log_softmax(outputs[parent].astype(jnp.float32), -1)
    outputs[parent] = log_parent + jnp.where(
        has_child, jnp.log(jnp.maximum(evidence, 1e-30)), log_parent)
  return outputs
