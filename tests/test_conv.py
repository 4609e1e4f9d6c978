"""The CPU-fast convolution computes exactly what XLA's convolution computes, gradients included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fashion_jax.errors import ConfigError
from fashion_jax.models import conv
from fashion_jax.models.resnet import ResNet, max_pool_3x3_stride_2

# Every (kernel, stride) a ResNet uses: 7x7/2 stem, 3x3/1 and 3x3/2 bodies, 1x1/1
# bottlenecks and 1x1/2 projections; odd and even sizes exercise the stride edges.
# Sizes up to 8 (outputs of at most 4x4) take the per-tap route, larger ones XLA's.
CASES = [(7, 2, 16), (7, 2, 7), (3, 1, 9), (3, 2, 9), (3, 2, 8), (3, 1, 4), (3, 1, 2),
         (3, 2, 5), (3, 2, 3), (1, 1, 8), (1, 2, 8), (1, 2, 7)]


@pytest.mark.parametrize("kernel, stride, size", CASES)
def test_matmul_conv_matches_xla_in_float64(kernel, stride, size):
  with jax.enable_x64(True):
    rng = np.random.default_rng(kernel * 10 + stride)
    x = jnp.asarray(rng.normal(size=(2, size, size, 5)))
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 5, 6)))
    pad = (kernel - 1) // 2
    ref_y, ref_vjp = jax.vjp(lambda a, b: conv._xla_conv(a, b, stride, pad), x, w)
    y, vjp = jax.vjp(lambda a, b: conv.matmul_conv(a, b, stride, pad), x, w)
    g = jnp.asarray(rng.normal(size=ref_y.shape))
    assert y.dtype == jnp.float64
    for got, want in zip((y, *vjp(g)), (ref_y, *ref_vjp(g))):
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_resnet_gradients_match_between_implementations():
  """A whole ResNet-50 (float64, small input): same outputs and parameter gradients."""
  with jax.enable_x64(True):
    images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)))
    grads = {}
    for impl in ("xla", "matmul"):
      model = ResNet("resnet50", dtype=jnp.float64, conv_implementation=impl, rngs=nnx.Rngs(0))
      graphdef, state = nnx.split(model)
      # Variables are created in float32; compare in float64 throughout.
      state = jax.tree.map(lambda v: v.astype(jnp.float64), state)

      @jax.jit
      def value_and_grad(state):
        model = nnx.merge(graphdef, state)
        return nnx.value_and_grad(
            lambda m: jnp.sum(jnp.sin(m(images, train=True))))(model)

      grads[impl] = value_and_grad(state)
    np.testing.assert_allclose(grads["matmul"][0], grads["xla"][0], rtol=1e-10)
    for got, want in zip(jax.tree.leaves(grads["matmul"][1]), jax.tree.leaves(grads["xla"][1])):
      np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_implementations_share_one_parameter_layout():
  xla = ResNet("resnet_tiny", width=8, conv_implementation="xla", rngs=nnx.Rngs(0))
  fast = ResNet("resnet_tiny", width=8, conv_implementation="matmul", rngs=nnx.Rngs(0))
  a, b = nnx.state(xla, nnx.Param), nnx.state(fast, nnx.Param)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("x_shape, kernel_shape, stride, pad, route", [
    ((2, 8, 8, 3), (1, 1, 3, 4), 2, 0, "pointwise"),
    ((2, 8, 8, 3), (3, 3, 3, 4), 2, 1, "taps"),  # 4x4 output
    ((2, 9, 9, 3), (3, 3, 3, 4), 1, 1, "xla"),  # 9x9 output
    ((2, 7, 7, 3), (7, 7, 3, 4), 2, 3, "taps"),  # 4x4 output
])
def test_routes(x_shape, kernel_shape, stride, pad, route):
  assert conv._route(x_shape, kernel_shape, stride, pad) == route


def test_auto_picks_matmul_on_cpu_and_rejects_unknown_names():
  assert conv.resolve_implementation("auto") == ("matmul" if jax.default_backend() == "cpu"
                                                 else "xla")
  with pytest.raises(ConfigError, match="config.model.conv='fast'"):
    conv.resolve_implementation("fast")


@pytest.mark.parametrize("height, width, ties", [(8, 8, False), (9, 7, False), (48, 47, False),
                                                 (9, 9, True)])
def test_max_pool_matches_reduce_window(height, width, ties):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, height, width, 3)), jnp.float32)
  if ties:  # After a ReLU, many window entries are equal (zero).
    x = jnp.maximum(jnp.round(x), 0.0)
  want = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  np.testing.assert_array_equal(max_pool_3x3_stride_2(x), want)
  # The gradient goes where select-and-scatter sends it, ties included.
  g_want = jax.grad(lambda a: jnp.sum(jnp.sin(nnx.max_pool(
      a, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))))))(x)
  g_got = jax.grad(lambda a: jnp.sum(jnp.sin(max_pool_3x3_stride_2(a))))(x)
  np.testing.assert_array_equal(g_got, g_want)


@pytest.mark.parametrize("size,kernel,stride,tf_same", [(9, 3, 1, False), (9, 5, 2, False),
                                                        (8, 3, 2, True), (9, 5, 2, True),
                                                        (6, 7, 1, False)])
def test_depthwise_taps_equal_xlas_grouped_convolution_and_its_gradients(size, kernel, stride,
                                                                         tf_same):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, size, size, 4)), jnp.float32)
  outputs = {}
  for implementation in ("xla", "matmul"):
    layer = conv.DepthwiseConv(4, kernel, stride, use_bias=True, tf_same=tf_same,
                         implementation=implementation, rngs=nnx.Rngs(0), dtype=jnp.float32,
                         kernel_init=nnx.initializers.normal(1.0))
    graphdef, params = nnx.split(layer)
    loss = lambda p, x: jnp.sum(jnp.sin(nnx.merge(graphdef, p)(x)))  # noqa: E731
    outputs[implementation] = (nnx.merge(graphdef, params)(x),
                               jax.grad(loss, argnums=(0, 1))(params, x))
  for a, b in zip(jax.tree.leaves(outputs["xla"]), jax.tree.leaves(outputs["matmul"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  if tf_same:  # TensorFlow's 'SAME' as flax spells it.
    reference = nnx.Conv(4, 4, (kernel, kernel), (stride, stride), padding="SAME",
                         feature_group_count=4, rngs=nnx.Rngs(0),
                         kernel_init=nnx.initializers.normal(1.0))
    np.testing.assert_allclose(outputs["xla"][0], reference(x) + 0.0, rtol=1e-4, atol=1e-4)
