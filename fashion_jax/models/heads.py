"""The multi-task model: one backbone, one linear head per task."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fashion_jax.models import conv
from fashion_jax.models.resnet import ResNet
from fashion_jax.errors import ConfigError

# ImageNet statistics (RGB, 0-255 scale); kept so that ImageNet weights can be imported.
# numpy, not jnp: a jax array made at import would start the backend before
# jax.distributed.initialize() (multi-host runs must call that first).
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class MultiTaskModel(nnx.Module):
  """uint8 images [B, H, W, 3] -> {task name: head output}.

  Normalisation happens here, on device, so the input pipeline moves uint8 (4x less
  host memory and transfer) and train, eval and predict share one preprocessing.
  """

  def __init__(self, backbone: ResNet, head_sizes: dict[str, int],
               normalized_heads: tuple[str, ...], *, dtype, rngs: nnx.Rngs,
               learned_loss_weights: bool = False):
    self.backbone = backbone
    self.heads = nnx.Dict({
        name: nnx.Linear(backbone.num_features, size, dtype=dtype, rngs=rngs)
        for name, size in head_sizes.items()})
    # Uncertainty loss balancing: one learned log-variance per task (heads order).
    self.loss_log_variances = (nnx.Param(jnp.zeros(len(head_sizes), jnp.float32))
                               if learned_loss_weights else None)
    self.normalized_heads = tuple(normalized_heads)
    self.dtype = dtype

  def __call__(self, images: jax.Array, train: bool = False,
               frozen_backbone: bool = False) -> dict[str, jax.Array]:
    """`frozen_backbone`: no gradient into the backbone, and its BatchNorm in eval mode."""
    x = ((images.astype(jnp.float32) - _MEAN) / _STD).astype(self.dtype)
    features = self.backbone(x, train and not frozen_backbone)
    if frozen_backbone:
      features = jax.lax.stop_gradient(features)
    outputs = {}
    for name, head in self.heads.items():
      y = head(features).astype(jnp.float32)
      if name in self.normalized_heads:
        y = y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), 1e-6)
      outputs[name] = y
    return outputs


def build_model(model_config, tasks, vocabs, seed: int,
                learned_loss_weights: bool = False) -> MultiTaskModel:
  """Builds the model for `tasks`; head sizes come from the vocabularies."""
  dtype_name = model_config.get("dtype", "float32")
  if dtype_name not in DTYPES:
    raise ConfigError(f"config.model.dtype={dtype_name!r} is not one of {sorted(DTYPES)}.")
  dtype = DTYPES[dtype_name]
  rngs = nnx.Rngs(seed)
  backbone = ResNet(model_config.name, width=model_config.width, dtype=dtype,
                    conv_implementation=conv.resolve_implementation(model_config.get("conv", "auto")),
                    rngs=rngs)
  head_sizes = {t.name: t.spec.head_size(t, len(vocabs[t.name])) for t in tasks}
  normalized = tuple(t.name for t in tasks if t.spec.normalize_output)
  return MultiTaskModel(backbone, head_sizes, normalized, dtype=dtype, rngs=rngs,
                        learned_loss_weights=learned_loss_weights)
