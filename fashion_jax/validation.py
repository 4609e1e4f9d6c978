"""Every config field checked before a run reads its data or writes to its workdir.

The module that owns a group of fields checks it (optim: `config.optimizer`, tasks: each
task and its kind's options, data.sources: each dataset, ...); this module runs them
all, plus the top-level fields. Checks that need the data (a stage's until_step against
the run's length, a stratify column the table lacks) run when it has been read, still
before training and before anything is written. docs/reliability.md lists what each
field accepts.
"""

from fashion_jax.training import balancing
from fashion_jax import catalog_tasks
from fashion_jax import checks
from fashion_jax.training import early_stopping
from fashion_jax import hierarchy
from fashion_jax.training import metric_window
from fashion_jax import models
from fashion_jax.training import optim
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled, pipeline
from fashion_jax.data import sources
from fashion_jax.errors import ConfigError
from fashion_jax.models import weights

BEST_MODES = ("auto", "max", "min")  # auto: the direction of the metric's task kind.


def validation_metrics(config, tasks) -> list[str]:
  """The metric names validation reports, after checking the fields that name one."""
  ema_decay = config.get("ema_decay", 0.0)
  checks.number(ema_decay, "ema_decay", 0, 1, high_open=True)
  names = tasks_lib.metric_keys(tasks, "val")
  if ema_decay:
    names += tasks_lib.metric_keys(tasks, "val_ema")
  if config.checkpoint.best_metric and config.checkpoint.best_metric not in names:
    raise ConfigError(f"config.checkpoint.best_metric={config.checkpoint.best_metric!r} is "
                      f"not one of {names}.")
  return names


def _check_run_fields(config) -> None:
  checks.number(config.seed, "seed", 0, integer=True)
  checks.number(config.batch_size, "batch_size", 1, integer=True)
  checks.number(config.num_train_steps, "num_train_steps", integer=True)
  checks.number(config.num_epochs, "num_epochs", integer=True)
  if config.num_train_steps <= 0 and config.num_epochs <= 0:
    raise ConfigError(f"config.num_train_steps={config.num_train_steps} and config.num_epochs="
                      f"{config.num_epochs}: set one of them to a positive value.")
  for field in ("log_every_steps", "eval_every_steps"):
    checks.number(config[field], field, 1, integer=True)
  metric_window.check_policy(config.nonfinite_policy)
  checks.number(config.max_skipped_steps, "max_skipped_steps", 0, integer=True)
  checks.number(config.checkpoint.every_steps, "checkpoint.every_steps", 1, integer=True)
  checks.number(config.checkpoint.keep, "checkpoint.keep", 1, integer=True)
  checks.choice(config.checkpoint.best_mode, "checkpoint.best_mode", BEST_MODES)


def _check_weights_are_given(config) -> None:
  """Settings that only make sense on a pretrained backbone need `config.model.pretrained`:
  without it they would quietly freeze or slow down a random one."""
  if config.model.get("pretrained", ""):
    return
  needing = [f"config.stages.{name}.frozen_backbone=True"
             for name, stage in (config.get("stages") or {}).items()
             if stage.get("frozen_backbone")]
  multiplier = config.optimizer.get("backbone_lr_multiplier", 1.0)
  if multiplier != 1.0:
    needing.append(f"config.optimizer.backbone_lr_multiplier={multiplier}")
  if needing:
    raise ConfigError(
        f"{' and '.join(needing)} fine-tune a pretrained backbone, but "
        "config.model.pretrained is empty. Set config.model.pretrained to 'imagenet' (the "
        f"packaged weights of {weights.packaged_models()}), a weights file, a folder "
        "written by python -m fashion_jax pretrained or another run's workdir; or to "
        "'random' to train a randomly initialised backbone that way on purpose.")


def validate_config(config) -> list[tasks_lib.Task]:
  """Checks every field that can be checked without the data; returns the parsed tasks
  with their datasets resolved. Tasks named by `config.catalog` are expanded first (into
  `config.tasks`: what the run's config.json then stores)."""
  catalog_tasks.expand(config)
  _check_run_fields(config)
  pipeline.check_data_config(config.data)
  pipeline.check_augment_config(config.get("augment") or pipeline.DEFAULT_AUGMENT)
  models.check_config(config.model, config.data.image_size)
  optim.check_config(config.optimizer)
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  for name, dataset_config in config.datasets.items():
    where = f"config.datasets.{name}"
    resolved = sources.resolve_dataset_config(dataset_config, where)
    labelled.identity_task_of([t for t in tasks if t.dataset == name], resolved, where)
  hierarchy.parse(config.get("hierarchy", ""), tasks)
  hierarchy.check_decoding(config.get("hierarchy_decoding", "none"))
  balancing.make_balancer(config.loss_balancing, len(tasks))
  early_stopping.EarlyStopping(config.early_stopping, config.checkpoint,
                               validation_metrics(config, tasks), tasks)
  _check_weights_are_given(config)
  return tasks
