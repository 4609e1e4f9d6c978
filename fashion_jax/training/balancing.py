"""Loss balancing across tasks, selected by `config.loss_balancing.name`.

  fixed        total = sum_t w_t L_t with the configured (or stage) weights w_t.
  uncertainty  Kendall et al. (2018): a learned log-variance s_t per task (a model
               parameter), total = sum_t w_t (exp(-s_t) L_t + s_t).
  dwa          Dynamic Weight Average (Liu et al., 2019): each logging period,
               lambda_t = T softmax_t(r_t / temperature) with r_t = L_t(k-1) / L_t(k-2)
               the ratio of the task's mean loss over the last two periods (tasks
               learning slowest get more weight); total = sum_t w_t lambda_t L_t.

The effective weight of every task is logged as `loss_weight/<task>` at each logging
step. The train step takes the host-side weights as an input array, so changing
them (a stage or DWA) never recompiles.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from fashion_jax.errors import ConfigError


class Balancer:
  """Host-side weight policy; `learned` balancers also add parameters to the model."""

  learned = False

  def __init__(self, config, num_tasks: int):
    self.num_tasks = num_tasks

  def factors(self) -> np.ndarray:
    """Multipliers of the configured weights for the next steps."""
    return np.ones(self.num_tasks, np.float32)

  def observe(self, period_losses: np.ndarray) -> None:
    """Called at each logging step with the period's mean loss of every task."""

  def state_dict(self) -> dict:
    return {}

  def load_state_dict(self, state: dict) -> None:
    pass


class Uncertainty(Balancer):
  learned = True


class DynamicWeightAverage(Balancer):

  def __init__(self, config, num_tasks: int):
    super().__init__(config, num_tasks)
    self.temperature = float(config.dwa_temperature)
    if self.temperature <= 0:
      raise ConfigError(f"config.loss_balancing.dwa_temperature={self.temperature} must be > 0.")
    self.history: list[list[float]] = []  # The last two periods' mean losses.

  def factors(self) -> np.ndarray:
    if len(self.history) < 2:
      return np.ones(self.num_tasks, np.float32)
    ratios = np.asarray(self.history[-1]) / np.maximum(np.asarray(self.history[-2]), 1e-12)
    logits = ratios / self.temperature
    weights = np.exp(logits - logits.max())
    return (self.num_tasks * weights / weights.sum()).astype(np.float32)

  def observe(self, period_losses: np.ndarray) -> None:
    self.history = (self.history + [list(map(float, period_losses))])[-2:]

  def state_dict(self) -> dict:
    return {"history": self.history}

  def load_state_dict(self, state: dict) -> None:
    self.history = [list(h) for h in state.get("history", [])]


BALANCERS = {"fixed": Balancer, "uncertainty": Uncertainty, "dwa": DynamicWeightAverage}


def make_balancer(config, num_tasks: int) -> Balancer:
  name = config.name
  if name not in BALANCERS:
    raise ConfigError(f"config.loss_balancing.name={name!r} is not one of {sorted(BALANCERS)}.")
  return BALANCERS[name](config, num_tasks)


@dataclasses.dataclass(frozen=True)
class Combined:
  total: jnp.ndarray
  effective_weights: jnp.ndarray  # [T]


def combine(task_losses: jnp.ndarray, weights: jnp.ndarray,
            log_variances: jnp.ndarray | None = None) -> Combined:
  """Weighted total of per-task losses [T]; with log-variances, the uncertainty form."""
  if log_variances is None:
    return Combined(jnp.sum(weights * task_losses), weights)
  precision = jnp.exp(-log_variances)
  total = jnp.sum(weights * (precision * task_losses + log_variances))
  return Combined(total, weights * precision)
