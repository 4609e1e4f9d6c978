"""Scoring a trained run on labelled data: its own splits or any other data in a layout
its source reads, every report written (see the evaluate command, tools/evaluate.py).

    summary = scoring.evaluate("runs/mtl", scoring.Options(split="test"))
    summary["metrics"]["articleType"]["accuracy"]
"""

import ast
import dataclasses
import json
import os

import ml_collections
import numpy as np
from absl import logging

from fashion_jax import errors, hierarchy, parallel
from fashion_jax import workdir as workdir_lib
from fashion_jax.data import bad_samples as bad_samples_lib
from fashion_jax.data import labelled
from fashion_jax.evaluation import evaluators, events, metrics, plots, trained


def run_split(run, splits: dict, split: str, grid_images: int):
  """One pass over `splits` ({dataset: SplitData}): summed stats, a few images, and per
  task its outputs, labels, masks and whether the image could be read, for every sample
  of its dataset (rows aligned across the tasks of one dataset, in table order)."""
  local_batch = parallel.per_process_batch_size(run.config.batch_size)
  steps = evaluators.compile_eval_steps(run.graphdef, run.tasks, run.mesh, with_outputs=True,
                                        **run.inference)
  bad = bad_samples_lib.BadSamples("skip")
  result = evaluators.run(steps, run.tasks, run.state, splits, run.config.data, local_batch,
                          run.mesh, split, bad, keep_rows=True, grid_images=grid_images)
  if bad.samples:
    logging.warning("%d unreadable images count in no %s metric: %s", len(bad.samples), split,
                    {k: v["reason"] for k, v in list(bad.samples.items())[:5]})
  return result.totals, result.rows, result.grid


def _with_data(config, dataset: str, data_root: str, overrides) -> ml_collections.ConfigDict:
  """The run's config with `dataset` pointed at other data: `data_root` and `--set`
  fields (`datasets.<dataset>.<field>=<value>`, a Python literal or a plain string)."""
  config = ml_collections.ConfigDict(config.to_dict())
  if data_root:
    config.datasets[dataset].root = data_root
  for item in overrides:
    path, sep, text = item.partition("=")
    parts = path.removeprefix("config.").split(".")
    if not sep or len(parts) != 3 or parts[0] != "datasets" or parts[1] not in config.datasets:
      raise errors.ConfigError(f"--set={item!r}: expected datasets.<name>.<field>=<value> "
                               f"with <name> one of {list(config.datasets)}.")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    config.datasets[parts[1]][parts[2]] = value
  return config


def hierarchy_report(parent: str, child: str, parents: np.ndarray, rows,
                     mode: str) -> dict[str, dict[str, float]]:
  """Consistency of the raw predictions with the hierarchy (every sample of the split),
  and with `mode` ('predicted' or 'joint') the accuracies of consistent predictions."""
  parent_rows, child_rows = rows[parent], rows[child]
  out = {child: {f"consistency_with_{parent}": hierarchy.consistency(
      parent_rows["outputs"].argmax(-1), child_rows["outputs"].argmax(-1), parents)}}
  if mode != "none":
    masked, chosen = hierarchy.consistent(metrics.softmax(parent_rows["outputs"]),
                                          metrics.softmax(child_rows["outputs"]), parents, mode)
    child_ok, parent_ok = child_rows["masks"], parent_rows["masks"]
    out[child][f"accuracy_{mode}_hierarchy"] = float(
        (masked.argmax(-1)[child_ok] == child_rows["labels"][child_ok]).mean())
    out[parent] = {f"accuracy_{mode}_hierarchy": float(
        (chosen[parent_ok] == parent_rows["labels"][parent_ok]).mean())}
  return out


@dataclasses.dataclass(frozen=True)
class Options:
  """What `evaluate` scores and how (the evaluate command's flags).

  With `data_root` or `overrides` (`datasets.<name>.<field>=<value>`), `dataset` is read
  from that data instead of the run's (every row by default) and scored with the run's
  own classes. `flip` (None: the run's config.test_time_flip) averages each image with
  its mirror image; set against the config, it adds `_flip`/`_noflip` to the output
  folder's name; `decoding` (None: the run's config.hierarchy_decoding), set against
  the config, adds `_<decoding>`. `hierarchy_mode`: none, predicted or joint.
  """
  split: str = ""  # train, val, test or all; '' = test, or all for other data.
  checkpoint: str = "best"
  out_dir: str = ""  # '' = <workdir>/eval/<name>.
  grid_images: int = 16
  max_classes: int = 20
  ema: bool = False
  hierarchy_mode: str = "none"
  dataset: str = ""
  data_root: str = ""
  overrides: tuple[str, ...] = ()
  flip: bool | None = None
  decoding: str | None = None


def evaluate(workdir: str, options: Options = Options()) -> dict:
  """Scores `workdir`'s model as `options` say and writes every report; returns the
  contents of metrics.json (its "metrics": {task: {metric: value}})."""
  split, checkpoint, out_dir = options.split, options.checkpoint, options.out_dir
  grid_images, max_classes, ema = options.grid_images, options.max_classes, options.ema
  hierarchy_mode, dataset, data_root = options.hierarchy_mode, options.dataset, options.data_root
  overrides, flip, decoding = options.overrides, options.flip, options.decoding
  other_data = bool(data_root or overrides)
  split = split or ("all" if other_data else "test")
  if split not in ("train", "val", "test", "all"):
    raise errors.ConfigError(f"--split={split!r}: expected train, val, test or all.")
  if hierarchy_mode not in hierarchy.MODES:
    raise errors.ConfigError(f"--hierarchy={hierarchy_mode!r}: expected one of "
                             f"{hierarchy.MODES}.")
  run = trained.load(workdir, checkpoint, ema)
  names = list(run.config.datasets)
  if dataset and dataset not in names:
    raise errors.ConfigError(f"--dataset={dataset!r}: {workdir} was trained on {names}.")
  if other_data and not dataset:
    if len(names) > 1:
      raise errors.ConfigError(f"--data_root/--set: name the dataset they replace with "
                               f"--dataset (one of {names}).")
    dataset = names[0]
  config = _with_data(run.config, dataset, data_root, overrides) if other_data else run.config
  data_name = (os.path.basename(os.path.normpath(data_root)) if data_root else dataset)
  name = f"{data_name}_{split}" if other_data else split
  if flip is not None and flip != run.flip:
    run.flip = flip
    name += "_flip" if flip else "_noflip"
  if decoding is not None and decoding != run.config.get("hierarchy_decoding", "none"):
    run.decode = hierarchy.decoding_links(hierarchy.load(run.workdir), decoding)
    name += f"_{decoding}"
  out_dir = out_dir or workdir_lib.eval_dir(run.workdir, name + ("_ema" if ema else ""))
  os.makedirs(out_dir, exist_ok=True)
  # The run's own vocabularies (read, never rewritten): label ids as the model's outputs.
  tasks = run.tasks
  splits, reports = {}, {}
  for scored in ([dataset] if dataset else names):
    splits[scored], reports[scored] = labelled.read_labelled(config, tasks, run.vocabs,
                                                             scored, split)
  labelled.save_reports(os.path.join(out_dir, workdir_lib.DATA_REPORT), reports)
  totals, rows, grid = run_split(run, splits, split, grid_images)
  by_name = {t.name: t for t in tasks}
  results, files = {}, []
  for task in tasks:
    if task.name not in totals:
      continue
    task_metrics = {k: float(v) for k, v in task.spec.summarize(task, totals[task.name]).items()}
    raw_labels = splits[task.dataset].table.columns[task.column]
    extra, written = task.spec.report(task, totals[task.name], rows[task.name], raw_labels,
                                      run.vocabs[task.name], out_dir, split, run.step,
                                      max_classes)
    task_metrics.update(extra)
    files += written
    task_metrics["samples"] = int(rows[task.name]["masks"].sum())
    results[task.name] = task_metrics
  for child, learned in hierarchy.load(run.workdir).items():
    if learned["parent"] in rows and child in rows:
      for task, values in hierarchy_report(learned["parent"], child,
                                           np.asarray(learned["parents"]), rows,
                                           hierarchy_mode).items():
        results[task].update(values)
  if not results:
    raise errors.DataError(f"The '{split}' split of {data_root or workdir} is empty: nothing "
                           "to evaluate.")

  headline = {t.name: {m: results[t.name][m] for m in t.spec.headline if m in results[t.name]}
              for t in tasks if t.name in results}
  files.append(plots.bar_chart(os.path.join(out_dir, "metrics.png"), headline,
                               f"{os.path.basename(run.workdir)}: {split} (step {run.step})"))
  scalars = events.read_scalars(run.workdir)
  if scalars:
    files.append(plots.training_curves(os.path.join(out_dir, "curves.png"), scalars,
                                       [t.name for t in tasks], os.path.basename(run.workdir)))
  images = [image for image, _ in grid]
  captions = [[c for c in (by_name[name].spec.caption(by_name[name], *values)
                           for name, values in per_task.items()) if c[0]][:4]
              for _, per_task in grid]
  if images:
    files.append(plots.image_grid(os.path.join(out_dir, "predictions.png"), images, captions,
                                  f"{split}: predicted (true where wrong)"))
  summary = {"workdir": run.workdir, "split": split, "checkpoint_step": run.step, "ema": ema,
             "flip": run.flip, "hierarchy_decoding": [[c, p] for c, p, _ in run.decode],
             "data": {n: config.datasets[n].to_dict() for n in splits}, "metrics": results,
             "files": sorted(os.path.basename(f) for f in files), "out_dir": out_dir,
             # Rows skipped or labels masked, per dataset and kind (every row: data_report.json).
             "data_problems": {n: dict(sorted(r.counts.items())) for n, r in reports.items()}}
  with open(os.path.join(out_dir, workdir_lib.EVAL_METRICS), "w") as f:
    json.dump(summary, f, indent=1)
  return summary
