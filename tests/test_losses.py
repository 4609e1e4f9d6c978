"""Each loss against a plain numpy reference on small inputs."""

import jax.numpy as jnp
import numpy as np

from fashion_jax import losses

RNG = np.random.default_rng(0)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_softmax_cross_entropy_with_smoothing_and_mask():
  logits = RNG.normal(size=(6, 4))
  labels = np.array([0, 3, 1, -1, 2, 2])
  mask = np.array([1, 1, 1, 0, 1, 0], np.float32)
  for smoothing in (0.0, 0.1):
    targets = np.eye(4)[np.maximum(labels, 0)] * (1 - smoothing) + smoothing / 4
    per_sample = -(targets * _log_softmax(logits)).sum(-1)
    expected = (per_sample * mask).sum() / mask.sum()
    got = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                       jnp.asarray(mask), smoothing)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_sigmoid_bce_with_pos_weight_and_mask():
  logits = RNG.normal(size=(5, 3))
  targets = (RNG.random((5, 3)) > 0.5).astype(np.float32)
  mask = np.array([1, 0, 1, 1, 1], np.float32)
  p = 1 / (1 + np.exp(-logits))
  for pos_weight in (1.0, 3.0):
    per = -(pos_weight * targets * np.log(p) + (1 - targets) * np.log(1 - p))
    expected = (per.mean(-1) * mask).sum() / mask.sum()
    got = losses.sigmoid_binary_cross_entropy(jnp.asarray(logits), jnp.asarray(targets),
                                              jnp.asarray(mask), pos_weight)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _triplet_reference(emb, labels, mask, margin):
  total, count = 0.0, 0
  for i in range(len(emb)):
    if not mask[i]:
      continue
    d = np.linalg.norm(emb - emb[i], axis=1)
    pos = [d[j] for j in range(len(emb)) if j != i and mask[j] and labels[j] == labels[i]]
    neg = [d[j] for j in range(len(emb)) if mask[j] and labels[j] != labels[i]]
    if not pos or not neg:
      continue
    total += max(max(pos) - min(neg) + margin, 0.0)
    count += 1
  return total / max(count, 1)


def test_batch_hard_triplet_matches_reference():
  emb = RNG.normal(size=(10, 5))
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  # Label 4 has a single sample: that anchor has no positive and is left out.
  labels = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 4])
  mask = np.array([1, 1, 1, 1, 0, 1, 1, 1, 0, 1], np.float32)
  for margin in (0.2, 1.0):
    expected = _triplet_reference(emb, labels, mask, margin)
    got = losses.batch_hard_triplet(jnp.asarray(emb, jnp.float32), jnp.asarray(labels),
                                    jnp.asarray(mask), margin)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert expected > 0


def test_batch_hard_triplet_without_positives_is_zero_with_finite_gradient():
  import jax
  emb = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
  labels = jnp.arange(4)
  grad = jax.grad(lambda e: losses.batch_hard_triplet(e, labels, jnp.ones(4), 0.2))(emb)
  assert float(losses.batch_hard_triplet(emb, labels, jnp.ones(4), 0.2)) == 0.0
  assert np.all(np.isfinite(grad))


def test_class_weightings_by_hand():
  from fashion_jax import class_weights
  counts = np.array([6, 2, 0, 2])
  np.testing.assert_allclose(class_weights.class_weights(counts, "none"), [1, 1, 0, 1])
  # Inverse frequency, scaled to a mean of 1 over the 10 samples: raw 1/6, 1/2, 1/2
  # sum to 6*(1/6) + 2*(1/2) + 2*(1/2) = 3 over 10 samples -> factor 10/3.
  np.testing.assert_allclose(class_weights.class_weights(counts, "inverse_frequency"),
                             [10 / 18, 10 / 6, 0, 10 / 6])
  beta = 0.5
  raw = np.array([(1 - beta) / (1 - beta**6), (1 - beta) / (1 - beta**2)])
  scale = 10 / (6 * raw[0] + 4 * raw[1])
  np.testing.assert_allclose(class_weights.class_weights(counts, "effective_number", beta),
                             [raw[0] * scale, raw[1] * scale, 0, raw[1] * scale])


def test_class_weighted_cross_entropy_matches_a_weighted_mean():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 3)).astype(np.float32)
  labels = np.array([0, 1, 2, 2, -1, 1])
  mask = (labels >= 0).astype(np.float32)
  weights = np.array([0.5, 2.0, 1.0], np.float32)
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  per_sample = [-log_p[i, labels[i]] for i in range(6) if labels[i] >= 0]
  w = [weights[labels[i]] for i in range(6) if labels[i] >= 0]
  expected = np.dot(per_sample, w) / np.sum(w)
  got = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask),
                                     class_weights=jnp.asarray(weights))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
