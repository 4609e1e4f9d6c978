"""Layers the ConvNeXt, ViT and EfficientNet families share: patch embedding,
stochastic depth and its randomness, and torch-layout initialisers."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# torch.nn.init.trunc_normal_(std=0.02), as ConvNeXt and ViT initialise their linears.
trunc_normal_002 = nnx.initializers.truncated_normal(0.02, lower=-2.0, upper=2.0)


def layer_norm(dim: int, dtype, rngs: nnx.Rngs, epsilon: float = 1e-6) -> nnx.LayerNorm:
  """LayerNorm as ConvNeXt and ViT use it (torch and timm: epsilon 1e-6)."""
  return nnx.LayerNorm(dim, epsilon=epsilon, dtype=dtype, rngs=rngs)


def linear(d_in: int, d_out: int, dtype, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(d_in, d_out, kernel_init=trunc_normal_002, dtype=dtype, rngs=rngs)


class RandomState(nnx.Variable):
  """Randomness a backbone draws in training: plain uint32 arrays (a key's data and a
  call counter), so Orbax checkpoints them and a resumed run draws the same masks."""


class DropPathKeys(nnx.Module):
  """One fresh key per training call (stochastic depth), from a seed drawn at build."""

  def __init__(self, rngs: nnx.Rngs):
    self.key_data = RandomState(jax.random.key_data(rngs.params()))
    self.calls = RandomState(jnp.zeros((), jnp.uint32))

  def next(self, count: int) -> jax.Array:
    """`count` keys for this call; the counter moves on."""
    key = jax.random.fold_in(jax.random.wrap_key_data(self.key_data[...]), self.calls[...])
    self.calls[...] = self.calls[...] + 1
    return jax.random.split(key, count)


def drop_path(x: jax.Array, rate: float, key) -> jax.Array:
  """Stochastic depth (Huang et al. 2016): zero a residual branch per sample with
  probability `rate`, scaling the kept ones by 1 / (1 - rate). `key` None: identity."""
  if key is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def drop_path_rates(rate: float, blocks: int) -> list[float]:
  """Linearly rising from 0 to `rate` over the blocks, as torchvision and timm do."""
  return [rate * i / max(blocks - 1, 1) for i in range(blocks)]


class PatchEmbed(nnx.Module):
  """A p x p convolution with stride p (ViT's patch embedding, ConvNeXt's stem and
  downsampling) as one matrix product over non-overlapping patches: the same function
  and HWIO kernel as the convolution, without XLA:CPU's slow strided-convolution
  gradient."""

  def __init__(self, in_ch: int, out_ch: int, patch: int, *, dtype, rngs: nnx.Rngs,
               kernel_init=trunc_normal_002):
    self.kernel = nnx.Param(kernel_init(rngs.params(), (patch, patch, in_ch, out_ch),
                                        jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_ch,), jnp.float32))
    self.patch = patch
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    p = self.patch
    x = x[:, :h // p * p, :w // p * p]  # As a VALID convolution: the remainder is dropped.
    patches = (x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
               .reshape(b, h // p, w // p, p * p * c))
    kernel = self.kernel[...].reshape(p * p * c, -1).astype(self.dtype)
    return patches.astype(self.dtype) @ kernel + self.bias[...].astype(self.dtype)


def torch_bicubic_resize(grid: np.ndarray, size: int) -> np.ndarray:
  """[H, W, C] -> [size, size, C] as torch's `interpolate(mode='bicubic',
  antialias=True, align_corners=False)` (timm's position-embedding resampling):
  Keys' cubic (a = -0.5), widened by the scale when shrinking, weights normalised."""
  for axis in (0, 1):
    grid = np.moveaxis(_resize_axis(np.moveaxis(grid, axis, 0), size), 0, axis)
  return grid


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
  x = np.abs(x)
  return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _resize_axis(values: np.ndarray, size: int) -> np.ndarray:
  old = values.shape[0]
  scale = old / size
  support = 2.0 * max(scale, 1.0)
  weights = np.zeros((size, old), np.float64)
  for i in range(size):
    center = scale * (i + 0.5)
    low = max(int(center - support + 0.5), 0)
    high = min(int(center + support + 0.5), old)
    taps = np.arange(low, high)
    w = _cubic((taps - center + 0.5) / max(scale, 1.0))
    weights[i, low:high] = w / w.sum()
  return np.tensordot(weights, values.astype(np.float64), axes=(1, 0)).astype(values.dtype)
