"""Every config field: a wrong value stops the run before training, naming the field, and
leaves the workdir as it was (docs/reliability.md lists what each field accepts)."""

import os

import ml_collections
import pytest

from conftest import snapshot, tiny_config
from fashion_jax.data.product_images import SAMPLE_DIR
from fashion_jax import tasks as tasks_lib
from fashion_jax.training import train
from fashion_jax.data import sources
from fashion_jax.errors import ConfigError, DataError
from fashion_jax.tasks import task_config

SAMPLE_CSV = os.path.join(SAMPLE_DIR, "styles.csv")
_SIGMOID = {"tags": task_config("sigmoid", "season")}
_REGRESSION = {"year": task_config("regression", "year")}
_DWA = {"loss_balancing.name": "dwa"}

# (overrides applied in order, what the message must contain). One row or more per field.
ROWS = [
    ({"seed": -1}, "config.seed=-1 must be an integer >= 0"),
    ({"batch_size": 0}, "config.batch_size=0 must be an integer >= 1"),
    ({"num_train_steps": -1, "num_epochs": 0}, "config.num_epochs=0: set one of them"),
    ({"num_train_steps": 0, "num_epochs": -2}, "config.num_train_steps=0 and config.num_epochs"),
    ({"log_every_steps": 0}, "config.log_every_steps=0 must be an integer >= 1"),
    ({"eval_every_steps": -5}, "config.eval_every_steps=-5 must be an integer >= 1"),
    ({"nonfinite_policy": "ignore"}, "config.nonfinite_policy='ignore' is not one of"),
    ({"max_skipped_steps": -1}, "config.max_skipped_steps=-1 must be an integer >= 0"),
    ({"ema_decay": 1.0}, "config.ema_decay=1.0 must be a number in [0, 1)"),
    ({"ema_decay": -0.1}, "config.ema_decay=-0.1 must be a number in [0, 1)"),
    ({"hierarchy": "articleType>nope"}, "nope"),
    ({"hierarchy_decoding": "top_down"}, "config.hierarchy_decoding='top_down' is not one of"),
    ({"model.pretrained": "random",
      "stages": {"a": {"until_step": 99, "tasks": "", "frozen_backbone": True}}},
     "config.stages.a.until_step=99"),
    # Settings that fine-tune need the weights to fine-tune.
    ({"stages": {"a": {"until_step": 2, "tasks": "", "frozen_backbone": True},
                 "b": {"until_step": -1, "tasks": "", "frozen_backbone": False}}},
     "config.stages.a.frozen_backbone=True fine-tune a pretrained backbone, but "
     "config.model.pretrained is empty"),
    ({"optimizer.backbone_lr_multiplier": 0.1},
     "config.optimizer.backbone_lr_multiplier=0.1 fine-tune a pretrained backbone, but "
     "config.model.pretrained is empty"),
    ({"model.pretrained": "imagenet"},
     "config.model.pretrained=imagenet: no package ships ImageNet weights for "
     "config.model.name='resnet_tiny'; the models that have them: ['tf_efficientnet_lite0', "
     "'tf_efficientnet_lite1', 'tf_efficientnet_lite2']"),
    # data
    ({"data.image_size": 0}, "config.data.image_size=0 must be an integer >= 32"),
    ({"data.image_size": 16}, "config.data.image_size=16 must be an integer >= 32"),
    ({"data.image_size": 31}, "resnet_tiny divides the image side by 32"),
    ({"data.num_workers": -1}, "config.data.num_workers=-1 must be an integer >= 0"),
    ({"data.num_threads": 0}, "config.data.num_threads=0 must be an integer >= 1"),
    ({"data.prefetch_buffer_size": -1}, "config.data.prefetch_buffer_size=-1"),
    ({"data.bad_samples": "ignore"}, "config.data.bad_samples='ignore' is not one of"),
    # augment
    ({"augment.crop_scale": (0.0, 1.0)}, "config.augment.crop_scale=(0.0, 1.0): need 0 < min"),
    ({"augment.crop_scale": (0.5, 1.5)}, "config.augment.crop_scale=(0.5, 1.5)"),
    ({"augment.crop_ratio": (2.0, 1.0)}, "config.augment.crop_ratio=(2.0, 1.0)"),
    ({"augment.brightness": 1.0}, "config.augment.brightness=1.0 must be a number in [0, 1)"),
    ({"augment.contrast": -0.1}, "config.augment.contrast=-0.1"),
    ({"augment.saturation": 2.0}, "config.augment.saturation=2.0"),
    ({"augment.hue": 0.6}, "config.augment.hue=0.6 must be a number in [0, 0.5]"),
    ({"augment.erase_probability": 1.5}, "config.augment.erase_probability=1.5"),
    ({"augment.erase_area": (0.3, 0.2)}, "config.augment.erase_area=(0.3, 0.2)"),
    # model
    ({"model.name": "resnet5"}, "config.model.name='resnet5' is not one of"),
    ({"model.width": 0}, "config.model.width=0 must be an integer >= 1"),
    ({"model.drop_path_rate": 1.0}, "config.model.drop_path_rate=1.0 must be"),
    ({"model.pooling": "max"}, "config.model.pooling='max' is not one of"),
    ({"model.input_statistics": "cifar"}, "config.model.input_statistics='cifar' is not one of"),
    ({"model.name": "vit_test", "data.image_size": 36},
     "config.data.image_size=36 must be a multiple of vit_test's patch size 8"),
    ({"model.dtype": "float16"}, "config.model.dtype='float16' is not one of"),
    ({"model.conv": "cudnn"}, "config.model.conv='cudnn' is not one of"),
    ({"model.pretrained": "/nonexistent/resnet.pth"},
     "config.model.pretrained='/nonexistent/resnet.pth' does not exist"),
    # optimizer
    ({"optimizer.name": "lamb"}, "config.optimizer.name='lamb' is not one of"),
    ({"optimizer.schedule": "linear"}, "config.optimizer.schedule='linear' is not one of"),
    ({"optimizer.learning_rate": -1.0}, "config.optimizer.learning_rate=-1.0 must be a number > 0"),
    ({"optimizer.learning_rate": 0.0}, "config.optimizer.learning_rate=0.0 must be a number > 0"),
    ({"optimizer.warmup_steps": -1}, "config.optimizer.warmup_steps=-1 must be an integer >= 0"),
    ({"optimizer.warmup_fraction": 1.0}, "config.optimizer.warmup_fraction=1.0"),
    ({"optimizer.end_lr_factor": 2.0}, "config.optimizer.end_lr_factor=2.0"),
    ({"optimizer.b1": 1.0}, "config.optimizer.b1=1.0 must be a number in [0, 1)"),
    ({"optimizer.b2": -0.1}, "config.optimizer.b2=-0.1"),
    ({"optimizer.momentum": 1.0}, "config.optimizer.momentum=1.0"),
    ({"optimizer.weight_decay": -0.1}, "config.optimizer.weight_decay=-0.1 must be a number >= 0"),
    ({"optimizer.grad_clip_norm": -1.0}, "config.optimizer.grad_clip_norm=-1.0 must be a number >= 0"),
    ({"optimizer.step_boundaries": (0.5, 1.5)}, "config.optimizer.step_boundaries=1.5"),
    ({"optimizer.step_factor": 0.0}, "config.optimizer.step_factor=0.0 must be a number > 0"),
    ({"optimizer.backbone_lr_multiplier": -1.0}, "config.optimizer.backbone_lr_multiplier=-1.0"),
    ({"optimizer.accumulate_steps": 0}, "config.optimizer.accumulate_steps=0"),
    # loss balancing
    ({"loss_balancing.name": "gradnorm"}, "config.loss_balancing.name='gradnorm' is not one of"),
    ({**_DWA, "loss_balancing.dwa_temperature": 0.0}, "config.loss_balancing.dwa_temperature=0.0"),
    # early stopping
    ({"early_stopping.patience": -1}, "config.early_stopping.patience=-1"),
    ({"early_stopping.patience": 2, "early_stopping.metric": "val/nope"},
     "config.early_stopping.metric='val/nope'"),
    ({"early_stopping.mode": "up"}, "config.early_stopping.mode='up'"),
    ({"early_stopping.min_delta": -1.0}, "config.early_stopping.min_delta=-1.0"),
    # checkpoint
    ({"checkpoint.every_steps": 0}, "config.checkpoint.every_steps=0"),
    ({"checkpoint.keep": 0}, "config.checkpoint.keep=0 must be an integer >= 1"),
    ({"checkpoint.best_metric": "val/nope/accuracy"}, "config.checkpoint.best_metric='val/nope"),
    ({"checkpoint.best_mode": "up"}, "config.checkpoint.best_mode='up' is not one of"),
    # tasks: common fields
    ({"tasks.gender.kind": "ranking"}, "config.tasks.gender.kind='ranking' is not one of"),
    ({"tasks.gender.column": ""}, "config.tasks.gender.column is not set"),
    ({"tasks.gender.weight": -1.0}, "config.tasks.gender.weight=-1.0 must be a number >= 0"),
    ({"tasks.gender.min_count": 0}, "config.tasks.gender.min_count=0 must be an integer >= 1"),
    ({"tasks.gender.dataset": "other"}, "config.tasks.gender.dataset='other' is not one of"),
    # softmax
    ({"tasks.gender.label_smoothing": 1.0}, "config.tasks.gender.label_smoothing=1.0"),
    ({"tasks.gender.class_weighting": "sqrt"}, "config.tasks.gender.class_weighting='sqrt'"),
    ({"tasks.gender.effective_beta": 1.0}, "config.tasks.gender.effective_beta=1.0"),
    ({"tasks.gender.top_k": (0,)}, "config.tasks.gender.top_k=(0,): values must be positive"),
    # sigmoid
    ({"tasks": _REGRESSION, "tasks.year.loss_type": "huber"},
     "config.tasks.year.loss_type='huber' is not one of"),
    ({"tasks": _SIGMOID, "tasks.tags.pos_weight": 0.0}, "config.tasks.tags.pos_weight=0.0"),
    ({"tasks": _SIGMOID, "tasks.tags.max_pos_weight": 0.5},
     "config.tasks.tags.max_pos_weight=0.5"),
    ({"tasks": _SIGMOID, "tasks.tags.threshold": 1.0}, "config.tasks.tags.threshold=1.0"),
    ({"tasks": _SIGMOID, "tasks.tags.target_precision": 1.5},
     "config.tasks.tags.target_precision=1.5"),
    ({"tasks": _SIGMOID, "tasks.tags.min_tuning_examples": 0},
     "config.tasks.tags.min_tuning_examples=0"),
    ({"tasks": _SIGMOID, "tasks.tags.separator": ""}, "config.tasks.tags.separator=''"),
    ({"tasks": _SIGMOID, "tasks.tags.top_k": ("a",)}, "config.tasks.tags.top_k=('a',)"),
    # embedding
    ({"tasks.embedding.dim": 0}, "config.tasks.embedding.dim=0 must be an integer >= 1"),
    ({"tasks.embedding.margin": -0.1}, "config.tasks.embedding.margin=-0.1"),
    ({"tasks.embedding.recall_ks": (0, 5)}, "config.tasks.embedding.recall_ks=(0, 5)"),
    # datasets: every source's fields
    ({"datasets.products.source": "kaggle"}, "config.datasets.products.source='kaggle'"),
    ({"datasets.products.root": "/nonexistent/data"}, "/nonexistent/data/styles.csv"),
    ({"datasets.products.weight": -1.0}, "config.datasets.products.weight=-1.0"),
    ({"datasets.products.rare_policy": "keep"}, "config.datasets.products.rare_policy='keep'"),
    ({"datasets.products.sampler": "pkk"}, "config.datasets.products.sampler='pkk'"),
    ({"datasets.products.images_per_identity": 0},
     "config.datasets.products.images_per_identity=0 must be an integer >= 1"),
    ({"datasets.products.images_per_identity": 1},
     "config.datasets.products.images_per_identity=1 must be >= 2"),
    ({"datasets.products.crop_to_box": True}, "config.datasets.products.crop_to_box is set"),
    ({"datasets.products.box_margin": -0.1}, "config.datasets.products.box_margin=-0.1"),
    ({"datasets.products.stratify": "nope"}, "missing column(s) ['nope']"),
    ({"datasets.products.val_fraction": 1.0}, "config.datasets.products.val_fraction=1.0"),
    ({"datasets.products.test_fraction": -0.1}, "config.datasets.products.test_fraction=-0.1"),
    ({"datasets.products.val_fraction": 0.5, "datasets.products.test_fraction": 0.5},
     "their sum must be < 1"),
    ({"datasets.products.split_seed": -1}, "config.datasets.products.split_seed=-1"),
    ({"datasets.products.split_file": "/nonexistent/split.csv"},
     "config.datasets.products.split_file='/nonexistent/split.csv': no such file"),
    ({"datasets.products.csv_name": ""}, "config.datasets.products.csv_name is empty"),
    ({"datasets.products.csv_name": "nope.csv"}, "nope.csv"),
    ({"datasets.products.source": "hugging_face", "datasets.products.hf_split": ""},
     "config.datasets.products.hf_split is empty"),
    ({"datasets.products.source": "deepfashion_category",
      "datasets.products.annotations": "medium"},
     "config.datasets.products.annotations='medium' is not one of"),
    ({"datasets.products.source": "deepfashion_inshop",
      "datasets.products.val_items_fraction": 1.0},
     "config.datasets.products.val_items_fraction=1.0"),
    ({"datasets.products.source": "tfds", "datasets.products.tfds_name": ""},
     "config.datasets.products.tfds_name is empty"),
    ({"datasets.products.source": "catalog", "datasets.products.root": ""},
     "A catalog dataset needs its table"),
    ({"datasets.products.source": "catalog", "datasets.products.table": "shop.xlsx"},
     "shop.xlsx: expected a .csv, .tsv, .jsonl or .parquet table"),
    ({"datasets.products.source": "catalog", "datasets.products.image_column": ""},
     "config.datasets.products.image_column='' must be a non-empty string"),
    ({"datasets.products.source": "catalog", "datasets.products.root": SAMPLE_CSV,
      "datasets.products.image_column": "id", "datasets.products.id_column": "sku"},
     "no column(s) ['sku']"),
    ({"datasets.products.source": "catalog", "datasets.products.root": SAMPLE_CSV,
      "datasets.products.image_column": "id", "datasets.products.split_column": "nope"},
     "no column(s) ['nope']"),
    ({"datasets.products.source": "catalog", "datasets.products.list_separator": ""},
     "config.datasets.products.list_separator='' must be a non-empty string"),
    ({"datasets.products.source": "catalog", "datasets.products.empty_string": "none"},
     "config.datasets.products.empty_string='none' is not one of"),
    ({"datasets.products.source": "image_folder", "datasets.products.label_column": ""},
     "config.datasets.products.label_column='' must be a non-empty string"),
    ({"datasets.products.source": "tfds", "datasets.products.tfds_split": ""},
     "config.datasets.products.tfds_split is empty"),
    ({"datasets.products.nope": 1}, "config.datasets.products: unknown field(s) ['nope']"),
]
# Fields whose type is their only constraint (ml_collections refuses another type, and
# an override from the command line that does not parse as it), or any value is valid.
TYPE_ONLY = {"eval_test", "profile", "distributed", "checkpoint.asynchronous", "augment.flip",
             "test_time_flip",
             "tasks.tags.auto_pos_weight", "tasks.tags.tune_thresholds",
             # Column names, comma-separated: a name no task reads changes nothing.
             "datasets.products.multi_valued_columns",
             # A folder, made on first use; '' = none (a URL row then names this field).
             "datasets.products.image_cache",
             # '' = no attribute groups; any other string splits class names into groups.
             "tasks.tags.group_separator"}


def _set(config, path: str, value) -> None:
  *parents, field = path.split(".")
  node = config
  for key in parents:
    node = node[key]
  if isinstance(value, dict) and field in ("tasks", "stages"):
    value = {**(node[field].to_dict() if field == "tasks" else {}), **value}
    node[field] = ml_collections.ConfigDict(value)
  else:
    node[field] = value


@pytest.mark.slow
@pytest.mark.parametrize("overrides,message", ROWS, ids=[
    "+".join(f"{k}={v}" for k, v in o.items() if not isinstance(v, dict)) or next(iter(o))
    for o, _ in ROWS])
def test_a_wrong_value_stops_before_training_naming_the_field(overrides, message, tmp_path):
  config = tiny_config()
  config.num_train_steps = 4
  for path, value in overrides.items():
    _set(config, path, value)
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text('{"from": "an earlier run"}')
  before = snapshot(workdir)
  with pytest.raises((ConfigError, DataError)) as raised:
    train.train_and_evaluate(config, str(workdir))
  assert message in str(raised.value)
  assert snapshot(workdir) == before


def _leaf_fields(config, prefix="") -> set[str]:
  fields = set()
  for key, value in config.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      fields |= _leaf_fields(value, f"{prefix}{key}.")
    else:
      fields.add(f"{prefix}{key}")
  return fields


def test_the_table_covers_every_field_of_every_source_and_task_kind():
  config = tiny_config()
  config.tasks = {**config.tasks, **_SIGMOID, **_REGRESSION}
  for source in sources.SOURCES.values():  # Every field any source has, on one dataset.
    for field, default in {**sources.DATASET_FIELDS, **source.options}.items():
      config.datasets.products[field] = default
  # A kind's options are tested on one task of that kind.
  by_kind = {"softmax": "gender", "sigmoid": "tags", "embedding": "embedding",
             "regression": "year"}
  assert set(by_kind) == set(tasks_lib.KINDS)  # Every kind registered is covered.

  def canonical(field):
    parts = field.split(".")
    if len(parts) == 3 and parts[0] == "tasks" and parts[1] in config.tasks:
      common = parts[2] in ("kind", "column", "weight", "min_count", "dataset")
      parts[1] = "*" if common else by_kind[config.tasks[parts[1]].kind]
    return ".".join(parts)

  tested = {canonical(path) for overrides, _ in ROWS for path in overrides}
  missing = {canonical(f) for f in _leaf_fields(config)} - tested - TYPE_ONLY
  assert not missing, f"fields without a row in ROWS or TYPE_ONLY: {sorted(missing)}"
  # Booleans: ml_collections refuses another type when the field is set.
  for field in ("eval_test", "profile", "distributed"):
    with pytest.raises(TypeError):
      config[field] = "yes"


def test_warmup_longer_than_the_run_warns_and_is_clamped(caplog):
  from fashion_jax.training import optim
  config = tiny_config()
  config.optimizer.warmup_steps = 500
  with caplog.at_level("WARNING"):
    _, schedule = optim.make_optimizer(config.optimizer, 40)
  assert "config.optimizer.warmup_steps=500 is longer than the run (40 steps)" in caplog.text
  # The whole run warms up: the peak is reached at its last step, not after it.
  assert schedule(39) == pytest.approx(config.optimizer.learning_rate)
  assert schedule(0) < schedule(20) < schedule(39)


def test_task_kinds_check_their_own_options_when_parsed():
  with pytest.raises(ConfigError, match=r"config.tasks.t.margin=-1.0"):
    tasks_lib.parse_tasks({"t": task_config("embedding", "articleType", margin=-1.0)})


def test_warmup_fraction_scales_with_the_run():
  from fashion_jax.training import optim
  config = tiny_config()
  config.optimizer.warmup_fraction = 0.1
  for total in (100, 1000):
    _, schedule = optim.make_optimizer(config.optimizer, total)
    peak = config.optimizer.learning_rate
    assert schedule(total // 10) == pytest.approx(peak)  # Warm-up ends at 10% of the run.
    assert schedule(total // 20) == pytest.approx(peak / 2)
