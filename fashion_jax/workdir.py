"""A run's workdir: the name of every file training and the tools write there, and the
reads and writes of the run-level ones.

    <workdir>/
      config.json              the config the run trained with
      vocab.json               each task's classes (from the training split)
      class_weights.json       the loss's per-class weights
      hierarchy.json           learned parents of child classes (config.hierarchy)
      data_report.json         what was read, skipped and why, per dataset
      split_<dataset>.csv      id,split of every row the run read
      bad_samples.json         images that could not be read (per process)
      train.log                the console's lines, plain
      final_metrics.json       the last evaluation ('split/task/metric': value)
      checkpoints/<step>/      Orbax: the train state, the data position, run metadata
      eval/<name>/metrics.json python -m fashion_jax evaluate (and its reports, plots)
"""

import json
import os

import ml_collections

from fashion_jax.errors import ConfigError

CONFIG = "config.json"
VOCAB = "vocab.json"
CLASS_WEIGHTS = "class_weights.json"
HIERARCHY = "hierarchy.json"
DATA_REPORT = "data_report.json"
SPLIT = "split_{dataset}.csv"
BAD_SAMPLES = "bad_samples.json"
TRAIN_LOG = "train.log"
FINAL_METRICS = "final_metrics.json"
CHECKPOINTS = "checkpoints"
EVAL = "eval"
EVAL_METRICS = "metrics.json"  # In eval/<name>/.


def path(workdir: str, name: str) -> str:
  return os.path.join(workdir, name)


def split_path(workdir: str, dataset: str) -> str:
  return os.path.join(workdir, SPLIT.format(dataset=dataset))


def bad_samples_path(workdir: str, process_index: int) -> str:
  """Each process meets the bad samples of its own shard; the chief's file is the usual name."""
  name = BAD_SAMPLES if process_index == 0 else f"bad_samples.process{process_index}.json"
  return os.path.join(workdir, name)


def eval_dir(workdir: str, name: str) -> str:
  """Where `evaluate` writes one scoring (e.g. 'test', 'val_ema', 'holdout_all')."""
  return os.path.join(workdir, EVAL, name)


def eval_metrics_path(workdir: str, name: str) -> str:
  return os.path.join(eval_dir(workdir, name), EVAL_METRICS)


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  with open(path(workdir, CONFIG), "w") as f:
    f.write(config.to_json_best_effort(indent=1))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run was trained with; a clear error if `workdir` is not a run's."""
  if not os.path.isdir(workdir):
    raise ConfigError(f"Workdir {workdir} does not exist.")
  config_path = path(workdir, CONFIG)
  if not os.path.exists(config_path):
    raise ConfigError(f"{workdir} has no {CONFIG}: not a fashion_jax training workdir "
                      "(train into it with python -m fashion_jax.main first).")
  with open(config_path) as f:
    return ml_collections.ConfigDict(json.load(f))


def write_class_weights(workdir: str, weights: dict[str, list[float]]) -> None:
  with open(path(workdir, CLASS_WEIGHTS), "w") as f:
    json.dump(weights, f, indent=1)


def read_class_weights(workdir: str) -> dict[str, list[float]]:
  """{task: per-class loss weights}; {} for runs that wrote none."""
  weights_path = path(workdir, CLASS_WEIGHTS)
  if not os.path.exists(weights_path):
    return {}
  with open(weights_path) as f:
    return json.load(f)


def write_final_metrics(workdir: str, step: int, metrics: dict[str, float]) -> None:
  with open(path(workdir, FINAL_METRICS), "w") as f:
    json.dump({"step": step, **metrics}, f, indent=1)


def read_final_metrics(workdir: str) -> dict | None:
  """{'step': step, 'split/task/metric': value, ...}, or None before training ended."""
  metrics_path = path(workdir, FINAL_METRICS)
  if not os.path.exists(metrics_path):
    return None
  with open(metrics_path) as f:
    return json.load(f)
