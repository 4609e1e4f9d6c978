"""One evaluation loop, shared by training-time evaluation and the evaluate tool.

`compile_eval_steps` jits, per dataset, a pure step that scores that dataset's tasks on
a batch (each task's kind computes its statistics); `run` passes a state over the
splits of every dataset, lets each kind accumulate its statistics on device, and
returns an `EvalPass`: `metrics(prefix)` gives '<prefix>/<task>/<metric>' values, and
with `keep_rows` it also holds every row's outputs, labels, masks and readability, and a
few images, for evaluate's reports.
"""

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx

from fashion_jax import hierarchy, parallel
from fashion_jax.data import bad_samples as bad_samples_lib
from fashion_jax.data import pipeline


def eval_step(graphdef, state, batch, *, tasks, with_outputs: bool = False,
              use_ema: bool = False, flip: bool = False, decode: tuple = ()):
  """Per-task eval statistics of one batch (summed or collected by the caller), and
  with `with_outputs` also the heads' raw outputs. `use_ema` scores the EMA weights;
  `flip` averages each image with its mirror image (config.test_time_flip); `decode`
  are `hierarchy.decoding_links` (config.hierarchy_decoding)."""
  model = nnx.merge(graphdef, state).scored_model(use_ema)
  outputs = hierarchy.decode(model.predict(batch["image"], flip), decode)
  stats = {t.name: t.spec.eval_stats(t, outputs[t.name], batch["labels"][t.name],
                                     batch["masks"][t.name], batch["roles"]) for t in tasks}
  return (stats, {t.name: outputs[t.name] for t in tasks}) if with_outputs else stats


def compile_eval_steps(graphdef, tasks, mesh, with_outputs: bool = False,
                       use_ema: bool = False, flip: bool = False, decode: tuple = ()):
  """Per dataset: (jitted eval step scoring that dataset's tasks, those tasks)."""
  steps = {}
  for dataset in dict.fromkeys(t.dataset for t in tasks):
    own = [t for t in tasks if t.dataset == dataset]
    # Replicated outputs: every process can read the per-sample rows (embeddings,
    # scores) that retrieval and mAP need, also when the batch spans several hosts.
    step = functools.partial(eval_step, graphdef, tasks=own, with_outputs=with_outputs,
                             use_ema=use_ema, flip=flip, decode=decode)
    steps[dataset] = (jax.jit(step, out_shardings=parallel.replicated(mesh)), own)
  return steps


@dataclasses.dataclass
class EvalPass:
  """What one pass over a split gathered (see the module docstring)."""

  tasks: list
  totals: dict = dataclasses.field(default_factory=dict)  # task -> accumulated statistics
  rows: dict = dataclasses.field(default_factory=dict)  # task -> {outputs, labels, masks, readable}
  grid: list = dataclasses.field(default_factory=list)  # (image, {task: (label, output, has_label)})

  def metrics(self, prefix: str) -> dict[str, float]:
    results = {}
    for t in self.tasks:
      if t.name in self.totals:
        for key, value in t.spec.summarize(t, self.totals[t.name]).items():
          results[f"{prefix}/{t.name}/{key}"] = float(value)
    return results


def accumulate(step, own_tasks, state, batches, mesh, label: str, into: EvalPass,
               bad: bad_samples_lib.BadSamples | None = None, keep_rows: bool = False,
               grid_images: int = 0) -> EvalPass:
  """Runs a compiled eval `step` over `batches` into `into`. Statistics stay on device;
  unreadable images count in no metric (`bad`, default: skip them, records or refuses
  them under the split `label`)."""
  bad = bad or bad_samples_lib.BadSamples("skip")
  for batch in batches:
    readable = batch[bad_samples_lib.PROBLEM] == ""
    batch = bad.take(batch, label)
    result = step(state, parallel.shard_batch(batch, mesh))
    stats, outputs = result if keep_rows else (result, None)
    for t in own_tasks:
      into.totals[t.name] = t.spec.accumulate(into.totals.get(t.name), stats[t.name])
    if keep_rows:
      _keep_rows(into, own_tasks, batch, jax.device_get(outputs), readable, grid_images)
  return into


def _keep_rows(into: EvalPass, own_tasks, batch, outputs, readable, grid_images: int) -> None:
  valid = batch["valid"]
  for t in own_tasks:
    task_rows = into.rows.setdefault(t.name, {"outputs": [], "labels": [], "masks": [],
                                              "readable": []})
    task_rows["outputs"].append(outputs[t.name][valid])
    task_rows["labels"].append(batch["labels"][t.name][valid])
    task_rows["masks"].append(batch["masks"][t.name][valid] > 0)
    task_rows["readable"].append(readable[valid])
  if len(into.grid) < grid_images:
    present = np.flatnonzero(np.any([batch["masks"][t.name] > 0 for t in own_tasks], 0))
    for i in present[:grid_images - len(into.grid)]:
      into.grid.append((batch["image"][i], {t.name: (batch["labels"][t.name][i],
                                                     outputs[t.name][i],
                                                     batch["masks"][t.name][i] > 0)
                                            for t in own_tasks}))


def run(steps, tasks, state, splits: dict, data_config, local_batch: int, mesh, label: str,
        bad: bad_samples_lib.BadSamples | None = None, keep_rows: bool = False,
        grid_images: int = 0) -> EvalPass:
  """One pass of `state` over `splits` ({dataset: SplitData}; empty ones skipped) with
  the `steps` of `compile_eval_steps` (compiled `with_outputs=keep_rows`)."""
  result = EvalPass(tasks=list(tasks))
  for dataset, (step, own) in steps.items():
    split_data = splits.get(dataset)
    if split_data is None or not len(split_data):
      continue
    batches = pipeline.eval_batches(split_data, data_config, local_batch,
                                    jax.process_index(), jax.process_count())
    accumulate(step, own, state, batches, mesh, label, result, bad, keep_rows, grid_images)
  if keep_rows:
    result.rows = {name: {k: np.concatenate(v) for k, v in r.items()}
                   for name, r in result.rows.items()}
  return result
