"""Optimisers and learning-rate schedules, selected by name from `config.optimizer`."""

from typing import Callable

import jax
import optax
from fashion_jax.errors import ConfigError


def _warmup_cosine(cfg, total_steps: int) -> optax.Schedule:
  warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=cfg.learning_rate * cfg.end_lr_factor)


def _constant(cfg, total_steps: int) -> optax.Schedule:
  return optax.constant_schedule(cfg.learning_rate)


SCHEDULES: dict[str, Callable] = {"warmup_cosine": _warmup_cosine, "constant": _constant}


def _decay_mask(params):
  # No weight decay on BatchNorm scales/biases or any bias: only on kernels (ndim > 1).
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _adamw(cfg, schedule):
  return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                     mask=_decay_mask)


def _sgd(cfg, schedule):
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask),
                     optax.sgd(schedule, momentum=cfg.momentum, nesterov=True))


OPTIMIZERS: dict[str, Callable] = {"adamw": _adamw, "sgd": _sgd}


def make_optimizer(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns (transformation, schedule) for `config.optimizer`."""
  if cfg.name not in OPTIMIZERS:
    raise ConfigError(f"config.optimizer.name={cfg.name!r} is not one of {sorted(OPTIMIZERS)}.")
  if cfg.schedule not in SCHEDULES:
    raise ConfigError(f"config.optimizer.schedule={cfg.schedule!r} is not one of "
                     f"{sorted(SCHEDULES)}.")
  schedule = SCHEDULES[cfg.schedule](cfg, total_steps)
  tx = OPTIMIZERS[cfg.name](cfg, schedule)
  if cfg.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
  return tx, schedule
