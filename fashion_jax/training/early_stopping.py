"""Early stopping on a validation metric, with patience counted in evaluations.

`config.early_stopping`: patience (0 = off), metric and mode ('' = the checkpoint's
best_metric / best_mode; 'auto' = the direction the metric's task kind gives it), min_delta (the improvement that counts). Its state rides in
the checkpoints, so a resumed run keeps counting.
"""

import math

from fashion_jax import tasks as tasks_lib
from fashion_jax.errors import ConfigError


class EarlyStopping:

  def __init__(self, config, checkpoint_config, valid_metrics, tasks=()):
    self.patience = int(config.patience)
    self.metric = config.metric or checkpoint_config.best_metric
    self.mode = tasks_lib.metric_mode(list(tasks), self.metric,
                                      config.mode or checkpoint_config.best_mode)
    self.min_delta = float(config.min_delta)
    self.best = None
    self.bad_evals = 0
    if self.patience < 0:
      raise ConfigError(f"config.early_stopping.patience={self.patience} must be >= 0.")
    if self.patience and self.metric not in valid_metrics:
      raise ConfigError(f"config.early_stopping.metric={self.metric!r} is not one of "
                        f"{valid_metrics}.")
    if self.mode not in ("max", "min"):
      raise ConfigError(f"config.early_stopping.mode={self.mode!r}: expected max, min or auto.")
    if not self.min_delta >= 0:
      raise ConfigError(f"config.early_stopping.min_delta={self.min_delta} must be >= 0.")

  @property
  def stopped(self) -> bool:
    return bool(self.patience) and self.bad_evals >= self.patience

  def should_stop(self, results: dict) -> bool:
    """Records one evaluation; True when `patience` evaluations in a row did not improve."""
    if not self.patience or self.metric not in results:
      return False
    value = results[self.metric]
    sign = 1.0 if self.mode == "max" else -1.0
    if self.best is None or sign * (value - self.best) > self.min_delta or math.isnan(self.best):
      self.best, self.bad_evals = value, 0
    else:
      self.bad_evals += 1
    return self.stopped

  def state_dict(self) -> dict:
    return {"best": self.best, "bad_evals": self.bad_evals}

  def load_state_dict(self, state: dict) -> None:
    self.best, self.bad_evals = state.get("best"), state.get("bad_evals", 0)
