"""regression: one number per sample from a numeric column (e.g. `year`).

Targets are normalised with the training split's mean and std (saved with the run's
vocabularies), trained with an L2 or L1 loss (`loss_type`), and scored as MAE and RMSE
in the column's own units, where lower is better. Empty values are masked; non-numeric
ones are masked too and listed, by row, in the data report.
"""

import jax.numpy as jnp
import numpy as np

from fashion_jax import checks
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.errors import ConfigError
from fashion_jax.tasks import base

LOSS_TYPES = ("l2", "l1")


def _numbers(values: np.ndarray) -> np.ndarray:
  """Raw strings -> float64, NaN where empty or not a finite number."""
  out = np.full(len(values), np.nan)
  for i, value in enumerate(values):
    try:
      out[i] = float(value)
    except (TypeError, ValueError):
      continue
  out[~np.isfinite(out)] = np.nan
  return out


class Regression(base.TaskKind):
  options = {"loss_type": "l2"}
  headline = ("mae",)
  lower_is_better = ("loss", "mae", "rmse")

  def metric_names(self, task):
    return ("loss", "mae", "rmse")

  def check_options(self, options, field):
    checks.choice(options["loss_type"], f"{field}.loss_type", LOSS_TYPES)

  def inspect(self, task, values, train_rows, shown):
    numbers = _numbers(values)
    known = numbers[np.isfinite(numbers)]
    return {"not_numeric": int(sum(bool(v) for v in values[~np.isfinite(numbers)])),
            **({"min": float(known.min()), "mean": float(known.mean()),
                "max": float(known.max())} if len(known) else {})}

  def build_vocab(self, task, values, rare_policy):
    numbers = _numbers(values)
    known = numbers[np.isfinite(numbers)]
    if not len(known):
      raise ConfigError(f"column '{task.column}' has no numeric value in the training split.")
    return vocab_lib.Vocab(column=task.column, classes=[],
                           fitted={"mean": float(known.mean()), "std": float(known.std()) or 1.0})

  def encode(self, task, vocab, values):
    numbers = _numbers(values)
    mask = np.isfinite(numbers)
    targets = np.where(mask, (numbers - vocab.fitted["mean"]) / vocab.fitted["std"], 0.0)
    return targets.astype(np.float32), mask.astype(np.float32)

  def missing_labels(self, task, vocab, count):
    return np.zeros(count, np.float32)

  def masked_values(self, task, values, mask):
    return "non-numeric values (masked)", np.flatnonzero((values != "") & (mask == 0))

  def head_size(self, task, num_classes):
    return 1

  def _errors(self, output, labels):
    return output[..., 0].astype(jnp.float32) - labels  # In units of the training std.

  def loss(self, task, output, labels, mask):
    error = self._errors(output, labels)
    per_sample = error ** 2 if task.option("loss_type") == "l2" else jnp.abs(error)
    return jnp.sum(per_sample * mask) / jnp.maximum(jnp.sum(mask), 1.0)

  def eval_stats(self, task, output, labels, mask, roles):
    stats = base.loss_stats(self.loss(task, output, labels, mask), mask)
    error = self._errors(output, labels) * task.fit("std")
    stats["abs_error"] = jnp.sum(jnp.abs(error) * mask)
    stats["squared_error"] = jnp.sum(error ** 2 * mask)
    return stats

  def summarize(self, task, total):
    count = jnp.maximum(total["count"], 1.0)
    return {"loss": base.mean_loss(total), "mae": total["abs_error"] / count,
            "rmse": jnp.sqrt(total["squared_error"] / count)}

  def activate(self, task, output):
    return output[..., 0].astype(jnp.float32) * task.fit("std") + task.fit("mean")

  def caption(self, task, label, output, has_label):
    predicted = float(output[0]) * task.fit("std") + task.fit("mean")
    text = f"{task.name}: {predicted:.4g}"
    if has_label:
      text += f" (true {float(label) * task.fit('std') + task.fit('mean'):.4g})"
    return text, False


KIND = Regression()
