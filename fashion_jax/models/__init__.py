"""Models: the backbone families (ResNet, ConvNeXt, ViT, EfficientNet; models/backbones.py),
ImageNet weights (weights.py) and the multi-task heads (heads.py)."""

from fashion_jax.models.heads import MultiTaskModel, build_model, check_config

__all__ = ["MultiTaskModel", "build_model", "check_config"]
