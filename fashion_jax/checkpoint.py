"""Orbax checkpoints of the whole training state: model, optimizer, step and data position.

Kept: the last `config.checkpoint.keep` checkpoints plus the best one by
`config.checkpoint.best_metric`. A re-run of the same command restores the latest
automatically; the data iterator resumes at the exact batch, so a killed run continues
where it stopped.
"""

import json
import os

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from fashion_jax import errors

CHECKPOINT_DIR = "checkpoints"


def _run_signature(config, tasks) -> dict:
  """What must agree between a checkpoint and the run that restores it."""
  return {"model": config.model.name, "width": config.model.width,
          "tasks": {t.name: {"kind": t.kind, "column": t.column} for t in tasks}}


class Checkpoints:
  """A CheckpointManager for one workdir."""

  def __init__(self, workdir: str, config, tasks):
    ckpt = config.checkpoint
    self.best_metric = ckpt.best_metric
    policies = [ocp.checkpoint_managers.LatestN(n=ckpt.keep)]
    best_fn = None
    if ckpt.best_metric:
      best_fn = lambda metrics: metrics[ckpt.best_metric]  # noqa: E731
      policies.append(ocp.checkpoint_managers.BestN(
          get_metric_fn=best_fn, reverse=ckpt.best_mode == "min", n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        # With a preservation policy, best_fn only makes Orbax write each step's
        # metrics to disk, so the best step is still known after a restart.
        best_fn=best_fn, best_mode=ckpt.best_mode,
        create=True, enable_async_checkpointing=ckpt.asynchronous)
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    self.manager = ocp.CheckpointManager(self.directory, options=options)
    # Round-tripped through JSON so that it compares equal to what a checkpoint holds.
    self.signature = json.loads(json.dumps(_run_signature(config, tasks)))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step() if self.best_metric else None

  def save(self, step: int, state, data_iterator, metrics: dict | None = None,
           extra: dict | None = None) -> None:
    """`extra`: small JSON-able host state of the run (e.g. the loss balancer's)."""
    if metrics is not None and self.best_metric and self.best_metric not in metrics:
      raise KeyError(f"config.checkpoint.best_metric={self.best_metric!r} is not an eval "
                     f"metric; available: {sorted(metrics)}")
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(data_iterator),
        meta=ocp.args.JsonSave({"step": step, **self.signature, "extra": extra or {}}))
    self.manager.save(step, args=args, metrics=metrics, force=True)

  def restore_extra(self, step: int) -> dict:
    """The `extra` dict saved with `step` ({} for checkpoints written without one)."""
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return meta.meta.get("extra") or {}

  def restore(self, step: int, state, data_iterator=None):
    """Restores `step` into the shapes, dtypes and shardings of `state`."""
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    differences = {k: {"checkpoint": meta.meta.get(k), "config": v}
                   for k, v in self.signature.items() if meta.meta.get(k) != v}
    if differences:
      raise errors.CheckpointMismatchError(
          f"The checkpoint at {self.directory}/{step} was trained with a different setup: "
          f"{differences}. Use a new --workdir, or restore the original config.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    logging.info("Restored checkpoint %s/%d", self.directory, step)
    return restored.state

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
