"""ConvNeXt family (Liu et al. 2022) in Flax NNX: ConvNeXt-T and -S as torchvision and
timm define them, and convnext_test (one narrow block a stage) for tests.

A block: depthwise 7x7 convolution, LayerNorm, a 4x inverted MLP (exact GELU), a
learned per-channel scale (layer scale, 1e-6 at start) and stochastic depth on the
residual branch. The stem (4x4, stride 4) and the downsamplings (2x2, stride 2) are
patch embeddings. Features: the global mean, LayerNorm'd (the classifier's norm).
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from fashion_jax.models import backbones
from fashion_jax.models.conv import DepthwiseConv
from fashion_jax.models.layers import DropPathKeys, PatchEmbed, drop_path, drop_path_rates
from fashion_jax.models.layers import trunc_normal_002


@dataclasses.dataclass(frozen=True)
class Architecture:
  depths: tuple[int, ...]
  dims: tuple[int, ...]


ARCHITECTURES = {
    "convnext_test": Architecture((1, 1, 1, 1), (8, 16, 32, 64)),
    "convnext_tiny": Architecture((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": Architecture((3, 3, 27, 3), (96, 192, 384, 768)),
}
_EPSILON = 1e-6


def _layer_norm(channels, dtype, rngs):
  return nnx.LayerNorm(channels, epsilon=_EPSILON, dtype=dtype, rngs=rngs)


def _linear(d_in, d_out, dtype, rngs):
  return nnx.Linear(d_in, d_out, kernel_init=trunc_normal_002, dtype=dtype, rngs=rngs)


class Block(nnx.Module):

  def __init__(self, dim: int, drop_rate: float, *, conv_implementation: str, dtype,
               rngs: nnx.Rngs):
    self.dwconv = DepthwiseConv(dim, 7, use_bias=True, implementation=conv_implementation,
                                kernel_init=trunc_normal_002, dtype=dtype, rngs=rngs)
    self.norm = _layer_norm(dim, dtype, rngs)
    self.fc1 = _linear(dim, 4 * dim, dtype, rngs)
    self.fc2 = _linear(4 * dim, dim, dtype, rngs)
    self.layer_scale = nnx.Param(jnp.full((dim,), 1e-6, jnp.float32))
    self.drop_rate = drop_rate

  def __call__(self, x, key):
    y = self.norm(self.dwconv(x))
    y = self.fc2(jax.nn.gelu(self.fc1(y), approximate=False))
    y = y * self.layer_scale[...].astype(y.dtype)
    return x + drop_path(y, self.drop_rate, key)


class ConvNeXt(nnx.Module):
  """Backbone: images [B, H, W, 3] (normalised) -> pooled features [B, num_features]."""

  def __init__(self, name: str, *, drop_path_rate: float, conv_implementation: str = "xla",
               dtype, rngs: nnx.Rngs):
    arch = ARCHITECTURES[name]
    dims = arch.dims
    self.stem = PatchEmbed(3, dims[0], 4, dtype=dtype, rngs=rngs)
    self.stem_norm = _layer_norm(dims[0], dtype, rngs)
    self.downsample_norms = nnx.List([_layer_norm(d, dtype, rngs) for d in dims[:-1]])
    self.downsamples = nnx.List([PatchEmbed(d_in, d_out, 2, dtype=dtype, rngs=rngs)
                                 for d_in, d_out in zip(dims[:-1], dims[1:])])
    rates = iter(drop_path_rates(drop_path_rate, sum(arch.depths)))
    self.stages = nnx.List([
        nnx.List([Block(dim, next(rates), conv_implementation=conv_implementation, dtype=dtype,
                        rngs=rngs) for _ in range(depth)])
        for depth, dim in zip(arch.depths, dims)])
    self.head_norm = _layer_norm(dims[-1], dtype, rngs)
    self.drop_path_keys = DropPathKeys(rngs) if drop_path_rate > 0 else None
    self.num_features = dims[-1]

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    blocks = sum(len(stage) for stage in self.stages)
    keys = (iter(self.drop_path_keys.next(blocks))
            if train and self.drop_path_keys is not None else None)
    x = self.stem_norm(self.stem(x))
    for index, stage in enumerate(self.stages):
      if index > 0:
        x = self.downsamples[index - 1](self.downsample_norms[index - 1](x))
      for block in stage:
        x = block(x, next(keys) if keys is not None else None)
    return self.head_norm(jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(x.dtype)
                          ).astype(jnp.float32)


_LN = {"weight": "scale", "bias": "bias"}


def _torchvision_names(arch: Architecture) -> dict:
  names = {"features.0.0.weight": ("stem", "kernel"), "features.0.0.bias": ("stem", "bias")}
  names.update({f"features.0.1.{k}": ("stem_norm", v) for k, v in _LN.items()})
  for stage, depth in enumerate(arch.depths):
    if stage > 0:
      prefix = f"features.{2 * stage}"
      names.update({f"{prefix}.0.{k}": ("downsample_norms", stage - 1, v) for k, v in _LN.items()})
      names.update({f"{prefix}.1.{k}": ("downsamples", stage - 1, k.replace("weight", "kernel"))
                    for k in ("weight", "bias")})
    for i in range(depth):
      prefix, ours = f"features.{2 * stage + 1}.{i}", ("stages", stage, i)
      names[f"{prefix}.layer_scale"] = (*ours, "layer_scale")
      for torch_index, module in (("0", "dwconv"), ("3", "fc1"), ("5", "fc2")):
        names[f"{prefix}.block.{torch_index}.weight"] = (*ours, module, "kernel")
        names[f"{prefix}.block.{torch_index}.bias"] = (*ours, module, "bias")
      names.update({f"{prefix}.block.2.{k}": (*ours, "norm", v) for k, v in _LN.items()})
  names.update({f"classifier.0.{k}": ("head_norm", v) for k, v in _LN.items()})
  return names


def _timm_names(arch: Architecture) -> dict:
  names = {"stem.0.weight": ("stem", "kernel"), "stem.0.bias": ("stem", "bias")}
  names.update({f"stem.1.{k}": ("stem_norm", v) for k, v in _LN.items()})
  for stage, depth in enumerate(arch.depths):
    if stage > 0:
      prefix = f"stages.{stage}.downsample"
      names.update({f"{prefix}.0.{k}": ("downsample_norms", stage - 1, v) for k, v in _LN.items()})
      names.update({f"{prefix}.1.{k}": ("downsamples", stage - 1, k.replace("weight", "kernel"))
                    for k in ("weight", "bias")})
    for i in range(depth):
      prefix, ours = f"stages.{stage}.blocks.{i}", ("stages", stage, i)
      names[f"{prefix}.gamma"] = (*ours, "layer_scale")
      for module, theirs in (("dwconv", "conv_dw"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
        names[f"{prefix}.{theirs}.weight"] = (*ours, module, "kernel")
        names[f"{prefix}.{theirs}.bias"] = (*ours, module, "bias")
      names.update({f"{prefix}.norm.{k}": (*ours, "norm", v) for k, v in _LN.items()})
  names.update({f"head.norm.{k}": ("head_norm", v) for k, v in _LN.items()})
  return names


class ConvNeXtFamily(backbones.Family):
  """ConvNeXt-T/S (convnext_test for tests); option `drop_path_rate`: the stochastic
  depth of the last block, rising linearly from 0 (torchvision trains T with 0.1)."""

  names = tuple(ARCHITECTURES)
  total_stride = 32
  foreign_skipped = ("classifier.2.", "head.fc.")

  def build(self, name, model_config, *, image_size, dtype, conv_implementation, rngs):
    return ConvNeXt(name, drop_path_rate=model_config.get("drop_path_rate", 0.0),
                    conv_implementation=conv_implementation, dtype=dtype, rngs=rngs)

  def foreign_layouts(self, name):
    arch = ARCHITECTURES[name]
    return {"torchvision": _torchvision_names(arch), "timm": _timm_names(arch)}

  def convert_value(self, foreign_name, value):
    if foreign_name.endswith("layer_scale"):  # torchvision keeps it as [C, 1, 1].
      return value.reshape(-1)
    return super().convert_value(foreign_name, value)


FAMILY = ConvNeXtFamily()
