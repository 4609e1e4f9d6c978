"""2-D convolution with a choice of implementation, for speed on CPU.

XLA:CPU runs a convolution's kernel gradient ("backward filter") several times slower
than oneDNN, worst for 1x1 convolutions, which are most of a ResNet-50. The 'matmul'
implementation is a `jax.custom_vjp` that computes the same function with matrix
products where those are faster:

  * 1x1 convolutions (forward, input and kernel gradients): one matrix product each;
  * k x k convolutions with small outputs (<= 4x4 pixels): forward and both gradients
    as one matrix product per kernel tap (the shifted, strided input views);
  * other k x k convolutions: XLA's own, which is fast on larger maps.

Both implementations compute the same function with the same HWIO kernel, so the
parameter layout and checkpoints do not depend on the choice (`config.model.conv`).
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from fashion_jax.errors import ConfigError

_DIMS = ("NHWC", "HWIO", "NHWC")
IMPLEMENTATIONS = ("auto", "xla", "matmul")


def resolve_implementation(name: str) -> str:
  """'auto' is 'matmul' on CPU, where it is faster, and XLA's convolution elsewhere."""
  if name not in IMPLEMENTATIONS:
    raise ConfigError(f"config.model.conv={name!r} is not one of {IMPLEMENTATIONS}.")
  if name == "auto":
    return "matmul" if jax.default_backend() == "cpu" else "xla"
  return name


def _xla_conv(x, kernel, stride: int, pad: int):
  return lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                  dimension_numbers=_DIMS)


def _contract_channels(x, w):
  """[N, H, W, C] x [C, D] -> [N, H, W, D]."""
  return lax.dot_general(x, w, (((3,), (0,)), ((), ())))


def _sum_outer(x, g):
  """sum over N, H, W of x[..., c] * g[..., d] -> [C, D] (a kernel gradient tap)."""
  # Accumulate the long N*H*W sum in at least float32, also for bfloat16 inputs.
  accumulate = jnp.promote_types(x.dtype, jnp.float32)
  return lax.dot_general(x, g, (((0, 1, 2), (0, 1, 2)), ((), ())),
                         preferred_element_type=accumulate).astype(x.dtype)


# Outputs of at most this many pixels (4x4) go through per-tap products: on such
# small maps XLA:CPU rewrites k x k convolutions into forms that run on a slow
# generic path (190 ms for one 2x2x512 convolution of a ResNet-18 at 64 px).
_SMALL_OUTPUT_PIXELS = 16


def _output_size(size: int, kernel: int, stride: int, pad: int) -> int:
  return (size + 2 * pad - kernel) // stride + 1


def _route(x_shape, kernel_shape, stride, pad) -> str:
  kh, kw = kernel_shape[:2]
  if (kh, kw) == (1, 1) and pad == 0:
    return "pointwise"
  out_h = _output_size(x_shape[1], kh, stride, pad)
  out_w = _output_size(x_shape[2], kw, stride, pad)
  return "taps" if out_h * out_w <= _SMALL_OUTPUT_PIXELS else "xla"


def window_taps(x, size: int, stride: int, pad: int, pad_value=0.0) -> list[jax.Array]:
  """The size*size shifted, strided views of the padded input, one per window tap.

  Tap t = (i, j) holds x_padded[n, i + stride*a, j + stride*b, c] at output (a, b).
  """
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
  out_h, out_w = (_output_size(x.shape[d], size, stride, pad) for d in (1, 2))
  return [padded[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
          for i in range(size) for j in range(size)]


def place_tap(values, tap: int, size: int, stride: int, pad: int, x_shape) -> jax.Array:
  """Inverse of one `window_taps` view: `values` put back where that tap read, zeros
  elsewhere, cropped to the unpadded input. Summing over taps gives an input gradient."""
  i, j = divmod(tap, size)
  out_h, out_w = values.shape[1:3]
  _, height, width, _ = x_shape
  placed = lax.pad(values, jnp.zeros((), values.dtype), (
      (0, 0, 0), (i, height + 2 * pad - i - stride * (out_h - 1) - 1, stride - 1),
      (j, width + 2 * pad - j - stride * (out_w - 1) - 1, stride - 1), (0, 0, 0)))
  return placed[:, pad:pad + height, pad:pad + width, :]


def _taps_forward(x, kernel, stride, pad):
  size = kernel.shape[0]
  taps = window_taps(x, size, stride, pad)
  return sum(_contract_channels(tap, kernel[t // size, t % size]) for t, tap in enumerate(taps))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def matmul_conv(x, kernel, stride: int, pad: int):
  return _matmul_conv_forward(x, kernel, stride, pad)


def _matmul_conv_forward(x, kernel, stride, pad):
  route = _route(x.shape, kernel.shape, stride, pad)
  if route == "pointwise":
    return _contract_channels(x[:, ::stride, ::stride, :], kernel[0, 0])
  if route == "taps":
    return _taps_forward(x, kernel, stride, pad)
  return _xla_conv(x, kernel, stride, pad)


def _matmul_conv_fwd(x, kernel, stride, pad):
  y = _matmul_conv_forward(x, kernel, stride, pad)
  if _route(x.shape, kernel.shape, stride, pad) == "pointwise":
    # Keep the input already transposed to [C, N*H*W] for the kernel gradient. Left
    # to itself, XLA fuses that transpose with the input's producers (BatchNorm,
    # ReLU, residual adds of earlier blocks) and recomputes them: ~30% of a
    # ResNet-50 step went there.
    strided = x[:, ::stride, ::stride, :]
    return y, (strided.reshape(-1, x.shape[-1]).T, kernel, x.shape)
  return y, (x, kernel, x.shape)


def _matmul_conv_bwd(stride, pad, residuals, g):
  x, kernel, x_shape = residuals
  route = _route(x_shape, kernel.shape, stride, pad)
  accumulate = jnp.promote_types(g.dtype, jnp.float32)
  if route == "pointwise":
    g2 = g.reshape(-1, g.shape[-1])
    d_kernel = jnp.matmul(x, g2, preferred_element_type=accumulate).astype(g.dtype)[None, None]
    d_x = place_tap(_contract_channels(g, kernel[0, 0].T), 0, 1, stride, 0, x_shape)
    return d_x, d_kernel
  if route == "xla":
    _, conv_vjp = jax.vjp(lambda x_, k_: _xla_conv(x_, k_, stride, pad), x, kernel)
    return conv_vjp(g)
  size = kernel.shape[0]
  taps = window_taps(x, size, stride, pad)
  d_kernel = jnp.stack([_sum_outer(tap, g) for tap in taps]).reshape(kernel.shape)
  d_x = sum(place_tap(_contract_channels(g, kernel[t // size, t % size].T), t, size, stride,
                      pad, x_shape) for t in range(size * size))
  return d_x, d_kernel


matmul_conv.defvjp(_matmul_conv_fwd, _matmul_conv_bwd)

_IMPLS = {"xla": _xla_conv, "matmul": matmul_conv}


class Conv(nnx.Module):
  """Bias-free square convolution, symmetric padding (k - 1) // 2, HWIO kernel.

  The parameter is named `kernel` with nnx.Conv's layout, so checkpoints of either
  implementation load into the other.
  """

  def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, *,
               implementation: str, kernel_init, dtype, rngs: nnx.Rngs):
    self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel_size, kernel_size, in_ch, out_ch),
                                        jnp.float32))
    self.stride = stride
    self.pad = (kernel_size - 1) // 2
    self.implementation = implementation
    self.dtype = dtype

  def __call__(self, x):
    kernel = self.kernel[...].astype(self.dtype)
    return _IMPLS[self.implementation](x.astype(self.dtype), kernel, self.stride, self.pad)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow's 'SAME' padding of one side: the extra pixel, if any, goes after."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _taps_depthwise(x, kernel, stride: int):
  """Depthwise convolution of an already padded input: one multiply-add per kernel tap.

  XLA:CPU runs grouped convolutions, and above all their gradients, on a slow generic
  path (5-30x slower than these elementwise taps for ConvNeXt's and EfficientNet's
  shapes: docs/performance.md); the taps and their autodiff gradients (strided pads)
  fuse into a few loops."""
  size = kernel.shape[0]
  return sum(tap * kernel[t // size, t % size, 0]
             for t, tap in enumerate(window_taps(x, size, stride, 0)))


class DepthwiseConv(nnx.Module):
  """k x k convolution of each channel on its own (groups = channels), HWIO kernel
  [k, k, 1, C] as nnx.Conv's, optional bias; `tf_same` pads as TensorFlow's 'SAME',
  else symmetrically by (k - 1) // 2. 'matmul' computes it with elementwise taps."""

  def __init__(self, channels: int, kernel_size: int, stride: int = 1, *, use_bias: bool,
               tf_same: bool = False, implementation: str, kernel_init, dtype, rngs: nnx.Rngs):
    self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel_size, kernel_size, 1, channels),
                                        jnp.float32))
    self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32)) if use_bias else None
    self.stride = stride
    self.tf_same = tf_same
    self.implementation = implementation
    self.dtype = dtype

  def _padding(self, x):
    size = self.kernel.shape[0]
    if self.tf_same:
      return tuple(same_padding(x.shape[d], size, self.stride) for d in (1, 2))
    return ((size - 1) // 2,) * 2, ((size - 1) // 2,) * 2

  def __call__(self, x):
    x = x.astype(self.dtype)
    kernel = self.kernel[...].astype(self.dtype)
    padding = self._padding(x)
    if self.implementation == "matmul":
      padded = jnp.pad(x, ((0, 0), *padding, (0, 0)))
      y = _taps_depthwise(padded, kernel, self.stride)
    else:
      y = lax.conv_general_dilated(x, kernel, (self.stride,) * 2, padding,
                                   dimension_numbers=_DIMS, feature_group_count=x.shape[-1])
    return y if self.bias is None else y + self.bias[...].astype(self.dtype)
