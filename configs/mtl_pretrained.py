r"""configs/mtl.py fine-tuned from ImageNet weights.

    python -m fashion_jax.pretrained --weights=resnet50-11ad3fa6.pth --out=weights/r50
    python -m fashion_jax.main --config=configs/mtl_pretrained.py --workdir=runs/mtl_pt \
        --config.model.pretrained=weights/r50 \
        --config.datasets.products.root=/path/to/fashion-product-images

The heads train alone on the frozen backbone first, then everything with the backbone
at a tenth of the heads' learning rate; an EMA of the weights is kept and scored, and
training stops when validation articleType accuracy stops improving.
"""

from fashion_jax.config_lib import load_sibling_config


def get_config():
  config = load_sibling_config(__file__, "mtl")
  config.model.pretrained = ""  # Required: a folder from python -m fashion_jax.pretrained.
  config.optimizer.backbone_lr_multiplier = 0.1
  config.optimizer.learning_rate = 1e-3
  config.stages = {
      "heads": {"until_step": 300, "tasks": "", "frozen_backbone": True},
      "joint": {"until_step": -1, "tasks": "", "frozen_backbone": False},
  }
  config.ema_decay = 0.999
  config.num_epochs = 15
  config.early_stopping.patience = 3
  return config
