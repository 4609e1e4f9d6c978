"""The multi-task model: one backbone (any family of models/backbones.py), one linear
head per task."""


import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fashion_jax import checks
from fashion_jax.models import backbones, conv, weights

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def l2_normalize(x: jax.Array, epsilon: float = 1e-6) -> jax.Array:
  """x / max(||x||, epsilon) along the last axis, with a finite gradient at x = 0.

  The plain form is NaN to differentiate at a zero vector: the norm's own gradient
  x / ||x|| is 0/0 there, and multiplying it by the zero cotangent that `maximum`
  passes down keeps the NaN. A zero embedding does happen: when every feature is cut by
  the final ReLU (e.g. a 1x1 last feature map whose values the batch shares) the head
  outputs its bias, which starts at zero. So the norm of a zero row is taken of a
  stand-in row of ones and then replaced by 0 (the "double where"): its gradient is
  finite, and every non-zero row is computed exactly as by the plain form.
  """
  nonzero = jnp.any(x != 0, axis=-1, keepdims=True)
  norm = jnp.linalg.norm(jnp.where(nonzero, x, 1.0), axis=-1, keepdims=True)
  return x / jnp.maximum(jnp.where(nonzero, norm, 0.0), epsilon)


class MultiTaskModel(nnx.Module):
  """uint8 images [B, H, W, 3] -> {task name: head output}.

  Normalisation happens here, on device, so the input pipeline moves uint8 (4x less
  host memory and transfer) and train, eval and predict share one preprocessing.
  """

  def __init__(self, backbone: nnx.Module, head_sizes: dict[str, int],
               normalized_heads: tuple[str, ...], *, dtype, rngs: nnx.Rngs,
               learned_loss_weights: bool = False,
               input_mean=backbones.IMAGENET_MEAN, input_std=backbones.IMAGENET_STD):
    self.backbone = backbone
    # numpy, not jnp: a jax array made here could start the backend before
    # jax.distributed.initialize() (multi-host runs must call that first).
    self.input_mean = tuple(float(v) for v in input_mean)
    self.input_std = tuple(float(v) for v in input_std)
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
    features = self.features(images, train and not frozen_backbone)
    if frozen_backbone:
      features = jax.lax.stop_gradient(features)
    outputs = {}
    for name, head in self.heads.items():
      y = head(features).astype(jnp.float32)
      if name in self.normalized_heads:
        y = l2_normalize(y)
      outputs[name] = y
    return outputs

  def features(self, images: jax.Array, train: bool = False) -> jax.Array:
    """uint8 images [B, H, W, 3] -> the backbone's pooled features [B, num_features]."""
    mean = np.asarray(self.input_mean, np.float32)
    std = np.asarray(self.input_std, np.float32)
    x = ((images.astype(jnp.float32) - mean) / std).astype(self.dtype)
    return self.backbone(x, train)

  def predict(self, images: jax.Array, flip: bool = False) -> dict[str, jax.Array]:
    """Inference outputs; with `flip`, the mean over the image and its mirror image
    (test-time augmentation: logits averaged, embeddings averaged and re-normalised)."""
    outputs = self(images, train=False)
    if not flip:
      return outputs
    mirrored = self(images[:, :, ::-1], train=False)
    return {name: (l2_normalize(y + mirrored[name]) if name in self.normalized_heads
                   else (y + mirrored[name]) / 2) for name, y in outputs.items()}


def check_config(model_config, image_size) -> None:
  """`config.model`, and `config.data.image_size` against the backbone's total stride."""
  backbones.check_config(model_config, image_size)
  checks.choice(model_config.dtype, "model.dtype", DTYPES)
  checks.choice(model_config.conv, "model.conv", conv.IMPLEMENTATIONS)
  weights.check_pretrained(model_config.pretrained, model_config.name)


def build_model(model_config, tasks, vocabs, seed: int, learned_loss_weights: bool = False,
                image_size: int = 224) -> MultiTaskModel:
  """Builds the model for `tasks` and `image_size` (position embeddings, where the
  backbone has them); head sizes come from the vocabularies."""
  dtype_name = model_config.get("dtype", "float32")
  checks.choice(dtype_name, "model.dtype", DTYPES)
  dtype = DTYPES[dtype_name]
  rngs = nnx.Rngs(seed)
  family = backbones.family(model_config.name)
  backbone = family.build(model_config.name, model_config, image_size=image_size,
                          dtype=dtype, rngs=rngs,
                          conv_implementation=conv.resolve_implementation(
                              model_config.get("conv", "auto")))
  head_sizes = {t.name: t.spec.head_size(t, len(vocabs[t.name])) for t in tasks}
  normalized = tuple(t.name for t in tasks if t.spec.normalize_output)
  input_mean, input_std = backbones.input_statistics(model_config)
  return MultiTaskModel(backbone, head_sizes, normalized, dtype=dtype, rngs=rngs,
                        learned_loss_weights=learned_loss_weights,
                        input_mean=input_mean, input_std=input_std)
