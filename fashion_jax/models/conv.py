"""2-D convolution with a choice of implementation, for speed on CPU.

XLA:CPU runs a convolution's kernel gradient ("backward filter") several times slower
than oneDNN, worst for 1x1 convolutions, which are most of a ResNet-50. The 'matmul'
implementation is a `jax.custom_vjp` that computes the same function with matrix
products where those are faster:

  * 1x1 convolutions (forward, input and kernel gradients): one matrix product each;
  * k x k kernel gradients: one matrix product per tap (the shifted, strided input
    against the output gradient), summed over batch and space;
  * k x k forward and input gradient: XLA's own convolutions, which are fast.

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


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def matmul_conv(x, kernel, stride: int, pad: int):
  return _matmul_conv_forward(x, kernel, stride, pad)


def _matmul_conv_forward(x, kernel, stride, pad):
  if kernel.shape[:2] == (1, 1) and pad == 0:
    return _contract_channels(x[:, ::stride, ::stride, :], kernel[0, 0])
  return _xla_conv(x, kernel, stride, pad)


def _matmul_conv_fwd(x, kernel, stride, pad):
  y = _matmul_conv_forward(x, kernel, stride, pad)
  if kernel.shape[:2] == (1, 1) and pad == 0:
    strided = x[:, ::stride, ::stride, :]
    return y, (strided.reshape(-1, x.shape[-1]).T, kernel, x.shape)
  return y, (x, kernel, x.shape)


def _matmul_conv_bwd(stride, pad, residuals, g):
  x, kernel, x_shape = residuals
  kh, kw = kernel.shape[:2]
  if (kh, kw) == (1, 1) and pad == 0:
    x_t = x  # [C, N*H*W]
    g2 = g.reshape(-1, g.shape[-1])
    accumulate = jnp.promote_types(g.dtype, jnp.float32)
    d_kernel = jnp.matmul(x_t, g2, preferred_element_type=accumulate).astype(g.dtype)[None, None]
    d_strided = _contract_channels(g, kernel[0, 0].T)
    d_x = d_strided if stride == 1 else jnp.zeros(x_shape, g.dtype).at[
        :, ::stride, ::stride, :].set(d_strided)
    return d_x, d_kernel
  _, conv_vjp = jax.vjp(lambda x_, k_: _xla_conv(x_, k_, stride, pad), x, kernel)
  return conv_vjp(g)


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
