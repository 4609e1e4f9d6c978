"""Per-task losses. Each takes a per-sample mask and returns the mean over masked samples.

A mask of 0 means the sample has no label for this task (missing, dropped as rare,
or padding in an eval batch); it contributes neither to the loss nor to its gradient.
"""

import jax
import jax.numpy as jnp
import optax


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array,
                          label_smoothing: float = 0.0,
                          class_weights: jax.Array | None = None) -> jax.Array:
  """Cross-entropy with integer labels; labels < 0 must be masked out.

  With `class_weights` [C], sample i counts with weight class_weights[label_i] and the
  mean is over the weights (as torch.nn.CrossEntropyLoss(weight=...)).
  """
  num_classes = logits.shape[-1]
  safe_labels = jnp.maximum(labels, 0)
  targets = jax.nn.one_hot(safe_labels, num_classes)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  losses = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
  if class_weights is not None:
    mask = mask * class_weights[safe_labels]
  return _masked_mean(losses, mask)


def sigmoid_binary_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array,
                                 pos_weight: float = 1.0) -> jax.Array:
  """Multi-label BCE averaged over classes; `pos_weight` scales the positive term."""
  logits = logits.astype(jnp.float32)
  log_p = jax.nn.log_sigmoid(logits)
  log_not_p = jax.nn.log_sigmoid(-logits)
  losses = -(pos_weight * targets * log_p + (1.0 - targets) * log_not_p)
  return _masked_mean(jnp.mean(losses, axis=-1), mask)


def pairwise_distances(embeddings: jax.Array) -> jax.Array:
  """Euclidean distances; the epsilon keeps the sqrt differentiable at 0."""
  sq = jnp.sum(embeddings**2, axis=-1)
  d2 = sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T
  return jnp.sqrt(jnp.maximum(d2, 0.0) + 1e-12)


def batch_hard_triplet(embeddings: jax.Array, labels: jax.Array, mask: jax.Array,
                       margin: float) -> jax.Array:
  """Batch-hard triplet loss (Hermans et al., 2017).

  For each anchor: the farthest sample with the same label and the closest with a
  different label, loss = relu(d_pos - d_neg + margin). Anchors without a positive or
  without a negative in the batch are left out of the mean.
  """
  embeddings = embeddings.astype(jnp.float32)
  dist = pairwise_distances(embeddings)
  valid = mask > 0
  same = labels[:, None] == labels[None, :]
  pair_valid = valid[:, None] & valid[None, :]
  not_self = ~jnp.eye(labels.shape[0], dtype=bool)
  positive = same & pair_valid & not_self
  negative = ~same & pair_valid
  hardest_pos = jnp.max(jnp.where(positive, dist, -jnp.inf), axis=1)
  hardest_neg = jnp.min(jnp.where(negative, dist, jnp.inf), axis=1)
  has_both = positive.any(axis=1) & negative.any(axis=1) & valid
  losses = jax.nn.relu(jnp.where(has_both, hardest_pos - hardest_neg + margin, 0.0))
  return _masked_mean(losses, has_both.astype(jnp.float32))
