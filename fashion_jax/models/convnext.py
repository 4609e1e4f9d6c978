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
from fashion_jax.models.layers import layer_norm, linear, trunc_normal_002


@dataclasses.dataclass(frozen=True)
class Architecture:
  depths: tuple[int, ...]
  dims: tuple[int, ...]


ARCHITECTURES = {
    "convnext_test": Architecture((1, 1, 1, 1), (8, 16, 32, 64)),
    "convnext_tiny": Architecture((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": Architecture((3, 3, 27, 3), (96, 192, 384, 768)),
}


class Block(nnx.Module):

  def __init__(self, dim: int, drop_rate: float, *, conv_implementation: str, dtype,
               rngs: nnx.Rngs):
    self.dwconv = DepthwiseConv(dim, 7, use_bias=True, implementation=conv_implementation,
                                kernel_init=trunc_normal_002, dtype=dtype, rngs=rngs)
    self.norm = layer_norm(dim, dtype, rngs)
    self.fc1 = linear(dim, 4 * dim, dtype, rngs)
    self.fc2 = linear(4 * dim, dim, dtype, rngs)
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
    self.stem_norm = layer_norm(dims[0], dtype, rngs)
    self.downsample_norms = nnx.List([layer_norm(d, dtype, rngs) for d in dims[:-1]])
    self.downsamples = nnx.List([PatchEmbed(d_in, d_out, 2, dtype=dtype, rngs=rngs)
                                 for d_in, d_out in zip(dims[:-1], dims[1:])])
    rates = iter(drop_path_rates(drop_path_rate, sum(arch.depths)))
    self.stages = nnx.List([
        nnx.List([Block(dim, next(rates), conv_implementation=conv_implementation, dtype=dtype,
                        rngs=rngs) for _ in range(depth)])
        for depth, dim in zip(arch.depths, dims)])
    self.head_norm = layer_norm(dims[-1], dtype, rngs)
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
# How each layout names the parts: the stem, a stage's downsampling (LayerNorm, conv), a
# block and its layers, the final norm.
_LAYOUTS = {
    "torchvision": dict(stem="features.0.0", stem_norm="features.0.1",
                        downsample=lambda s: f"features.{2 * s}",
                        block=lambda s, i: f"features.{2 * s + 1}.{i}", layer_scale="layer_scale",
                        layers={"dwconv": "block.0", "norm": "block.2", "fc1": "block.3",
                                "fc2": "block.5"}, head_norm="classifier.0"),
    "timm": dict(stem="stem.0", stem_norm="stem.1",
                 downsample=lambda s: f"stages.{s}.downsample",
                 block=lambda s, i: f"stages.{s}.blocks.{i}", layer_scale="gamma",
                 layers={"dwconv": "conv_dw", "norm": "norm", "fc1": "mlp.fc1", "fc2": "mlp.fc2"},
                 head_norm="head.norm"),
}


def _foreign_names(arch: Architecture, layout: dict) -> dict:
  names = {f"{layout['stem']}.weight": ("stem", "kernel"), f"{layout['stem']}.bias": ("stem", "bias")}
  names.update({f"{layout['stem_norm']}.{k}": ("stem_norm", v) for k, v in _LN.items()})
  for stage, depth in enumerate(arch.depths):
    if stage > 0:
      prefix = layout["downsample"](stage)
      names.update({f"{prefix}.0.{k}": ("downsample_norms", stage - 1, v) for k, v in _LN.items()})
      names.update({f"{prefix}.1.{k}": ("downsamples", stage - 1, k.replace("weight", "kernel"))
                    for k in ("weight", "bias")})
    for i in range(depth):
      prefix, ours = layout["block"](stage, i), ("stages", stage, i)
      names[f"{prefix}.{layout['layer_scale']}"] = (*ours, "layer_scale")
      for module, theirs in layout["layers"].items():
        parameters = _LN if module == "norm" else {"weight": "kernel", "bias": "bias"}
        names.update({f"{prefix}.{theirs}.{k}": (*ours, module, v) for k, v in parameters.items()})
  names.update({f"{layout['head_norm']}.{k}": ("head_norm", v) for k, v in _LN.items()})
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
    return {layout_name: _foreign_names(arch, layout) for layout_name, layout in _LAYOUTS.items()}

  def convert_value(self, foreign_name, value):
    if foreign_name.endswith("layer_scale"):  # torchvision keeps it as [C, 1, 1].
      return value.reshape(-1)
    return super().convert_value(foreign_name, value)


FAMILY = ConvNeXtFamily()
