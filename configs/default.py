r"""Defaults for every field; experiment configs start from here and change what they need.

    python -m fashion_jax.main --config=configs/default.py --workdir=/tmp/fashion_default

Trains articleType only, on the embedded sample.
"""

import ml_collections

from fashion_jax.tasks import task_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Fixes initialisation, split, shuffling and augmentation.

  config.data = ml_collections.ConfigDict(dict(
      source="product_images",  # product_images (Kaggle) | hugging_face | deepfashion_category
      root="",  # Folder, HF hub name or local dataset path; '' = embedded sample.
      csv_name="styles.csv",
      deepfashion_annotations="coarse",  # deepfashion_category: coarse (Anno/) | fine
      hf_split="train",
      stratify="articleType",  # Column the train/val/test split is stratified on.
      val_fraction=0.1,
      test_fraction=0.1,
      rare_policy="drop",  # Classes under a task's min_count: drop (mask) | other.
      image_size=96,
      num_workers=0,  # grain worker processes; 0 = threads in the main process.
      num_threads=4,
      prefetch_buffer_size=256,
  ))

  config.model = ml_collections.ConfigDict(dict(
      name="resnet50",  # resnet_tiny | resnet18 | resnet34 | resnet50 | resnet101
      width=64,  # Channels of the stem and first stage.
      dtype="float32",  # float32 | bfloat16 (compute dtype; parameters stay float32)
      conv="auto",  # auto (matmul on CPU, XLA elsewhere) | xla | matmul
  ))

  config.tasks = ml_collections.ConfigDict(dict(
      articleType=task_config("softmax", "articleType"),
  ))

  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw",  # adamw | sgd
      schedule="warmup_cosine",  # warmup_cosine | constant
      learning_rate=1e-3,
      warmup_steps=200,
      end_lr_factor=0.01,
      b1=0.9,
      b2=0.999,
      momentum=0.9,  # sgd only
      weight_decay=0.05,
      grad_clip_norm=1.0,  # 0 disables clipping.
  ))

  config.batch_size = 32  # Global, over all devices and hosts.
  config.num_epochs = 10
  config.num_train_steps = -1  # > 0 overrides num_epochs.
  config.log_every_steps = 20
  config.eval_every_steps = 500
  config.eval_test = True  # Evaluate the test split at the end.
  config.profile = False
  config.distributed = False  # Force jax.distributed.initialize() (multi-host).

  config.checkpoint = ml_collections.ConfigDict(dict(
      every_steps=500,
      keep=3,  # Latest checkpoints kept, besides the best one.
      best_metric="val/articleType/accuracy",
      best_mode="max",
      asynchronous=True,
  ))
  return config
