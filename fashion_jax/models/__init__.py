"""Models: the ResNet backbone family and the multi-task heads."""

from fashion_jax.models.heads import MultiTaskModel, build_model, check_config

__all__ = ["MultiTaskModel", "build_model", "check_config"]
