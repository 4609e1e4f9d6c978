"""Vision Transformer family (Dosovitskiy et al. 2021) in Flax NNX: ViT-S/16 and
ViT-B/16 as timm and torchvision define them, and vit_test (two narrow blocks) for tests.

Pre-norm blocks (LayerNorm, multi-head self-attention, LayerNorm, a 4x MLP with exact
GELU), stochastic depth on both residual branches. The position embeddings are sized
for `config.data.image_size`, which must be a multiple of the patch size; imported
ones are resampled to it as timm does (bicubic, antialiased). Features: the class
token after the final norm, or with `config.model.pooling=mean` the norm of the mean
patch token (timm's `global_pool='avg'`).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fashion_jax.errors import ConfigError, DataError
from fashion_jax.models import backbones
from fashion_jax.models.layers import DropPathKeys, PatchEmbed, drop_path, drop_path_rates
from fashion_jax.models.layers import layer_norm, linear, torch_bicubic_resize
from fashion_jax.models.layers import trunc_normal_002


@dataclasses.dataclass(frozen=True)
class Architecture:
  patch: int
  dim: int
  depth: int
  heads: int


ARCHITECTURES = {
    "vit_test": Architecture(patch=8, dim=32, depth=2, heads=2),
    "vit_s16": Architecture(patch=16, dim=384, depth=12, heads=6),
    "vit_b16": Architecture(patch=16, dim=768, depth=12, heads=12),
}


class Block(nnx.Module):

  def __init__(self, dim: int, heads: int, drop_rate: float, *, dtype, rngs: nnx.Rngs):
    self.norm1 = layer_norm(dim, dtype, rngs)
    self.qkv = linear(dim, 3 * dim, dtype, rngs)
    self.proj = linear(dim, dim, dtype, rngs)
    self.norm2 = layer_norm(dim, dtype, rngs)
    self.fc1 = linear(dim, 4 * dim, dtype, rngs)
    self.fc2 = linear(4 * dim, dim, dtype, rngs)
    self.heads = heads
    self.drop_rate = drop_rate

  def attention(self, x):
    b, n, d = x.shape
    q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).transpose(2, 0, 3, 1, 4)
    # Logits and softmax in float32 also under bfloat16.
    logits = jnp.einsum("bhqc,bhkc->bhqk", q, k, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits / np.sqrt(d // self.heads), axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bhkc->bqhc", weights, v).reshape(b, n, d)
    return self.proj(out)

  def __call__(self, x, keys):
    attention_key, mlp_key = keys if keys is not None else (None, None)
    x = x + drop_path(self.attention(self.norm1(x)), self.drop_rate, attention_key)
    y = self.fc2(jax.nn.gelu(self.fc1(self.norm2(x)), approximate=False))
    return x + drop_path(y, self.drop_rate, mlp_key)


class VisionTransformer(nnx.Module):
  """Backbone: images [B, H, W, 3] (normalised) -> pooled features [B, num_features]."""

  def __init__(self, name: str, *, image_size: int, pooling: str, drop_path_rate: float,
               dtype, rngs: nnx.Rngs):
    arch = ARCHITECTURES[name]
    self.patch_embed = PatchEmbed(3, arch.dim, arch.patch, dtype=dtype, rngs=rngs)
    tokens = (image_size // arch.patch) ** 2 + 1
    self.cls_token = nnx.Param(jnp.zeros((1, 1, arch.dim), jnp.float32))
    self.pos_embed = nnx.Param(trunc_normal_002(rngs.params(), (1, tokens, arch.dim),
                                                jnp.float32))
    self.blocks = nnx.List([Block(arch.dim, arch.heads, rate, dtype=dtype, rngs=rngs)
                            for rate in drop_path_rates(drop_path_rate, arch.depth)])
    self.norm = layer_norm(arch.dim, dtype, rngs)
    self.drop_path_keys = DropPathKeys(rngs) if drop_path_rate > 0 else None
    self.pooling = pooling
    self.num_features = arch.dim
    self.dtype = dtype

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = self.patch_embed(x)
    b, h, w, d = x.shape
    cls = jnp.broadcast_to(self.cls_token[...].astype(self.dtype), (b, 1, d))
    x = jnp.concatenate([cls, x.reshape(b, h * w, d)], axis=1)
    x = x + self.pos_embed[...].astype(self.dtype)
    keys = (self.drop_path_keys.next(2 * len(self.blocks)).reshape(len(self.blocks), 2)
            if train and self.drop_path_keys is not None else None)
    for index, block in enumerate(self.blocks):
      x = block(x, keys[index] if keys is not None else None)
    if self.pooling == "mean":
      return self.norm(jnp.mean(x[:, 1:].astype(jnp.float32), axis=1).astype(self.dtype)
                       ).astype(jnp.float32)
    return self.norm(x[:, 0]).astype(jnp.float32)


_LN = {"weight": "scale", "bias": "bias"}


def _linear_names(theirs: str, ours: tuple) -> dict:
  return {f"{theirs}.weight": (*ours, "kernel"), f"{theirs}.bias": (*ours, "bias")}


def _timm_names(arch: Architecture, final_norm: str) -> dict:
  names = {"cls_token": ("cls_token",), "pos_embed": ("pos_embed",),
           "patch_embed.proj.weight": ("patch_embed", "kernel"),
           "patch_embed.proj.bias": ("patch_embed", "bias")}
  for i in range(arch.depth):
    prefix, ours = f"blocks.{i}", ("blocks", i)
    for theirs, module in (("attn.qkv", "qkv"), ("attn.proj", "proj"), ("mlp.fc1", "fc1"),
                           ("mlp.fc2", "fc2")):
      names.update(_linear_names(f"{prefix}.{theirs}", (*ours, module)))
    for norm in ("norm1", "norm2"):
      names.update({f"{prefix}.{norm}.{k}": (*ours, norm, v) for k, v in _LN.items()})
  names.update({f"{final_norm}.{k}": ("norm", v) for k, v in _LN.items()})
  return names


def _torchvision_names(arch: Architecture) -> dict:
  names = {"class_token": ("cls_token",), "encoder.pos_embedding": ("pos_embed",),
           "conv_proj.weight": ("patch_embed", "kernel"), "conv_proj.bias": ("patch_embed", "bias")}
  for i in range(arch.depth):
    prefix, ours = f"encoder.layers.encoder_layer_{i}", ("blocks", i)
    names[f"{prefix}.self_attention.in_proj_weight"] = (*ours, "qkv", "kernel")
    names[f"{prefix}.self_attention.in_proj_bias"] = (*ours, "qkv", "bias")
    for theirs, module in (("self_attention.out_proj", "proj"), ("mlp.0", "fc1"),
                           ("mlp.3", "fc2")):
      names.update(_linear_names(f"{prefix}.{theirs}", (*ours, module)))
    for theirs, norm in (("ln_1", "norm1"), ("ln_2", "norm2")):
      names.update({f"{prefix}.{theirs}.{k}": (*ours, norm, v) for k, v in _LN.items()})
  names.update({f"encoder.ln.{k}": ("norm", v) for k, v in _LN.items()})
  return names


class ViTFamily(backbones.Family):
  """ViT-S/16, ViT-B/16 (vit_test for tests); options `pooling` (token | mean) and
  `drop_path_rate`. Inputs normalised with 0.5 mean and std, as timm's ImageNet-21k
  ViTs expect (torchvision's ViT-B/16 weights were trained with ImageNet statistics:
  `config.model.input_statistics=imagenet` for them)."""

  names = tuple(ARCHITECTURES)
  total_stride = min(a.patch for a in ARCHITECTURES.values())  # Each name checks its own.
  foreign_skipped = ("head.", "heads.")
  input_mean = (127.5, 127.5, 127.5)
  input_std = (127.5, 127.5, 127.5)

  def build(self, name, model_config, *, image_size, dtype, conv_implementation, rngs):
    return VisionTransformer(name, image_size=image_size,
                             pooling=model_config.get("pooling", "token"),
                             drop_path_rate=model_config.get("drop_path_rate", 0.0),
                             dtype=dtype, rngs=rngs)

  def check_image_size(self, name, image_size):
    patch = ARCHITECTURES[name].patch
    if not (isinstance(image_size, int) and image_size >= patch and image_size % patch == 0):
      raise ConfigError(f"config.data.image_size={image_size!r} must be a multiple of "
                        f"{name}'s patch size {patch} (e.g. {max(patch, 224 // patch * patch)}).")

  def foreign_layouts(self, name):
    arch = ARCHITECTURES[name]
    return {"timm": _timm_names(arch, "norm"), "timm (global_pool='avg')":
            _timm_names(arch, "fc_norm"), "torchvision": _torchvision_names(arch)}

  def fit_value(self, path, value, shape, source):
    if path != ("pos_embed",) or value.shape[2] != shape[2]:
      return super().fit_value(path, value, shape, source)
    old, new = (int(round(np.sqrt(n - 1))) for n in (value.shape[1], shape[1]))
    if old * old + 1 != value.shape[1]:
      raise DataError(f"{source}: pos_embed of {value.shape[1]} tokens is not a class token "
                      "and a square grid.")
    grid = torch_bicubic_resize(value[0, 1:].reshape(old, old, -1), new)
    return np.concatenate([value[0, :1], grid.reshape(new * new, -1)])[None]


FAMILY = ViTFamily()
