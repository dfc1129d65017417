"""`core.conv_kernel`: the compiled forward pass and kernel gradient of a convolution equal XLA's,
and `core.layers` runs them where they apply, with the same values and gradients (first and
second order), under vmap and on a sharded batch without gathering it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from thesis_jax.core import conv_kernel, layers, native, parallel

pytestmark = pytest.mark.skipif(
    native.compiler() is None, reason="no C++ compiler: the kernels cannot be built"
)

# (batch, height, width, in channels, out channels, kernel, strides, padding)
CASES = [
    (3, 32, 32, 1, 16, (5, 5), (1, 1), ((2, 2), (2, 2))),  # SPIRAL's input layer
    (4, 32, 32, 16, 16, (4, 4), (2, 2), ((1, 1), (1, 1))),  # its first strided layer
    (2, 31, 29, 3, 32, (4, 4), (2, 2), ((1, 2), (0, 1))),  # odd sizes, asymmetric padding
    (2, 12, 13, 5, 48, (3, 3), (1, 1), ((0, 0), (0, 0))),  # three vectors of outputs, VALID
    (2, 10, 11, 2, 16, (3, 5), (3, 2), ((2, 0), (1, 3))),  # stride 3 x 2, rectangular kernel
    (2, 12, 12, 7, 16, (3, 3), (1, 1), ((-1, 1), (1, -1))),  # negative padding crops
    (37, 9, 9, 13, 16, (2, 2), (1, 1), ((0, 1), (0, 1))),  # a batch of a prime size
    (2, 16, 16, 24, 32, (3, 3), (1, 1), ((2, 2), (2, 2))),  # rows of 8 + 8 + 2 pixels
    (3, 16, 16, 16, 1, (3, 3), (1, 1), ((1, 1), (1, 1))),  # one output: SPIRAL's spatial logits
    (2, 11, 9, 5, 1, (3, 2), (2, 1), ((1, 0), (0, 1))),  # one output, runs of 10 inputs
]


def _operands(case, seed=0):
    batch, height, width, cin, cout, kernel, strides, padding = case
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(keys[0], (batch, height, width, cin))
    w = jax.random.normal(keys[1], (*kernel, cin, cout))
    out = jax.eval_shape(lambda x, w: _xla(x, w, strides, padding), x, w)
    grad = jax.random.normal(keys[2], out.shape)
    return x, w, grad


def _xla(x, w, strides, padding):
    return jax.lax.conv_general_dilated(
        x, w, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize("case", CASES)
def test_the_forward_pass_equals_xlas(case):
    x, w, _ = _operands(case)
    strides, padding = case[-2:]
    assert conv_kernel.supported(x, w)
    got = jax.jit(lambda x, w: conv_kernel.forward(x, w, strides, padding))(x, w)
    np.testing.assert_allclose(got, _xla(x, w, strides, padding), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_the_kernel_gradient_equals_xlas(case):
    x, w, grad = _operands(case)
    strides, padding = case[-2:]
    got = jax.jit(lambda x, g: conv_kernel.kernel_gradient(x, g, w.shape, strides, padding))
    expected = conv_kernel.reference(x, grad, w.shape, strides, padding)
    np.testing.assert_allclose(got(x, grad), expected, rtol=1e-5, atol=1e-3)


VALID = ((0, 0), (0, 0))


def test_what_the_kernels_do_not_support_is_said():
    x = jnp.zeros((2, 8, 8, 3))
    assert not conv_kernel.supported(x, jnp.zeros((3, 3, 3, 8)))  # 8 output channels
    assert conv_kernel.supported(x, jnp.zeros((3, 3, 3, 1)))
    assert not conv_kernel.supported(x.astype(jnp.float16), jnp.zeros((3, 3, 3, 16)))
    with native.disabled():
        assert not conv_kernel.supported(x, jnp.zeros((3, 3, 3, 16)))
    with pytest.raises(ValueError, match=r"give outputs \[N, 6, 6, 16\], not \(2, 5, 5, 16\)"):
        conv_kernel.kernel_gradient(x, jnp.zeros((2, 5, 5, 16)), (3, 3, 3, 16), (1, 1), VALID)


def _targets(compiled_text):
    return {
        target
        for target in (conv_kernel.FORWARD, conv_kernel.KERNEL_GRADIENT)
        if f'custom_call_target="{target}"' in compiled_text
    }


LAYERS = [  # (layer, input shape): each runs the kernels in every pass that applies
    (layers.Conv(16, (4, 4), (2, 2)), (4, 32, 32, 16)),
    (layers.Conv(32, (5, 5)), (3, 16, 16, 1)),
    (layers.Conv(16, (3, 3), padding="VALID"), (2, 12, 12, 16)),
    (layers.ConvTranspose(16, (4, 4), (2, 2)), (3, 8, 8, 16)),
    (layers.Conv(1, (3, 3)), (2, 16, 16, 16)),  # one output channel
]


@pytest.mark.parametrize("layer, shape", LAYERS)
def test_layers_give_xlas_values_and_gradients_through_the_kernels(layer, shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    params = layer.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(2), p.shape), params)

    def loss(params, x):
        return jnp.sum(jnp.sin(layer.apply(params, x)))

    def run():
        step = jax.jit(jax.value_and_grad(loss, (0, 1)))
        return step(params, x), _targets(step.lower(params, x).compile().as_text())

    (value, grads), targets = run()
    with native.disabled():
        (expected_value, expected_grads), xla_targets = run()
    assert targets and not xla_targets
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    for got, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_small_outputs_keep_xlas_convolutions():
    layer = layers.Conv(16, (3, 3))
    x = jnp.ones((2, 4, 4, 16))  # 16 output pixels
    params = layer.init(jax.random.PRNGKey(0), x)
    step = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, x))))
    assert not _targets(step.lower(params).compile().as_text())


@pytest.mark.parametrize("conv", ["fast", "strided"])
def test_second_order_gradients_equal_xlas(conv):
    """WGAN-GP's penalty differentiates an input gradient again: through the kernels' layers
    that is XLA's derivative of the same function."""
    strides = (1, 1) if conv == "fast" else (2, 2)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
    kernel = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (4, 4, 3, 16))

    def convolve(x, k):
        if conv == "fast":
            return layers.fast_conv(x, k, "SAME")
        return layers.strided_conv(x, k, strides, "SAME")

    def penalty(k):
        inner = jax.grad(lambda x: jnp.sum(jnp.tanh(convolve(x, k))))(x)
        return (jnp.linalg.norm(inner) - 1.0) ** 2

    got = jax.jit(jax.grad(penalty))(kernel)
    with native.disabled():
        expected = jax.jit(jax.grad(penalty))(kernel)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_vmap_over_images_and_over_kernels():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 12, 12, 2))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 2, 16))
    pads = ((1, 1), (1, 1))
    forward = lambda x, w: conv_kernel.forward(x, w, (1, 1), pads)
    by_images = jax.jit(jax.vmap(forward, (0, None)))(x, w[0])
    by_both = jax.jit(jax.vmap(forward))(x, w)  # a mapped kernel: one call per element
    for i in range(3):
        expected = _xla(x[i], w[0], (1, 1), pads), _xla(x[i], w[i], (1, 1), pads)
        np.testing.assert_allclose(by_images[i], expected[0], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(by_both[i], expected[1], rtol=1e-5, atol=1e-4)


def test_a_sharded_batch_is_convolved_where_it_lies():
    mesh = parallel.data_mesh()
    layer = layers.Conv(16, (4, 4), (2, 2))
    x = jax.random.normal(jax.random.PRNGKey(0), (4 * mesh.devices.size, 16, 16, 16))
    params = layer.init(jax.random.PRNGKey(1), x[:1])
    loss = lambda p, x: jnp.sum(layer.apply(p, x) ** 2)
    step = jax.jit(jax.grad(loss, (0, 1)))
    expected = step(params, x)
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec(parallel.DATA_AXIS)))
    compiled = step.lower(params, sharded).compile().as_text()
    assert "all-gather" not in compiled
    assert _targets(compiled) == {conv_kernel.FORWARD, conv_kernel.KERNEL_GRADIENT}
    got = step(params, sharded)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-3)
