"""EfficientNet family (Tan & Le 2019) in Flax NNX: B0 to B5 by compound scaling of
width and depth, as torchvision and timm define them; `tf_efficientnet_b0`..`b5` for
timm's TensorFlow-ported weights (TensorFlow 'SAME' padding, BatchNorm epsilon 1e-3);
efficientnet_test (narrow, one block a stage) for tests.

An MBConv block: 1x1 expansion (BatchNorm, SiLU), depthwise k x k (BatchNorm, SiLU),
squeeze-excitation (a quarter of the block's input channels), 1x1 projection
(BatchNorm); the residual, with stochastic depth, when the shape is kept. The input
resolution is `config.data.image_size`, not part of the name (B5 was trained at 456 px).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from fashion_jax.models import backbones
from fashion_jax.models.conv import Conv, DepthwiseConv
from fashion_jax.models.layers import DropPathKeys, drop_path

# torchvision's (and timm's) MBConv settings of B0: expansion, kernel, stride, input and
# output channels, repeats.
_B0_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
              (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
              (6, 3, 1, 192, 320, 1))


@dataclasses.dataclass(frozen=True)
class Architecture:
  width: float
  depth: float
  tf_same_padding: bool = False
  max_repeats: int = 0  # > 0: at most this many blocks a stage (the test variant).


_SCALING = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4),
            "b4": (1.4, 1.8), "b5": (1.6, 2.2)}
ARCHITECTURES = {
    "efficientnet_test": Architecture(0.25, 1.0, max_repeats=1),
    **{f"efficientnet_{b}": Architecture(w, d) for b, (w, d) in _SCALING.items()},
    **{f"tf_efficientnet_{b}": Architecture(w, d, True) for b, (w, d) in _SCALING.items()},
}
# He-normal over fan-out, as torchvision initialises EfficientNet's convolutions.
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def make_divisible(channels: float, divisor: int = 8) -> int:
  """Channels rounded to a multiple of 8, never down by more than 10% (torchvision/timm)."""
  rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * channels else rounded


@dataclasses.dataclass(frozen=True)
class BlockSetting:
  expand: int
  kernel: int
  stride: int
  in_ch: int
  out_ch: int


def block_settings(arch: Architecture) -> list[list[BlockSetting]]:
  """Per stage, its blocks' settings after width and depth scaling."""
  stages = []
  for expand, kernel, stride, in_ch, out_ch, repeats in _B0_STAGES:
    in_ch, out_ch = make_divisible(in_ch * arch.width), make_divisible(out_ch * arch.width)
    repeats = int(math.ceil(repeats * arch.depth))
    if arch.max_repeats:
      repeats = min(repeats, arch.max_repeats)
    stages.append([BlockSetting(expand, kernel, stride if i == 0 else 1,
                                in_ch if i == 0 else out_ch, out_ch) for i in range(repeats)])
  return stages


@dataclasses.dataclass
class Layers:
  dtype: object
  conv_implementation: str
  tf_same_padding: bool
  rngs: nnx.Rngs

  def pointwise(self, in_ch, out_ch):
    return Conv(in_ch, out_ch, 1, 1, implementation=self.conv_implementation,
                kernel_init=_conv_init, dtype=self.dtype, rngs=self.rngs)

  def stem(self, out_ch):
    padding = "SAME" if self.tf_same_padding else ((1, 1), (1, 1))
    return nnx.Conv(3, out_ch, (3, 3), (2, 2), padding=padding, use_bias=False,
                    kernel_init=_conv_init, dtype=self.dtype, rngs=self.rngs)

  def depthwise(self, channels, kernel, stride):
    return DepthwiseConv(channels, kernel, stride, use_bias=False, tf_same=self.tf_same_padding,
                         implementation=self.conv_implementation, kernel_init=_conv_init,
                         dtype=self.dtype, rngs=self.rngs)

  def batch_norm(self, channels):
    # Two-pass variance, as the ResNets (models/resnet.py) for the same reason.
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-3 if self.tf_same_padding else 1e-5,
                         use_fast_variance=False, dtype=self.dtype, rngs=self.rngs)


class SqueezeExcite(nnx.Module):
  """Channel gates from the global mean: 1x1 reduce (SiLU), 1x1 expand (sigmoid). The
  kernels keep the 1x1 convolutions' HWIO shape, as the weights to import have it."""

  def __init__(self, channels: int, squeezed: int, *, dtype, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
    self.reduce_kernel = nnx.Param(init(rngs.params(), (1, 1, channels, squeezed), jnp.float32))
    self.reduce_bias = nnx.Param(jnp.zeros((squeezed,), jnp.float32))
    self.expand_kernel = nnx.Param(init(rngs.params(), (1, 1, squeezed, channels), jnp.float32))
    self.expand_bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
    self.dtype = dtype

  def __call__(self, x):
    pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
    s = nnx.silu(pooled @ self.reduce_kernel[0, 0].astype(self.dtype)
                 + self.reduce_bias[...].astype(self.dtype))
    gate = jax.nn.sigmoid(s @ self.expand_kernel[0, 0].astype(self.dtype)
                          + self.expand_bias[...].astype(self.dtype))
    return x * gate[:, None, None, :]


class MBConv(nnx.Module):

  def __init__(self, setting: BlockSetting, drop_rate: float, layers: Layers):
    hidden = setting.in_ch * setting.expand
    if setting.expand != 1:
      self.expand_conv = layers.pointwise(setting.in_ch, hidden)
      self.expand_bn = layers.batch_norm(hidden)
    else:
      self.expand_conv = self.expand_bn = None
    self.dw_conv = layers.depthwise(hidden, setting.kernel, setting.stride)
    self.dw_bn = layers.batch_norm(hidden)
    self.se = SqueezeExcite(hidden, max(1, setting.in_ch // 4), dtype=layers.dtype,
                            rngs=layers.rngs)
    self.project_conv = layers.pointwise(hidden, setting.out_ch)
    self.project_bn = layers.batch_norm(setting.out_ch)
    self.residual = setting.stride == 1 and setting.in_ch == setting.out_ch
    self.drop_rate = drop_rate

  def __call__(self, x, train: bool, key):
    y = x
    if self.expand_conv is not None:
      y = nnx.silu(self.expand_bn(self.expand_conv(y), use_running_average=not train))
    y = nnx.silu(self.dw_bn(self.dw_conv(y), use_running_average=not train))
    y = self.project_bn(self.project_conv(self.se(y)), use_running_average=not train)
    return x + drop_path(y, self.drop_rate, key) if self.residual else y


class EfficientNet(nnx.Module):
  """Backbone: images [B, H, W, 3] (normalised) -> pooled features [B, num_features]."""

  def __init__(self, name: str, *, drop_path_rate: float, dtype, conv_implementation: str,
               rngs: nnx.Rngs):
    arch = ARCHITECTURES[name]
    layers = Layers(dtype, conv_implementation, arch.tf_same_padding, rngs)
    stages = block_settings(arch)
    stem = stages[0][0].in_ch
    self.stem_conv = layers.stem(stem)
    self.stem_bn = layers.batch_norm(stem)
    total = sum(len(stage) for stage in stages)
    # Stochastic depth rises with the block's index over all blocks (torchvision, timm).
    rates = iter(drop_path_rate * i / total for i in range(total))
    self.stages = nnx.List([nnx.List([MBConv(setting, next(rates), layers) for setting in stage])
                            for stage in stages])
    last = stages[-1][-1].out_ch
    self.num_features = 4 * last
    self.head_conv = layers.pointwise(last, self.num_features)
    self.head_bn = layers.batch_norm(self.num_features)
    self.drop_path_keys = DropPathKeys(rngs) if drop_path_rate > 0 else None

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    blocks = sum(len(stage) for stage in self.stages)
    keys = (iter(self.drop_path_keys.next(blocks))
            if train and self.drop_path_keys is not None else None)
    x = nnx.silu(self.stem_bn(self.stem_conv(x), use_running_average=not train))
    for stage in self.stages:
      for block in stage:
        x = block(x, train, next(keys) if keys is not None else None)
    x = nnx.silu(self.head_bn(self.head_conv(x), use_running_average=not train))
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def _bn(theirs: str, ours: tuple) -> dict:
  return {f"{theirs}.{k}": (*ours, v) for k, v in _BN.items()}


def _se(theirs: str, reduce: str, expand: str, ours: tuple) -> dict:
  return {f"{theirs}.{reduce}.weight": (*ours, "se", "reduce_kernel"),
          f"{theirs}.{reduce}.bias": (*ours, "se", "reduce_bias"),
          f"{theirs}.{expand}.weight": (*ours, "se", "expand_kernel"),
          f"{theirs}.{expand}.bias": (*ours, "se", "expand_bias")}


def _torchvision_names(stages) -> dict:
  names = {"features.0.0.weight": ("stem_conv", "kernel"), **_bn("features.0.1", ("stem_bn",))}
  for s, stage in enumerate(stages):
    for i, setting in enumerate(stage):
      prefix, ours = f"features.{s + 1}.{i}.block", ("stages", s, i)
      parts = ["expand"] if setting.expand != 1 else []
      parts += ["dw", "se", "project"]
      for index, part in enumerate(parts):
        if part == "se":
          names.update(_se(f"{prefix}.{index}", "fc1", "fc2", ours))
        else:
          names[f"{prefix}.{index}.0.weight"] = (*ours, f"{part}_conv", "kernel")
          names.update(_bn(f"{prefix}.{index}.1", (*ours, f"{part}_bn")))
  head = f"features.{len(stages) + 1}"
  names[f"{head}.0.weight"] = ("head_conv", "kernel")
  names.update(_bn(f"{head}.1", ("head_bn",)))
  return names


def _timm_names(stages) -> dict:
  names = {"conv_stem.weight": ("stem_conv", "kernel"), **_bn("bn1", ("stem_bn",))}
  for s, stage in enumerate(stages):
    for i, setting in enumerate(stage):
      prefix, ours = f"blocks.{s}.{i}", ("stages", s, i)
      names.update(_se(f"{prefix}.se", "conv_reduce", "conv_expand", ours))
      if setting.expand == 1:  # timm's DepthwiseSeparableConv
        convs = (("conv_dw", "bn1", "dw"), ("conv_pw", "bn2", "project"))
      else:
        convs = (("conv_pw", "bn1", "expand"), ("conv_dw", "bn2", "dw"),
                 ("conv_pwl", "bn3", "project"))
      for conv, bn, part in convs:
        names[f"{prefix}.{conv}.weight"] = (*ours, f"{part}_conv", "kernel")
        names.update(_bn(f"{prefix}.{bn}", (*ours, f"{part}_bn")))
  names["conv_head.weight"] = ("head_conv", "kernel")
  names.update(_bn("bn2", ("head_bn",)))
  return names


class EfficientNetFamily(backbones.Family):
  """EfficientNet-B0..B5 (efficientnet_test for tests; tf_efficientnet_* for timm's
  TensorFlow ports); option `drop_path_rate` (torchvision trains with 0.2)."""

  names = tuple(ARCHITECTURES)
  foreign_skipped = ("classifier.",)

  def build(self, name, model_config, *, image_size, dtype, conv_implementation, rngs):
    return EfficientNet(name, drop_path_rate=model_config.get("drop_path_rate", 0.0),
                        dtype=dtype, conv_implementation=conv_implementation, rngs=rngs)

  def foreign_layouts(self, name):
    stages = block_settings(ARCHITECTURES[name])
    if ARCHITECTURES[name].tf_same_padding:  # Only timm ports TensorFlow's weights.
      return {"timm": _timm_names(stages)}
    return {"torchvision": _torchvision_names(stages), "timm": _timm_names(stages)}


FAMILY = EfficientNetFamily()
