"""ResNet family (v1.5, as torchvision: stride on the 3x3 conv) in Flax NNX.

Padding is explicit and symmetric, as in torchvision: flax's 'SAME' pads stride-2
convs asymmetrically, which changes the function (pretrained weights would not match)
and hits a slower path in XLA:CPU.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from fashion_jax import checks
from fashion_jax.errors import ConfigError
from fashion_jax.models import backbones
from fashion_jax.models.conv import Conv, place_tap, window_taps

# He-normal over fan-out, as torchvision initialises its ResNets.
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass
class Layers:
  """Builds the convolutions and BatchNorms of one model with shared settings."""

  dtype: Any
  conv_implementation: str
  rngs: nnx.Rngs

  def conv(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> Conv:
    return Conv(in_ch, out_ch, kernel, stride, implementation=self.conv_implementation,
                kernel_init=_conv_init, dtype=self.dtype, rngs=self.rngs)

  def batch_norm(self, channels: int, zero_scale: bool = False) -> nnx.BatchNorm:
    # Zero-initialising the last BN of each residual branch makes every block start as
    # the identity, which trains deep ResNets from scratch more stably (Goyal et al. 2017).
    scale_init = nnx.initializers.zeros_init() if zero_scale else nnx.initializers.ones_init()
    # Two-pass variance: E[x^2] - E[x]^2 cancels badly in float32, which made the same
    # step differ by 6e-3 in the logits between 1 and 4 devices (2e-4 with two passes).
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                         use_fast_variance=False, scale_init=scale_init, rngs=self.rngs)


@jax.custom_vjp
def max_pool_3x3_stride_2(x: jax.Array) -> jax.Array:
  """3x3 max pool, stride 2, padding 1: `nnx.max_pool`'s values and gradient, faster.

  XLA:CPU's gradient of reduce_window (select-and-scatter) is slow; here the forward
  keeps which of the nine taps won (int8, the first on ties, as select-and-scatter
  does) and the backward routes the gradient with nine strided pads, all elementwise.
  """
  return _max_pool_fwd(x)[0]


def _max_pool_fwd(x):
  windows = window_taps(x, 3, 2, 1, pad_value=-jnp.inf)
  out, winner = windows[0], jnp.zeros(windows[0].shape, jnp.int8)
  for tap, window in enumerate(windows[1:], start=1):
    better = window > out
    out = jnp.where(better, window, out)
    winner = jnp.where(better, jnp.int8(tap), winner)
  return out, (winner, x.shape)


def _max_pool_bwd(residuals, g):
  winner, x_shape = residuals
  return (sum(place_tap(jnp.where(winner == tap, g, 0).astype(g.dtype), tap, 3, 2, 1, x_shape)
              for tap in range(9)),)


max_pool_3x3_stride_2.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool_taps(x: jax.Array) -> jax.Array:
  """The same pool in plain strided slices and selects, without the custom VJP. Not
  reduce_window: jax2onnx 0.17 turns it into an ONNX MaxPool with the NHWC window read
  as NCHW, and its nnx.max_pool patch drops explicit padding."""
  return _max_pool_fwd(x)[0]


class Shortcut(nnx.Module):
  """1x1 projection when a block changes resolution or width."""

  def __init__(self, in_ch, out_ch, stride, layers: Layers):
    self.conv = layers.conv(in_ch, out_ch, 1, stride)
    self.bn = layers.batch_norm(out_ch)

  def __call__(self, x, train: bool):
    return self.bn(self.conv(x), use_running_average=not train)


class BasicBlock(nnx.Module):
  expansion = 1

  def __init__(self, in_ch: int, width: int, stride: int, layers: Layers):
    out_ch = width * self.expansion
    self.conv1 = layers.conv(in_ch, width, 3, stride)
    self.bn1 = layers.batch_norm(width)
    self.conv2 = layers.conv(width, out_ch, 3, 1)
    self.bn2 = layers.batch_norm(out_ch, zero_scale=True)
    self.shortcut = (Shortcut(in_ch, out_ch, stride, layers)
                     if stride != 1 or in_ch != out_ch else None)

  def __call__(self, x, train: bool):
    y = nnx.relu(self.bn1(self.conv1(x), use_running_average=not train))
    y = self.bn2(self.conv2(y), use_running_average=not train)
    residual = x if self.shortcut is None else self.shortcut(x, train)
    return nnx.relu(y + residual)


class Bottleneck(nnx.Module):
  expansion = 4

  def __init__(self, in_ch: int, width: int, stride: int, layers: Layers):
    out_ch = width * self.expansion
    self.conv1 = layers.conv(in_ch, width, 1, 1)
    self.bn1 = layers.batch_norm(width)
    self.conv2 = layers.conv(width, width, 3, stride)
    self.bn2 = layers.batch_norm(width)
    self.conv3 = layers.conv(width, out_ch, 1, 1)
    self.bn3 = layers.batch_norm(out_ch, zero_scale=True)
    self.shortcut = (Shortcut(in_ch, out_ch, stride, layers)
                     if stride != 1 or in_ch != out_ch else None)

  def __call__(self, x, train: bool):
    y = nnx.relu(self.bn1(self.conv1(x), use_running_average=not train))
    y = nnx.relu(self.bn2(self.conv2(y), use_running_average=not train))
    y = self.bn3(self.conv3(y), use_running_average=not train)
    residual = x if self.shortcut is None else self.shortcut(x, train)
    return nnx.relu(y + residual)


@dataclasses.dataclass(frozen=True)
class Architecture:
  block: Callable
  stage_sizes: tuple[int, ...]


ARCHITECTURES = {
    "resnet_tiny": Architecture(BasicBlock, (1, 1, 1, 1)),
    "resnet18": Architecture(BasicBlock, (2, 2, 2, 2)),
    "resnet34": Architecture(BasicBlock, (3, 4, 6, 3)),
    "resnet50": Architecture(Bottleneck, (3, 4, 6, 3)),
    "resnet101": Architecture(Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nnx.Module):
  """Backbone: images [B, H, W, 3] (normalised) -> pooled features [B, num_features]."""

  # Stem conv and max pool halve the input, as do stages 2-4: the last stage sees
  # image_size / 32 pixels a side. A smaller input leaves it under one pixel (padding only).
  total_stride = 32

  def __init__(self, name: str, *, width: int = 64, dtype=jnp.float32,
               conv_implementation: str = "xla", rngs: nnx.Rngs):
    if name not in ARCHITECTURES:
      raise ConfigError(f"config.model.name={name!r} is not one of {sorted(ARCHITECTURES)}.")
    arch = ARCHITECTURES[name]
    layers = Layers(dtype, conv_implementation, rngs)
    self.stem_conv = layers.conv(3, width, 7, 2)
    self.stem_bn = layers.batch_norm(width)
    blocks = []
    in_ch = width
    for stage, size in enumerate(arch.stage_sizes):
      stage_width = width * 2**stage
      for i in range(size):
        stride = 2 if stage > 0 and i == 0 else 1
        blocks.append(arch.block(in_ch, stage_width, stride, layers))
        in_ch = stage_width * arch.block.expansion
    self.blocks = nnx.List(blocks)
    self.num_features = in_ch
    # The custom-VJP pool is a CPU training device; 'xla' (accelerators, exported models)
    # differentiates the same taps with autodiff.
    self.xla_max_pool = conv_implementation == "xla"

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nnx.relu(self.stem_bn(self.stem_conv(x), use_running_average=not train))
    if self.xla_max_pool:
      x = max_pool_taps(x)
    else:
      x = max_pool_3x3_stride_2(x)
    for block in self.blocks:
      x = block(x, train)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


# torchvision BatchNorm tensor -> our BatchNorm variable.
_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def _foreign_names(arch: Architecture) -> dict:
  """torchvision's names (timm's ResNets use the same) -> ResNet state paths."""
  bottleneck = arch.block.expansion == 4
  names = {"conv1.weight": ("stem_conv", "kernel")}
  names.update({f"bn1.{k}": ("stem_bn", v) for k, v in _BN.items()})
  index = 0
  for stage, size in enumerate(arch.stage_sizes):
    for i in range(size):
      prefix, ours = f"layer{stage + 1}.{i}", ("blocks", index)
      for n in range(1, 4 if bottleneck else 3):
        names[f"{prefix}.conv{n}.weight"] = (*ours, f"conv{n}", "kernel")
        names.update({f"{prefix}.bn{n}.{k}": (*ours, f"bn{n}", v) for k, v in _BN.items()})
      if stage > 0 and i == 0 or (stage == 0 and i == 0 and bottleneck):
        names[f"{prefix}.downsample.0.weight"] = (*ours, "shortcut", "conv", "kernel")
        names.update({f"{prefix}.downsample.1.{k}": (*ours, "shortcut", "bn", v)
                      for k, v in _BN.items()})
      index += 1
  return names


class ResNetFamily(backbones.Family):
  """ResNet-18/34/50/101 (and resnet_tiny for tests); option `width`: channels of the
  stem and first stage (64 for the standard networks and their ImageNet weights)."""

  names = tuple(ARCHITECTURES)
  options = {"width": 64}
  total_stride = ResNet.total_stride
  foreign_skipped = ("fc.",)

  def build(self, name, model_config, *, image_size, dtype, conv_implementation, rngs):
    return ResNet(name, width=model_config.get("width", 64), dtype=dtype,
                  conv_implementation=conv_implementation, rngs=rngs)

  def check_options(self, model_config):
    checks.number(model_config.get("width", 64), "model.width", 1, integer=True)

  def foreign_layouts(self, name):
    return {"torchvision/timm": _foreign_names(ARCHITECTURES[name])}


FAMILY = ResNetFamily()
