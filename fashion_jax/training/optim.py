"""Optimisers and learning-rate schedules, selected by name from `config.optimizer`.

    schedule   warmup_cosine | one_cycle | step | constant
    name       adamw | sgd (Nesterov momentum)
    backbone_lr_multiplier  the backbone's learning rate relative to the heads' (e.g. 0.1
                            when fine-tuning pretrained weights)
    accumulate_steps        k > 1: gradients of k consecutive batches are averaged into
                            one update (an effective batch k x batch_size); schedules
                            then count updates, not batches
"""

from typing import Callable

import jax
import optax
from absl import logging

from fashion_jax import checks


def _warmup_cosine(cfg, total_steps: int, warmup: int) -> optax.Schedule:
  warmup = min(warmup, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=cfg.learning_rate * cfg.end_lr_factor)


def _one_cycle(cfg, total_steps: int, warmup: int) -> optax.Schedule:
  # Rises for warmup_steps from lr/25 to lr, then anneals to lr * end_lr_factor (cosine).
  pct_start = min(max(warmup / max(total_steps, 1), 0.01), 0.99)
  return optax.cosine_onecycle_schedule(
      transition_steps=max(total_steps, 2), peak_value=cfg.learning_rate, pct_start=pct_start,
      div_factor=25.0, final_div_factor=1.0 / max(25.0 * cfg.end_lr_factor, 1e-12))


def _step(cfg, total_steps: int, warmup_steps: int) -> optax.Schedule:
  # Linear warmup, then x step_factor at each fraction of training in step_boundaries.
  # join_schedules starts the second schedule's count at the warmup's end.
  boundaries = {max(int(round(f * total_steps)) - warmup_steps, 1): cfg.step_factor
                for f in cfg.step_boundaries}
  decay = optax.piecewise_constant_schedule(cfg.learning_rate, boundaries)
  if not warmup_steps:
    return decay
  warmup = optax.linear_schedule(0.0, cfg.learning_rate, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def _constant(cfg, total_steps: int, warmup: int) -> optax.Schedule:
  return optax.constant_schedule(cfg.learning_rate)


SCHEDULES: dict[str, Callable] = {"warmup_cosine": _warmup_cosine, "one_cycle": _one_cycle,
                                  "step": _step, "constant": _constant}


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


def param_groups(params):
  """'backbone' or 'heads' for every parameter, by its path in the model."""
  def group(path, _):
    return "backbone" if any(getattr(k, "key", None) == "backbone" for k in path) else "heads"
  return jax.tree_util.tree_map_with_path(group, params)


def check_config(cfg) -> None:
  """`config.optimizer`: what each field accepts (docs/reliability.md lists them)."""
  checks.choice(cfg.name, "optimizer.name", OPTIMIZERS)
  checks.choice(cfg.schedule, "optimizer.schedule", SCHEDULES)
  checks.number(cfg.learning_rate, "optimizer.learning_rate", 0, low_open=True)
  checks.number(cfg.warmup_steps, "optimizer.warmup_steps", 0, integer=True)
  checks.number(cfg.get("warmup_fraction", 0.0), "optimizer.warmup_fraction", 0, 1,
                high_open=True)
  checks.number(cfg.end_lr_factor, "optimizer.end_lr_factor", 0, 1)
  for field in ("b1", "b2", "momentum"):
    checks.number(cfg[field], f"optimizer.{field}", 0, 1, high_open=True)
  checks.number(cfg.weight_decay, "optimizer.weight_decay", 0)
  checks.number(cfg.grad_clip_norm, "optimizer.grad_clip_norm", 0)
  for boundary in cfg.step_boundaries:
    checks.number(boundary, "optimizer.step_boundaries", 0, 1, low_open=True, high_open=True)
  checks.number(cfg.step_factor, "optimizer.step_factor", 0, low_open=True)
  checks.number(cfg.backbone_lr_multiplier, "optimizer.backbone_lr_multiplier", 0)
  checks.number(cfg.accumulate_steps, "optimizer.accumulate_steps", 1, integer=True)


def make_optimizer(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns (transformation, schedule of the heads' learning rate by batch step)."""
  check_config(cfg)
  accumulate = int(cfg.accumulate_steps)
  updates = max(total_steps // accumulate, 1)
  fraction = cfg.get("warmup_fraction", 0.0)  # Absent from configs saved before it existed.
  warmup = round(fraction * updates) if fraction else int(cfg.warmup_steps)
  if warmup > updates:
    logging.warning("config.optimizer.warmup_steps=%d is longer than the run (%d %s): the "
                    "learning rate warms up over the whole run instead.", warmup, updates,
                    "updates" if accumulate > 1 else "steps")
    warmup = updates
  schedule = SCHEDULES[cfg.schedule](cfg, updates, warmup)
  tx = OPTIMIZERS[cfg.name](cfg, schedule)
  multiplier = float(cfg.backbone_lr_multiplier)
  if multiplier != 1.0:
    backbone = OPTIMIZERS[cfg.name](cfg, lambda count: multiplier * schedule(count))
    tx = optax.multi_transform({"backbone": backbone, "heads": tx}, param_groups)
  if cfg.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
  if accumulate > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accumulate)
  return tx, lambda step: schedule(step // accumulate)
