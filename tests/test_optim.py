"""Schedules, per-group learning rates and gradient accumulation against hand-worked values."""

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from fashion_jax.training import optim
from fashion_jax.errors import ConfigError


def _cfg(**overrides):
  cfg = load_config("default").optimizer
  cfg.update(overrides)
  return cfg


def test_step_schedule_warms_up_then_drops_at_the_boundaries():
  _, schedule = optim.make_optimizer(_cfg(schedule="step", learning_rate=1.0, warmup_steps=10,
                                          step_boundaries=(0.5, 0.8), step_factor=0.1), 100)
  np.testing.assert_allclose([schedule(s) for s in (0, 5, 10, 49, 50, 79, 80, 99)],
                             [0, 0.5, 1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)


def test_one_cycle_rises_to_the_peak_then_anneals():
  _, schedule = optim.make_optimizer(_cfg(schedule="one_cycle", learning_rate=1.0,
                                          warmup_steps=30, end_lr_factor=0.01), 100)
  values = np.array([schedule(s) for s in range(100)])
  assert values.argmax() == 30 and np.isclose(values.max(), 1.0, rtol=1e-3)
  np.testing.assert_allclose(values[0], 1 / 25, rtol=1e-6)
  assert np.all(np.diff(values[:30]) > 0) and np.all(np.diff(values[31:]) < 0)
  np.testing.assert_allclose(values[-1], 0.01, rtol=0.05)


def _sgd(**overrides):
  return _cfg(**{"name": "sgd", "schedule": "constant", "learning_rate": 0.5, "momentum": 0.0,
                 "weight_decay": 0.0, "grad_clip_norm": 0.0, **overrides})


def _params():
  return {"backbone": {"w": jnp.ones(3)}, "heads": {"w": jnp.ones(2)}}


def test_backbone_learning_rate_multiplier():
  tx, _ = optim.make_optimizer(_sgd(backbone_lr_multiplier=0.1), 10)
  params = _params()
  grads = {"backbone": {"w": jnp.full(3, 2.0)}, "heads": {"w": jnp.full(2, 2.0)}}
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["backbone"]["w"], -0.5 * 0.1 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(updates["heads"]["w"], -0.5 * 2.0, rtol=1e-6)


def test_gradient_accumulation_averages_k_batches_into_one_update():
  tx, schedule = optim.make_optimizer(_sgd(accumulate_steps=2), 10)
  params = _params()
  state = tx.init(params)
  g1 = {"backbone": {"w": jnp.full(3, 1.0)}, "heads": {"w": jnp.full(2, 1.0)}}
  g2 = {"backbone": {"w": jnp.full(3, 3.0)}, "heads": {"w": jnp.full(2, 3.0)}}
  first, state = tx.update(g1, state, params)
  np.testing.assert_allclose(first["heads"]["w"], 0.0)  # No update until k batches.
  second, state = tx.update(g2, state, params)
  np.testing.assert_allclose(second["heads"]["w"], -0.5 * (1.0 + 3.0) / 2, rtol=1e-6)
  with pytest.raises(ConfigError, match="accumulate_steps=0"):
    optim.make_optimizer(_sgd(accumulate_steps=0), 10)


def test_weight_decay_skips_batchnorm_and_biases():
  tx, _ = optim.make_optimizer(_sgd(weight_decay=0.1), 10)
  params = {"conv": {"kernel": jnp.ones((3, 3, 2, 2))}, "bn": {"scale": jnp.ones(2),
                                                              "bias": jnp.ones(2)}}
  zeros = {"conv": {"kernel": jnp.zeros((3, 3, 2, 2))}, "bn": {"scale": jnp.zeros(2),
                                                              "bias": jnp.zeros(2)}}
  updates, _ = tx.update(zeros, tx.init(params), params)
  np.testing.assert_allclose(updates["conv"]["kernel"], -0.5 * 0.1, rtol=1e-6)  # lr x wd x w
  np.testing.assert_allclose(updates["bn"]["scale"], 0.0)
  np.testing.assert_allclose(updates["bn"]["bias"], 0.0)
