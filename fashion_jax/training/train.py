"""Training and evaluation: pure, jitted step functions and the loop around them.

The model, its optimizer and EMA live as one `nnx.State` pytree (`state`, of a
`train_state.TrainState`) plus a static `graphdef`. `train_step` (and the eval step of
evaluators.py) is a pure function of (state, batch), jitted once with the state
replicated and the batch sharded over the 'data' mesh axis, so the same code runs on one
CPU, several devices, or several hosts.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from fashion_jax.training import balancing
from fashion_jax.training import checkpoint as checkpoint_lib
from fashion_jax import console as console_lib
from fashion_jax.training import early_stopping as early_stopping_lib
from fashion_jax import hierarchy
from fashion_jax.evaluation import evaluators
from fashion_jax.training import experiment
from fashion_jax.training import metric_window
from fashion_jax import parallel
from fashion_jax.training import preemption
from fashion_jax.training import stages as stages_lib
from fashion_jax import tasks as tasks_lib
from fashion_jax import validation
from fashion_jax import workdir as workdir_lib
from fashion_jax.data import bad_samples as bad_samples_lib
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.data import pipeline
from fashion_jax.writers import periodic_actions



def _in_backbone(path) -> bool:
  return any(getattr(key, "key", None) == "backbone" for key in path)


def _ema_update(ema_model, model, step, decay: float) -> None:
  # Warm-up (as tf.train.ExponentialMovingAverage with num_updates): early on the
  # average follows the fast-moving weights instead of the random initialisation.
  rate = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  # Weights and BatchNorm statistics; a backbone's random state (layers.RandomState)
  # is no average.
  averaged = (nnx.Param, nnx.BatchStat)
  nnx.update(ema_model, jax.tree.map(lambda e, m: rate * e + (1.0 - rate) * m,
                                     nnx.state(ema_model, averaged), nnx.state(model, averaged)))


def train_step(graphdef, state, batch, loss_weights=None, *, tasks,
               frozen_backbone: bool = False, ema_decay: float = 0.0,
               skip_nonfinite: bool = False):
  """One optimisation step on a global batch; returns the new state and step metrics.

  `loss_weights` [T] (task order) are the host-side weights of this step (configured,
  stage or DWA; default: each task's configured weight), combined by `balancing`. With
  `frozen_backbone` only the heads train: the backbone's parameters, BatchNorm
  statistics and optimizer moments come out exactly as they went in. With
  `skip_nonfinite` a step whose loss or gradient is NaN/Inf returns the state unchanged
  (metric 'skipped' = 1).
  """
  if loss_weights is None:
    loss_weights = jnp.asarray([t.weight for t in tasks], jnp.float32)
  # merge() shares the Variables of `state`, and the update below mutates them: keep
  # a copy of the tree (the same arrays) to restore from.
  before = jax.tree.map(lambda x: x, state) if frozen_backbone or skip_nonfinite else None
  train_state = nnx.merge(graphdef, state)
  model, optimizer = train_state.model, train_state.optimizer

  def loss_fn(model):
    outputs = model(batch["image"], train=True, frozen_backbone=frozen_backbone)
    losses = tasks_lib.task_losses(tasks, outputs, batch["labels"], batch["masks"])
    log_variances = (model.loss_log_variances[...]
                     if model.loss_log_variances is not None else None)
    combined = balancing.combine(jnp.stack([losses[t.name] for t in tasks]), loss_weights,
                                 log_variances)
    losses["total"] = combined.total
    return combined.total, (losses, combined.effective_weights)

  (_, (losses, weights)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  if train_state.ema is not None:
    _ema_update(train_state.ema, model, optimizer.step[...], ema_decay)
  metrics = {f"loss/{name}": value for name, value in losses.items()}
  metrics.update({f"loss_weight/{t.name}": weights[i] for i, t in enumerate(tasks)})
  metrics["grad_norm"] = optax.tree.norm(grads)
  new_state = nnx.state(train_state)
  if frozen_backbone:  # Weight decay and momentum would otherwise still move it.
    new_state = jax.tree_util.tree_map_with_path(
        lambda path, new, old: old if _in_backbone(path) else new, new_state, before)
  if skip_nonfinite:
    finite = jnp.isfinite(losses["total"]) & jnp.isfinite(metrics["grad_norm"])
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, before)
    metrics[metric_window.SKIPPED] = 1.0 - finite.astype(jnp.float32)
  return new_state, metrics


def compile_train_step(graphdef, tasks, mesh, frozen_backbone: bool = False,
                       ema_decay: float = 0.0, skip_nonfinite: bool = False):
  """The jitted train step; it donates the old state's buffers."""
  replicated = parallel.replicated(mesh)
  return jax.jit(functools.partial(train_step, graphdef, tasks=tuple(tasks),
                                   frozen_backbone=frozen_backbone, ema_decay=ema_decay,
                                   skip_nonfinite=skip_nonfinite),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def compile_steps(graphdef, tasks, mesh):
  """Jitted train step and, per dataset, an eval step scoring that dataset's tasks."""
  return (compile_train_step(graphdef, tasks, mesh),
          evaluators.compile_eval_steps(graphdef, tasks, mesh))


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _tune_on_validation(tasks, val_pass, vocabs) -> dict[str, dict]:
  """What each task's kind chooses on the final validation pass (e.g. thresholds), added
  to its vocabulary's `fitted`; {task: what it chose}."""
  tuned = {}
  if val_pass is None:
    return tuned
  for task in tasks:
    chosen = task.spec.tune_on_validation(task, val_pass.totals.get(task.name))
    if chosen:
      vocabs[task.name].fitted = {**(vocabs[task.name].fitted or {}), **chosen}
      tuned[task.name] = chosen
  return tuned


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains on the configured data, evaluating and checkpointing as configured.

  Re-running with the same workdir resumes from the latest checkpoint. Returns the
  final validation (and test) metrics.
  """
  # Setup: everything is checked and built before anything is written to the workdir, so
  # a run that fails to start (a bad field, unreadable data) leaves it as it was.
  tasks = validation.validate_config(config)
  valid_metrics = validation.validation_metrics(config, tasks)
  parallel.maybe_initialize_distributed(config.distributed)
  ema_decay = float(config.get("ema_decay", 0.0))
  checkpoint_lib.check_workdir_writable(workdir)
  is_chief = jax.process_index() == 0

  run = experiment.setup(config, workdir, tasks=tasks)
  tasks, data, mesh, local_batch = run.tasks, run.data, run.mesh, run.local_batch
  graphdef, state, schedule = run.graphdef, run.state, run.schedule
  total_steps, steps_per_epoch = run.total_steps, run.steps_per_epoch
  train_splits = data.split("train")
  stages = stages_lib.parse_stages(config.stages, tasks, total_steps)
  balancer = balancing.make_balancer(config.loss_balancing, len(tasks))
  stopper = early_stopping_lib.EarlyStopping(config.early_stopping, config.checkpoint,
                                             valid_metrics, tasks)
  inference = dict(flip=bool(config.get("test_time_flip", False)),
                   decode=hierarchy.decoding_links(data.hierarchy,
                                                   config.get("hierarchy_decoding", "none")))
  eval_steps = {"": evaluators.compile_eval_steps(graphdef, tasks, mesh, **inference)}
  if ema_decay:  # The EMA weights are scored too, as '<split>_ema/<task>/<metric>'.
    eval_steps["_ema"] = evaluators.compile_eval_steps(graphdef, tasks, mesh, use_ema=True,
                                                       **inference)
  train_steps = {}  # Frozen backbone or not -> the jitted step, compiled on first use.
  train_iter = pipeline.train_iterator(train_splits, config.data, local_batch, config.seed,
                                       jax.process_index(), jax.process_count(),
                                       config.get("augment"))

  checkpoint_lib.check_free_space(workdir, state, config.checkpoint.keep)
  checkpoints = checkpoint_lib.Checkpoints(workdir, config, tasks)
  window = metric_window.MetricWindow(config.nonfinite_policy, config.max_skipped_steps)
  start_step, state, extra = checkpoints.restore_latest(state, train_iter)
  if start_step:
    balancer.load_state_dict(extra.get("balancer", {}))
    stopper.load_state_dict(extra.get("early_stopping", {}))
    window.load_state_dict(extra.get("metric_window", {}))

  # The run starts: its config and what it learned from the data go to the workdir.
  if is_chief:
    workdir_lib.write_config(workdir, config)
    data.save(workdir)
  bad = bad_samples_lib.BadSamples(
      config.data.bad_samples, workdir_lib.bad_samples_path(workdir, jax.process_index()))
  writer = console_lib.metric_writer(workdir, is_chief)
  if start_step == 0:
    writer.write_hparams(_flatten(config.to_dict()))
  console = console_lib.TrainingConsole(workdir, total_steps, start_step, config.batch_size,
                                        enabled=is_chief)
  hooks = []
  if is_chief and config.profile:
    hooks.append(periodic_actions.Profile(num_profile_steps=5, logdir=workdir))

  last_pass = {}  # The latest pass of the model (not EMA) per split: what tuning reads.

  def eval_split(name: str, state) -> dict[str, float]:
    splits = {dataset: by_split[name] for dataset, by_split in data.datasets.items()}
    results = {}
    for suffix, steps in eval_steps.items():
      scored = evaluators.run(steps, tasks, state, splits, config.data, local_batch, mesh,
                              name + suffix, bad)
      if not suffix:
        last_pass[name] = scored
      results.update(scored.metrics(name + suffix))
    return results

  def save_checkpoint(step: int, metrics: dict | None) -> None:
    window.check(checkpoints.latest_step())  # Never save a state that went non-finite.
    writer.flush()  # A resumed run rewrites only the steps after this checkpoint.
    checkpoints.save(step, state, train_iter, metrics=metrics,
                     extra={"balancer": balancer.state_dict(),
                            "early_stopping": stopper.state_dict(),
                            "metric_window": window.state_dict()})

  for line in experiment.describe(run, workdir):
    console.message(line)
  console.announce(
      (f"Resuming at step {start_step} of {total_steps}" if start_step else
       f"Training {total_steps} steps") + f" ({steps_per_epoch} per epoch, global batch "
      f"{config.batch_size} on {jax.device_count()} devices); logs: {workdir}")
  results, last_step, stopped_by = {}, start_step, None
  skip_nonfinite = config.nonfinite_policy == "skip"
  try:
    with preemption.StopRequest() as stop_request:
      # A run that stopped early stays stopped when its command is run again.
      end_step = start_step if stopper.stopped else total_steps
      for step in range(start_step + 1, end_step + 1):
        last_step = step
        stage = stages_lib.stage_at(stages, step)
        if config.stages and (step == stage.start or step == start_step + 1):
          console.message(f"Stage '{stage.name}' from step {stage.start} to {stage.end} "
                          f"(frozen backbone: {stage.frozen_backbone}, weights: "
                          f"{ {t.name: t.weight for t in stage.tasks} })")
        if stage.frozen_backbone not in train_steps:
          train_steps[stage.frozen_backbone] = compile_train_step(
              graphdef, tasks, mesh, stage.frozen_backbone, ema_decay, skip_nonfinite)
        loss_weights = (np.asarray([t.weight for t in stage.tasks], np.float32)
                        * balancer.factors())
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
          batch = parallel.shard_batch(bad.take(next(train_iter), "train"), mesh)
          state, metrics = train_steps[stage.frozen_backbone](state, batch, loss_weights)
          window.add(step, metrics)
        for hook in hooks:
          hook(step)
        console.advance(step)
        if step % config.log_every_steps == 0 or step == total_steps:
          window.check(checkpoints.latest_step())
          summary = window.summary()
          balancer.observe(np.asarray([summary[f"loss/{t.name}"] for t in tasks]))
          summary["learning_rate"] = float(schedule(step - 1))
          summary["epoch"] = step / steps_per_epoch
          summary["steps_per_sec"] = console.log_step(step, summary) / config.batch_size
          writer.write_scalars(step, summary)
          bad.save()  # Each process its own file: it meets its own shard's samples.
        eval_now = step % config.eval_every_steps == 0 or step == total_steps
        stop = False
        if eval_now:
          results = eval_split("val", state)
          writer.write_scalars(step, results)
          console.evaluation(step, results)
          stop = stopper.should_stop(results)
        if stop_request.should_stop(step):
          stopped_by = stop_request.signal_name
        if eval_now or step % config.checkpoint.every_steps == 0 or stopped_by:
          save_checkpoint(step, results if eval_now and results else None)
        if stopped_by:
          break
        if stop:
          console.message(f"Early stopping at step {step}: {stopper.metric} has not "
                          f"improved on {stopper.best:.4f} for {stopper.patience} evaluations.")
          break
    if stopped_by:
      results = {}
    else:
      if last_step == start_step:  # Already finished: report the restored model.
        results = eval_split("val", state)
      tuned = _tune_on_validation(tasks, last_pass.get("val"), data.vocabs)
      if tuned:  # E.g. per-attribute thresholds: saved with the vocabularies, used from now on.
        tasks = [t.spec.bind(t, data.vocabs[t.name]) if t.name in tuned else t for t in tasks]
        if is_chief:
          vocab_lib.save_vocabs(workdir_lib.path(workdir, workdir_lib.VOCAB), data.vocabs)
        by_name = {t.name: t for t in tasks}
        console.message("Chosen on the validation split: " + "; ".join(
            f"{name}: {by_name[name].spec.describe_tuned(by_name[name], chosen)}"
            for name, chosen in sorted(tuned.items())) + ".")
        eval_steps = {suffix: evaluators.compile_eval_steps(
            graphdef, tasks, mesh, use_ema=bool(suffix), **inference) for suffix in eval_steps}
      if config.eval_test:
        test_results = eval_split("test", state)
        writer.write_scalars(last_step, test_results)
        results = {**results, **test_results}
  finally:
    writer.flush()
    bad.save()
    checkpoints.close()  # Waits for the last asynchronous save.
    console.close()
  if stopped_by:
    stopped = (f"Stopped by {stopped_by} after step {last_step} of {total_steps}; checkpoint "
               f"saved in {checkpoints.directory}. Run the same command again to resume.")
    console.announce(stopped)
    return {}
  if is_chief and results:
    workdir_lib.write_final_metrics(workdir, last_step, results)
    console.message(f"Final metrics at step {last_step}:\n"
                    f"{console_lib.format_metrics_table(results)}")
  return results

