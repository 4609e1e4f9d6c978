"""Out-of-sample probabilities: k-fold cross-fitting of linear heads on frozen features.

Confident learning needs, for every labelled row, the probabilities of a model that did
not train on that row. The heads are linear (softmax for one label a row, independent
sigmoids for multi-hot targets) on standardised features, all k folds fitted at once
(vmapped over fold weights: one compile a task), full-batch Adam with an L2 penalty.
Rows without a label are scored by the mean of the k fold heads.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class HeadSettings:
  folds: int = 5
  # Measured on the shared images' ImageNet Lite0 features (docs/results.md, the audit):
  # 100 steps at 0.03 are within 0.005 of 300 at 0.01 in accuracy at a third of the time;
  # a weaker penalty overfits baseColour (log loss 2.3 at 1e-3 against 1.6).
  steps: int = 100
  learning_rate: float = 0.03
  l2: float = 0.01  # Ridge penalty l2 / 2 * ||W||^2, added to the mean loss per row.
  seed: int = 0


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
  """A fold id for every row, each class dealt round-robin over the folds in a seeded
  random order (multi-hot targets: by each row's rarest label)."""
  rng = np.random.default_rng(seed)
  if labels.ndim == 2:  # Multi-hot: stratify by the rarest label of each row.
    counts = labels.sum(0)
    rarity = np.where(labels > 0, counts[None, :], np.inf)
    strata = np.where(labels.any(1), np.argmin(rarity, 1), -1)
  else:
    strata = labels
  fold = np.zeros(len(labels), np.int64)
  offset = 0
  for value in np.unique(strata):
    rows = rng.permutation(np.flatnonzero(strata == value))
    fold[rows] = (offset + np.arange(len(rows))) % folds
    offset += len(rows)  # Classes continue where the last one stopped: folds stay level.
  return fold


def standardize(features: np.ndarray) -> np.ndarray:
  """Zero mean, unit variance per feature (over all rows: no labels involved)."""
  mean = features.mean(0, keepdims=True)
  std = features.std(0, keepdims=True)
  return ((features - mean) / np.maximum(std, 1e-6)).astype(np.float32)


def _loss(params, x, targets, weights, multi_label: bool, l2: float):
  logits = x @ params["w"] + params["b"]
  if multi_label:
    per_row = optax.sigmoid_binary_cross_entropy(logits, targets).mean(-1)
  else:
    per_row = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  data = (per_row * weights).sum() / jnp.maximum(weights.sum(), 1.0)
  return data + 0.5 * l2 * jnp.sum(params["w"] ** 2)


def _fit_all_folds(x, targets, fold_weights, num_classes: int, multi_label: bool,
                   settings: HeadSettings):
  """Heads for every fold at once: fold_weights [K, N] (0 on the held-out rows)."""
  optimizer = optax.adam(settings.learning_rate)

  def fit(weights):
    params = {"w": jnp.zeros((x.shape[1], num_classes), jnp.float32),
              "b": jnp.zeros((num_classes,), jnp.float32)}
    grad = jax.grad(_loss)

    def step(_, carry):
      params, opt_state = carry
      g = grad(params, x, targets, weights, multi_label, settings.l2)
      updates, opt_state = optimizer.update(g, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    params, _ = jax.lax.fori_loop(0, settings.steps, step, (params, optimizer.init(params)))
    return params

  return jax.vmap(fit)(fold_weights)


@jax.jit
def _probabilities(params, x, multi_label_flag):
  logits = jnp.einsum("nd,kdc->knc", x, params["w"]) + params["b"][:, None, :]
  return jnp.where(multi_label_flag, jax.nn.sigmoid(logits), jax.nn.softmax(logits, -1))


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, known: np.ndarray,
                                num_classes: int, settings: HeadSettings = HeadSettings(),
                                fold: np.ndarray | None = None
                                ) -> tuple[np.ndarray, np.ndarray]:
  """(probabilities [N, C], fold per row: -1 for rows without a label): a known row's
  from the head that did not see it, an unknown row's the mean of all k heads.

  `labels`: class ids [N] or multi-hot targets [N, C]; `known`: bool [N], rows whose
  label is given; `fold`: a fold id per row (default: stratified_folds of the known
  rows). `features` are standardised here.
  """
  multi_label = labels.ndim == 2
  x = jnp.asarray(standardize(features))
  known_rows = np.flatnonzero(known)
  if fold is None:
    fold = np.full(len(labels), -1, np.int64)
    fold[known_rows] = stratified_folds(labels[known_rows], settings.folds, settings.seed)
  fold = np.where(known, fold, -1)
  fold_weights = np.stack([(fold >= 0) & (fold != k) for k in range(settings.folds)])
  targets = np.where(known[:, None] if multi_label else known, labels, 0)
  fit = jax.jit(_fit_all_folds, static_argnums=(3, 4, 5))
  params = fit(x, jnp.asarray(targets, jnp.float32 if multi_label else jnp.int32),
               jnp.asarray(fold_weights, jnp.float32), num_classes, multi_label, settings)
  per_fold = np.asarray(_probabilities(params, x, multi_label))  # [K, N, C]
  probabilities = per_fold.mean(0)
  probabilities[known_rows] = per_fold[fold[known_rows], known_rows]
  return probabilities, fold
