"""Orbax checkpoints of the whole training state: model, optimizer, step and data position.

Kept: the last `config.checkpoint.keep` checkpoints plus the best one by
`config.checkpoint.best_metric`. A re-run of the same command restores the latest
automatically; the data iterator resumes at the exact batch, so a killed run continues
where it stopped.
"""

import json
import os
import shutil
import time

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from fashion_jax import errors
from fashion_jax import tasks as tasks_lib
from fashion_jax import workdir as workdir_lib


# Checkpoints written before the train state had named parts (model, optimizer, ema:
# train_state.TrainState) stored them by position.
_POSITIONAL_KEYS = {"model": "0", "optimizer": "1", "ema": "2"}


def _stored_parts(state_dir: str) -> tuple[dict, dict[str, str]]:
  """(the stored state's tree metadata, part name -> its key there: the name, or the
  position in checkpoints written before the parts had names)."""
  stored = ocp.StandardCheckpointHandler().metadata(epath.Path(state_dir)).tree
  keys = {p: p for p in _POSITIONAL_KEYS} if "model" in stored else _POSITIONAL_KEYS
  return stored, {part: key for part, key in keys.items() if key in stored}


def read_stored_part(directory: str, step: int, part: str) -> dict:
  """One part ('model', 'ema', ...) of a stored train state as saved (host arrays): for
  reading another run's weights, whose shapes need not match this run's."""
  state_dir = os.path.join(directory, str(step), "state")
  _, keys = _stored_parts(state_dir)
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(state_dir)[keys[part]]


def _run_signature(config, tasks) -> dict:
  """What must agree between a checkpoint and the run that restores it."""
  return {"model": config.model.name, "width": config.model.width,
          "tasks": {t.name: {"kind": t.kind, "column": t.column} for t in tasks}}


def check_workdir_writable(workdir: str) -> None:
  """Fails now, naming the folder, if the run could not write its outputs there."""
  probe = os.path.join(workdir, f".write_test.{jax.process_index()}")
  try:
    os.makedirs(workdir, exist_ok=True)
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise errors.WorkdirError(f"--workdir={workdir} is not writable ({e}); choose a folder "
                              "this user can write.") from e


def check_free_space(workdir: str, state, keep: int) -> None:
  """Fails before training if not even one checkpoint of `state` fits on the disk."""
  size = sum(x.nbytes for x in jax.tree.leaves(state))
  free = shutil.disk_usage(workdir).free
  if free < 2 * size:  # The checkpoint being written, and room for the rest of the run.
    raise errors.WorkdirError(
        f"{workdir} has {free / 1e6:.0f} MB free, but one checkpoint of this model takes "
        f"about {size / 1e6:.0f} MB. Free space or choose another --workdir.")
  if free < (keep + 2) * size:
    logging.warning("%s has %.0f MB free: fewer than the %d checkpoints of %.0f MB this run "
                    "keeps.", workdir, free / 1e6, keep + 1, size / 1e6)


class Checkpoints:
  """A CheckpointManager for one workdir."""

  def __init__(self, workdir: str, config, tasks):
    ckpt = config.checkpoint
    self.best_metric = ckpt.best_metric
    mode = tasks_lib.metric_mode(list(tasks), ckpt.best_metric, ckpt.best_mode)
    policies = [ocp.checkpoint_managers.LatestN(n=ckpt.keep)]
    best_fn = None
    if ckpt.best_metric:
      best_fn = lambda metrics: metrics[ckpt.best_metric]  # noqa: E731
      policies.append(ocp.checkpoint_managers.BestN(
          get_metric_fn=best_fn, reverse=mode == "min", n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        # With a preservation policy, best_fn only makes Orbax write each step's
        # metrics to disk, so the best step is still known after a restart.
        best_fn=best_fn, best_mode=mode,
        create=True, enable_async_checkpointing=ckpt.asynchronous)
    self.directory = workdir_lib.path(os.path.abspath(workdir), workdir_lib.CHECKPOINTS)
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
    try:
      self.manager.save(step, args=args, metrics=metrics, force=True)
    except OSError as e:
      raise self._write_error(step, e) from e

  def _write_error(self, step: int, error: Exception) -> errors.WorkdirError:
    kept = self.all_steps()
    return errors.WorkdirError(
        f"Could not write the checkpoint of step {step} to {self.directory}: {error}. "
        f"Checkpoints already written are kept ({kept or 'none'}); free space or fix "
        "permissions, then run the same command again to resume"
        + (f" from step {kept[-1]}." if kept else "."))

  def _set_aside(self, steps: list[int]) -> None:
    """Renames unreadable checkpoints out of the way of the resumed run's saves (kept
    for inspection, never deleted)."""
    if jax.process_index() == 0:
      for step in steps:
        path = os.path.join(self.directory, str(step))
        os.rename(path, f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("fashion_jax: unreadable checkpoints set aside")
    self.manager.reload()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def _meta(self, step: int) -> dict:
    """The run's description saved with `step`; fails clearly on another program's checkpoint."""
    path = os.path.join(self.directory, str(step))
    if not os.path.isdir(os.path.join(path, "meta")):
      raise errors.CheckpointMismatchError(
          f"{path} is not a fashion_jax checkpoint (it has {sorted(os.listdir(path))}, no "
          "'meta'); --workdir points at another program's run. Use a new --workdir.")
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return meta.meta

  def restore(self, step: int, state, data_iterator=None):
    """Restores `step` into the shapes, dtypes and shardings of `state`."""
    return self._restore(step, state, data_iterator)[0]

  def _restore(self, step: int, state, data_iterator):
    """(state, the run's description saved with it); a damaged checkpoint raises
    CheckpointReadError, one of another setup or program CheckpointMismatchError."""
    try:
      meta = self._meta(step)
    except errors.CheckpointMismatchError:
      raise
    except Exception as e:  # Orbax/tensorstore raise many types for a damaged file.
      raise self._read_error(step, e) from e
    differences = {k: {"checkpoint": meta.get(k), "config": v}
                   for k, v in self.signature.items() if meta.get(k) != v}
    if differences:
      raise errors.CheckpointMismatchError(
          f"The checkpoint at {self.directory}/{step} was trained with a different setup: "
          f"{differences}. Use a new --workdir, or restore the original config; to start a "
          f"new run from its backbone only, use a new --workdir with "
          f"--config.model.pretrained={os.path.dirname(self.directory)}.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    try:
      stored, keys = _stored_parts(os.path.join(self.directory, str(step), "state"))
    except Exception as e:  # As above.
      raise self._read_error(step, e) from e
    missing = [part for part in abstract if part not in keys]
    if missing:
      raise errors.CheckpointMismatchError(
          f"The checkpoint at {self.directory}/{step} has no {missing} (it has "
          f"{sorted(keys)}).")
    target = {keys[part]: abstract[part] for part in abstract}
    if len(target) == len(stored):
      items = {"state": ocp.args.StandardRestore(target)}
    else:  # The other parts (the optimizer, for an inference state) stay on disk.
      items = {"state": ocp.args.PyTreeRestore(
          target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
          partial_restore=True)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # As above.
      raise self._read_error(step, e) from e
    logging.info("Restored checkpoint %s/%d", self.directory, step)
    state = jax.tree.map(lambda x: x, state)  # A new container; the caller's is kept.
    for part in abstract:
      state[part] = restored.state[keys[part]]
    return state, meta

  def _read_error(self, step: int, error: Exception) -> errors.CheckpointReadError:
    return errors.CheckpointReadError(
        f"Cannot read the checkpoint of step {step} in {self.directory} "
        f"({type(error).__name__}: {str(error).splitlines()[0][:300]})")

  def restore_latest(self, state, data_iterator):
    """(step, state, extra) of the newest checkpoint that restores; (0, state, {}) if none.

    A checkpoint that cannot be read (a file damaged after it was written) is reported
    and the next older one is tried, so one bad file never costs the whole run. A
    checkpoint of another setup or another program stops the run instead.
    """
    failures = []
    for step in reversed(self.all_steps()):
      try:
        restored, meta = self._restore(step, state, data_iterator)
      except errors.CheckpointReadError as e:
        failures.append(str(e))
        logging.error("Cannot restore checkpoint %s/%d (%s); trying an older one.",
                      self.directory, step, e)
        continue
      if failures:
        self._set_aside([s for s in self.all_steps() if s > step])
        logging.warning("Resumed from step %d; unreadable newer checkpoints (renamed "
                        "*.unreadable): %s", step, failures)
      return step, restored, meta.get("extra") or {}
    if failures:
      raise errors.CheckpointMismatchError(
          f"No checkpoint in {self.directory} can be restored: {failures}. Move the folder "
          "away to start again, or use a new --workdir.")
    return 0, state, {}

  def wait(self) -> None:
    """Waits for an asynchronous save; its failure is reported as the save's own."""
    try:
      self.manager.wait_until_finished()
    except OSError as e:
      raise self._write_error(self.manager.latest_step() or 0, e) from e

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self.manager.close()
