"""The training metrics of the steps since the last log line, and what non-finite ones mean.

Per-step metrics stay on the device until they are needed (fetching every step would
make the host wait for every step), then are checked for NaN/Inf before anything is
logged or checkpointed, so a bad state is never saved.

`config.nonfinite_policy`:
- 'stop': the run stops at the first non-finite loss or gradient, naming the step and
  the tasks whose loss went bad; the checkpoints already written (all from good states)
  are kept.
- 'skip': the train step leaves the state unchanged when its loss or gradient is not
  finite (see train.train_step); such steps are logged and counted, and the run stops
  once more than `config.max_skipped_steps` were skipped.
"""

import math

import jax
import numpy as np
from absl import logging

from fashion_jax.errors import ConfigError

POLICIES = ("stop", "skip")
SKIPPED = "skipped"  # Per-step metric of the 'skip' step: 1.0 when its update was dropped.


def check_policy(policy: str) -> None:
  if policy not in POLICIES:
    raise ConfigError(f"config.nonfinite_policy={policy!r} is not one of {POLICIES}.")


class MetricWindow:
  """Metrics of the steps since the last summary, in step order."""

  def __init__(self, policy: str, max_skipped: int):
    check_policy(policy)
    self.policy = policy
    self.max_skipped = max_skipped
    self.skipped_total = 0
    self._steps: list[int] = []
    self._metrics: list[dict] = []  # Device arrays until fetched, then numpy scalars.
    self._checked = 0  # Steps already checked (and reported).

  def __len__(self) -> int:
    return len(self._steps)

  def add(self, step: int, metrics: dict) -> None:
    self._steps.append(step)
    self._metrics.append(metrics)

  def _fetch(self) -> list[dict]:
    self._metrics = jax.device_get(self._metrics)
    return self._metrics

  def check(self, last_checkpoint: int | None) -> None:
    """Raises FloatingPointError under 'stop' (or too many skips) for a non-finite step."""
    metrics = self._fetch()
    for step, values in zip(self._steps[self._checked:], metrics[self._checked:]):
      bad = _nonfinite(values)
      if not bad and not values.get(SKIPPED, 0.0) > 0:
        continue
      what = _describe(bad)
      kept = (f"the last checkpoint (step {last_checkpoint}) is from a good state and is "
              "kept" if last_checkpoint else "no checkpoint had been written yet")
      if self.policy == "stop":
        raise FloatingPointError(
            f"Non-finite training values at step {step}: {what}. Stopped; {kept}. Lower "
            "config.optimizer.learning_rate, check that task's labels, or set "
            "config.nonfinite_policy=skip to drop such steps.")
      self.skipped_total += 1
      logging.warning("Step %d skipped (state unchanged): %s; %d skipped so far.", step, what,
                      self.skipped_total)
      if self.skipped_total > self.max_skipped:
        raise FloatingPointError(
            f"{self.skipped_total} training steps had non-finite values (the last at step "
            f"{step}: {what}), more than config.max_skipped_steps={self.max_skipped}. "
            f"Stopped; {kept}.")
    self._checked = len(metrics)

  def summary(self) -> dict[str, float]:
    """Mean of each metric over the window's finite steps; empties the window."""
    metrics = self._fetch()
    good = [m for m in metrics if not m.get(SKIPPED, 0.0) > 0] or metrics
    summary = {k: float(np.mean([m[k] for m in good])) for k in good[0] if k != SKIPPED}
    if self.policy == "skip":
      summary["skipped_steps"] = float(len(metrics) - len(good))
    self._steps, self._metrics, self._checked = [], [], 0
    return summary

  def state_dict(self) -> dict:
    """The window's values (exact: float32 survives JSON), for a checkpoint mid-window."""
    return {"steps": list(self._steps), "skipped_total": self.skipped_total,
            "metrics": [{k: float(v) for k, v in m.items()} for m in self._fetch()]}

  def load_state_dict(self, state: dict) -> None:
    self._steps = list(state.get("steps", []))
    self._metrics = [{k: np.float32(v) for k, v in m.items()} for m in state.get("metrics", [])]
    self.skipped_total = state.get("skipped_total", 0)
    self._checked = len(self._steps)  # Checked before they were saved.


def _nonfinite(metrics: dict) -> list[str]:
  return sorted(k for k, v in metrics.items() if k != SKIPPED and not math.isfinite(float(v)))


def _describe(bad: list[str]) -> str:
  tasks = [k.split("/", 1)[1] for k in bad if k.startswith("loss/") and k != "loss/total"]
  if tasks:
    return f"loss of task(s) {tasks}"
  return "gradient norm" if "grad_norm" in bad else (", ".join(bad) or "non-finite values")
