"""Loss balancing: the combination rules by hand, and each balancer inside a real run."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import tiny_config
from fashion_jax.evaluation import events
from fashion_jax.training import balancing, train
from fashion_jax.errors import ConfigError


def test_fixed_and_uncertainty_combinations_by_hand():
  losses, weights = jnp.array([2.0, 0.5]), jnp.array([1.0, 0.5])
  fixed = balancing.combine(losses, weights)
  np.testing.assert_allclose(fixed.total, 2.0 + 0.25)
  s = jnp.array([np.log(4.0), 0.0])  # Task 0 has variance 4: its loss counts 1/4.
  learned = balancing.combine(losses, weights, s)
  np.testing.assert_allclose(learned.total, 1.0 * (2.0 / 4 + np.log(4.0)) + 0.5 * (0.5 + 0))
  np.testing.assert_allclose(learned.effective_weights, [0.25, 0.5])


def test_dwa_weights_follow_the_loss_ratios():
  config = ml_collections.ConfigDict({"name": "dwa", "dwa_temperature": 2.0})
  dwa = balancing.make_balancer(config, 3)
  np.testing.assert_allclose(dwa.factors(), 1.0)
  dwa.observe(np.array([1.0, 1.0, 1.0]))
  np.testing.assert_allclose(dwa.factors(), 1.0)  # Needs two periods.
  dwa.observe(np.array([0.5, 1.0, 2.0]))  # Ratios 0.5, 1, 2.
  e = np.exp(np.array([0.5, 1.0, 2.0]) / 2.0)
  np.testing.assert_allclose(dwa.factors(), 3 * e / e.sum(), rtol=1e-6)
  restored = balancing.make_balancer(config, 3)
  restored.load_state_dict(dwa.state_dict())
  np.testing.assert_allclose(restored.factors(), dwa.factors())
  with pytest.raises(ConfigError, match="config.loss_balancing.name='gradnorm'"):
    balancing.make_balancer(ml_collections.ConfigDict({"name": "gradnorm"}), 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uncertainty", "dwa"])
def test_balancers_train_and_log_their_weights(tmp_path, name):
  config = tiny_config()
  config.loss_balancing.name = name
  config.num_train_steps = 8
  config.log_every_steps = 2
  config.eval_every_steps = 8
  config.checkpoint.every_steps = 8
  train.train_and_evaluate(config, str(tmp_path))
  scalars = events.read_scalars(str(tmp_path))
  weights = {t: [v for _, v in scalars[f"loss_weight/{t}"]]
             for t in ("articleType", "gender", "embedding")}
  assert all(len(w) == 4 for w in weights.values())
  if name == "dwa":
    # Equal factors for two periods, then DWA's: they sum to T = 3 over the configured
    # weights (gender has weight 0.5).
    np.testing.assert_allclose(weights["gender"][:2], 0.5, rtol=1e-6)
    later = np.array([weights["articleType"][3], weights["gender"][3] / 0.5,
                      weights["embedding"][3]])
    np.testing.assert_allclose(later.sum(), 3.0, rtol=1e-5)
    assert not np.allclose(later, 1.0)
  else:
    # The learned log-variances moved: effective weights are no longer the configured ones.
    assert not np.isclose(weights["articleType"][-1], 1.0)
    from fashion_jax.evaluation import trained
    run = trained.load(str(tmp_path), "latest")
    log_variances = jax.device_get(run.state["model"]["loss_log_variances"][...])
    np.testing.assert_allclose(np.exp(-log_variances[0]), weights["articleType"][-1], rtol=1e-2)
