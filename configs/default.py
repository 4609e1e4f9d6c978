r"""Defaults for every field; experiment configs start from here and change what they need.

    python -m fashion_jax.main --config=configs/default.py --workdir=/tmp/fashion_default

Trains articleType only, on the embedded sample.
"""

import ml_collections

from fashion_jax.data import pipeline
from fashion_jax.data.sources import dataset_config
from fashion_jax.tasks import task_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Fixes initialisation, split, shuffling and augmentation.

  # The datasets, by name. Each entry has every field of its source (see
  # fashion_jax/data/sources.py: DATASET_FIELDS and SOURCES):
  #   source: product_images (Kaggle layout) | hugging_face | deepfashion_category
  #           | deepfashion_inshop | array_record (python -m fashion_jax prepare) | tfds
  #           | catalog (a shop's table) | image_folder (root/<class>/<image>)
  #   root: folder, HF hub name or local dataset path ('' = the embedded sample)
  #   weight: share of training batches when several datasets are mixed
  #   rare_policy: classes under a task's min_count: drop (mask) | other
  #   sampler: auto (P x K identities when an embedding task reads it) | random | pk
  #   crop_to_box / box_margin: crop to the annotated box (DeepFashion) plus a margin
  #   stratify, val_fraction, test_fraction: split of sources without an official one
  # A task reads the dataset named by its `dataset` field ('' = the only dataset).
  config.datasets = ml_collections.ConfigDict({
      "products": dataset_config("product_images"),
  })

  config.data = ml_collections.ConfigDict(dict(
      image_size=96,
      num_workers=0,  # grain worker processes; 0 = threads in the main process.
      num_threads=4,
      prefetch_buffer_size=256,
      # An image that cannot be read: 'skip' (masked, listed in bad_samples.json) or 'fail'.
      bad_samples="skip",
  ))

  # Training augmentation, see DEFAULT_AUGMENT in fashion_jax/data/pipeline.py.
  config.augment = pipeline.DEFAULT_AUGMENT.copy_and_resolve_references()

  config.model = ml_collections.ConfigDict(dict(
      # resnet18 | resnet34 | resnet50 | resnet101 | convnext_tiny | convnext_small |
      # vit_s16 | vit_b16 | efficientnet_b0..b5 | tf_efficientnet_b0..b5 |
      # efficientnet_lite0..4 | tf_efficientnet_lite0..4 (and resnet_tiny, convnext_test,
      # vit_test, efficientnet_test, efficientnet_lite_test for tests).
      name="resnet50",
      width=64,  # ResNet: channels of the stem and first stage.
      # ConvNeXt, ViT, EfficientNet: stochastic depth of the last block (0 at the first).
      drop_path_rate=0.0,
      pooling="token",  # ViT features: the class token | mean (of the patch tokens).
      # Input normalisation: auto (what the family's ImageNet weights expect) |
      # imagenet | half (0.5 mean and std).
      input_statistics="auto",
      dtype="float32",  # float32 | bfloat16 (compute dtype; parameters stay float32)
      conv="auto",  # auto (matmul on CPU, XLA elsewhere) | xla | matmul
      # ImageNet weights for the backbone: a folder written by python -m
      # fashion_jax pretrained, or a torchvision/timm .pth/.safetensors/.npz ('' = none).
      pretrained="",
  ))

  config.tasks = ml_collections.ConfigDict(dict(
      articleType=task_config("softmax", "articleType"),
  ))

  # Label hierarchies between softmax tasks, e.g. "masterCategory>subCategory>articleType"
  # (comma-separated chains). Parents of each class are learned from the training split;
  # evaluate reports how often predictions agree with them.
  config.hierarchy = ""
  # 'bottom_up': a parent task's probabilities are multiplied by its child task's summed
  # over the parent's children (hierarchy.decode), in every prediction (evaluate, predict,
  # exports); training is unchanged. 'none': each head on its own.
  config.hierarchy_decoding = "none"

  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw",  # adamw | sgd
      schedule="warmup_cosine",  # warmup_cosine | one_cycle | step | constant
      learning_rate=1e-3,
      warmup_steps=200,
      # > 0: warm up over this fraction of the run instead (holds when num_epochs or the
      # dataset size change); overrides warmup_steps.
      warmup_fraction=0.0,
      end_lr_factor=0.01,
      b1=0.9,
      b2=0.999,
      momentum=0.9,  # sgd only
      weight_decay=0.05,
      grad_clip_norm=1.0,  # 0 disables clipping.
      step_boundaries=(0.6, 0.85),  # step schedule: fractions of training where lr drops,
      step_factor=0.1,  # ... by this factor each time.
      backbone_lr_multiplier=1.0,  # Backbone lr relative to the heads' (0.1 to fine-tune).
      accumulate_steps=1,  # Average gradients of k batches per update (bigger batches).
  ))

  # How task losses combine: fixed | uncertainty | dwa (see fashion_jax/training/balancing.py).
  config.loss_balancing = ml_collections.ConfigDict(dict(name="fixed", dwa_temperature=2.0))

  # Optional training stages, e.g. heads only on a frozen backbone, then everything:
  # {"heads": {"until_step": 500, "tasks": "", "frozen_backbone": True},
  #  "joint": {"until_step": -1, "tasks": "category,attributes:0.5", "frozen_backbone": False}}
  # See fashion_jax/training/stages.py. Empty = all tasks at their weights for the whole run.
  config.stages = ml_collections.ConfigDict()

  # Exponential moving average of the weights (0 = off, e.g. 0.999): trained alongside,
  # checkpointed with the model and scored as val_ema/... and test_ema/....
  config.ema_decay = 0.0

  config.batch_size = 32  # Global, over all devices and hosts.
  config.num_epochs = 10
  config.num_train_steps = -1  # > 0 overrides num_epochs.
  config.log_every_steps = 20
  config.eval_every_steps = 500
  config.eval_test = True  # Evaluate the test split at the end.
  # Evaluate and predict on the mean of each image and its mirror image (test-time
  # augmentation; twice the inference cost). `evaluate --flip=true|false` overrides it.
  config.test_time_flip = False
  config.profile = False
  config.distributed = False  # Force jax.distributed.initialize() (multi-host).
  # NaN/Inf in a loss or the gradients: 'stop' (naming the step and task; the checkpoints
  # are kept) or 'skip' that step's update, stopping after max_skipped_steps such steps.
  config.nonfinite_policy = "stop"
  config.max_skipped_steps = 10

  # Stop when the validation metric has not improved for `patience` evaluations (0 = off);
  # '' metric/mode = checkpoint.best_metric/best_mode.
  config.early_stopping = ml_collections.ConfigDict(dict(patience=0, metric="", mode="",
                                                         min_delta=0.0))

  config.checkpoint = ml_collections.ConfigDict(dict(
      every_steps=500,
      keep=3,  # Latest checkpoints kept, besides the best one.
      best_metric="val/articleType/accuracy",
      best_mode="auto",  # auto: max for accuracy-like metrics, min for a loss or an MAE.
      asynchronous=True,
  ))
  return config
