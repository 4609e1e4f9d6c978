r"""Depthwise convolution, forward and both gradients, side by side: XLA's grouped
convolution, the elementwise taps of `models/conv.py` (`config.model.conv=matmul`, the
CPU default), and PyTorch channels_last, on ConvNeXt's and EfficientNet's layer shapes.

    python scripts/benchmark_depthwise.py [--batch=32] [--steps=5]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (label, height = width, channels, kernel, stride): ConvNeXt-T's stages at 96 px, and
# EfficientNet-B0's depthwise layers at 96 px.
SHAPES = [("ConvNeXt stage 1", 24, 96, 7, 1), ("ConvNeXt stage 2", 12, 192, 7, 1),
          ("ConvNeXt stage 3", 6, 384, 7, 1), ("ConvNeXt stage 4", 3, 768, 7, 1),
          ("EfficientNet", 48, 96, 3, 2), ("EfficientNet", 24, 144, 3, 1),
          ("EfficientNet", 24, 144, 5, 2), ("EfficientNet", 12, 240, 5, 1),
          ("EfficientNet", 6, 672, 5, 1)]


def _median_ms(fn, steps: int) -> float:
  fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from fashion_jax.models.conv import DepthwiseConv
  try:
    import torch
    torch.set_num_threads(os.cpu_count())
  except ImportError:
    torch = None
  print("| layer (H = W, channels, kernel, stride) | XLA ms | taps ms | taps speed-up "
        "| PyTorch CL ms |")
  print("|---|---|---|---|---|")
  for label, size, channels, kernel, stride in SHAPES:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(args.batch, size, size, channels)),
                    jnp.float32)
    ms = {}
    for implementation in ("xla", "matmul"):
      layer = DepthwiseConv(channels, kernel, stride, use_bias=False, dtype=jnp.float32,
                            implementation=implementation, rngs=nnx.Rngs(0),
                            kernel_init=nnx.initializers.normal(0.1))
      graphdef, params = nnx.split(layer)
      grads = jax.jit(jax.grad(lambda p, x: jnp.sum(nnx.merge(graphdef, p)(x) ** 2),
                               argnums=(0, 1)))
      ms[implementation] = _median_ms(lambda: jax.block_until_ready(grads(params, x)),
                                      args.steps)
    torch_ms = float("nan")
    if torch is not None:
      tx = torch.randn(args.batch, channels, size, size).contiguous(
          memory_format=torch.channels_last).requires_grad_()
      conv = torch.nn.Conv2d(channels, channels, kernel, stride, (kernel - 1) // 2,
                             groups=channels, bias=False).to(memory_format=torch.channels_last)

      def torch_step():
        tx.grad, conv.weight.grad = None, None
        (conv(tx) ** 2).sum().backward()

      torch_ms = _median_ms(torch_step, args.steps)
    print(f"| {label}: {size}, {channels}, {kernel}x{kernel}, {stride} | {ms['xla']:.1f} | "
          f"{ms['matmul']:.1f} | {ms['xla'] / ms['matmul']:.1f}x | {torch_ms:.1f} |", flush=True)


if __name__ == "__main__":
  from fashion_jax import allocator
  allocator.reexec_with_tcmalloc(sys.argv)
  main()
