"""`core.layers`: strided and transposed convolutions in stride-1 form equal Flax's, values and
gradients (the custom_vjp of `strided_conv` included)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from thesis_jax.core import layers

CONVS = [  # (size, channels, features, kernel, stride, padding)
    (16, 3, 5, 4, 2, "SAME"),  # SPIRAL's encoder
    (33, 3, 4, 4, 2, "SAME"),
    (15, 2, 4, 3, 2, "SAME"),
    (15, 3, 4, 5, 3, "VALID"),
    (16, 3, 4, 4, 2, "VALID"),
    (8, 3, 4, 3, 1, "SAME"),
    (8, 5, 6, 5, 1, "VALID"),  # DANN's GTSRB conv3 shape: a 4x4 output, 25 taps (small output)
    (4, 3, 2, 5, 1, "SAME"),  # 16 pixels, 25 taps, padded
]
TRANSPOSED = [(4, 8, 8, 4, 2), (4, 2, 3, 3, 2), (5, 3, 4, 5, 2), (6, 2, 3, 3, 3), (3, 2, 3, 1, 2)]


def _pair(flax_layer, ours, x):
    params = flax_layer.init(jax.random.PRNGKey(0), x)
    params = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
    return params, flax_layer.apply, ours.apply


@pytest.mark.parametrize("size, channels, features, kernel, stride, padding", CONVS)
def test_conv_matches_flax_in_value_and_gradient(size, channels, features, kernel, stride, padding):
    x = jax.random.normal(jax.random.PRNGKey(2), (2, size, size, channels))
    params, theirs, ours = _pair(
        nn.Conv(features, (kernel, kernel), (stride, stride), padding=padding),
        layers.Conv(features, (kernel, kernel), (stride, stride), padding=padding),
        x,
    )
    np.testing.assert_allclose(ours(params, x), theirs(params, x), atol=1e-4, rtol=1e-5)

    def loss(apply):
        return lambda p, x: jnp.sum(jnp.sin(apply(p, x)))

    for mine, reference in zip(
        jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x),
        jax.jit(jax.grad(loss(theirs), argnums=(0, 1)))(params, x),
        strict=True,
    ):
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(reference), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("size, channels, features, kernel, stride", TRANSPOSED)
def test_transposed_conv_matches_flax_in_value_and_gradient(
    size, channels, features, kernel, stride
):
    x = jax.random.normal(jax.random.PRNGKey(2), (2, size, size, channels))
    params, theirs, ours = _pair(
        nn.ConvTranspose(features, (kernel, kernel), (stride, stride)),
        layers.ConvTranspose(features, (kernel, kernel), (stride, stride)),
        x,
    )
    np.testing.assert_allclose(ours(params, x), theirs(params, x), atol=1e-4, rtol=1e-5)
    grads = [
        jax.jit(jax.grad(lambda p, x, f=f: jnp.sum(jnp.sin(f(p, x))), argnums=(0, 1)))(params, x)
        for f in (ours, theirs)
    ]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("order", [1, 2])
def test_strided_conv_custom_vjp_passes_numerical_gradient_checks(order):
    """Order 2: WGAN-GP's penalty differentiates the critic's input gradient again."""
    with jax.enable_x64():
        x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 3), jnp.float64)
        kernel = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 3, 2), jnp.float64)
        check_grads(
            lambda x, k: layers.strided_conv(x, k, (2, 2), "SAME"),
            (x, kernel),
            order=order,
            modes=["rev"],
        )


def test_a_gradient_penalty_through_strided_conv_equals_xlas():
    with jax.enable_x64():
        x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3), jnp.float64)
        kernel = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 3, 2), jnp.float64)

        def penalty(conv, kernel):  # (||d/dx sum(tanh(conv(x)))|| - 1)^2, as in WGAN-GP
            inner = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, kernel))))(x)
            return (jnp.linalg.norm(inner) - 1.0) ** 2

        ours = jax.grad(penalty, 1)(lambda x, k: layers.strided_conv(x, k, (2, 2), "SAME"), kernel)
        xlas = jax.grad(penalty, 1)(
            lambda x, k: jax.lax.conv_general_dilated(
                x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            ),
            kernel,
        )
        np.testing.assert_allclose(ours, xlas, rtol=1e-10, atol=1e-12)


def test_the_input_gradient_written_out_equals_the_transpose_of_the_convolution():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 3))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 3, 4))
    grad = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 5, 4))
    (expected,) = jax.linear_transpose(lambda x: layers.conv(x, kernel, "VALID"), x)(grad)
    np.testing.assert_allclose(
        layers.valid_conv_input_gradient(grad, kernel), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("padding", ["VALID", "SAME", ((1, 2), (0, 3))])
def test_small_output_conv_custom_vjp_passes_numerical_gradient_checks(padding):
    with jax.enable_x64():
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 6, 3), jnp.float64)
        kernel = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 3, 2), jnp.float64)
        check_grads(
            lambda x, k: layers.small_output_conv(x, k, padding),
            (x, kernel),
            order=1,
            modes=["rev"],
        )
        np.testing.assert_allclose(
            layers.small_output_conv(x, kernel, padding), layers.conv(x, kernel, padding)
        )


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_fast_conv_custom_vjp_passes_numerical_gradient_checks(padding):
    with jax.enable_x64():
        x = jax.random.normal(jax.random.PRNGKey(0), (5, 7, 6, 3), jnp.float64)
        kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 3, 2), jnp.float64)
        check_grads(
            lambda x, k: layers.fast_conv(x, k, padding, 2),  # slices of 2, 2 and 1 images
            (x, kernel),
            order=1,
            modes=["rev"],
        )


@pytest.mark.parametrize("batch, chunk", [(128, 8), (37, 8), (300, 8), (4, 8)])
def test_kernel_gradient_over_batch_slices_equals_the_whole_batchs(batch, chunk):
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, 9, 8, 3))
    grad = jax.random.normal(jax.random.PRNGKey(1), (batch, 5, 4, 4))
    whole = layers.kernel_gradient(x, grad, (5, 5, 3, 4), "VALID")
    _, vjp = jax.vjp(lambda k: layers.conv(x, k, "VALID"), jnp.zeros((5, 5, 3, 4)))
    np.testing.assert_allclose(whole, vjp(grad)[0], rtol=1e-5, atol=1e-4)
    # What one CPU device runs (the tests' 8 simulated devices take the whole batch).
    sliced = jax.jit(lambda x, g: layers.sliced_kernel_gradient(x, g, (5, 5, 3, 4), "VALID", chunk))
    np.testing.assert_allclose(sliced(x, grad), whole, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("size, kernel", [(12, 3), (8, 5)])  # a fast_conv, a small output
def test_a_pool_before_the_bias_gives_the_pool_of_the_biased_convolution_exactly(size, kernel):
    """`Conv(x, pool=max_pool)` adds the bias to the pooled map: the same numbers (rounding is
    monotonic), and the same gradients up to the order of the bias gradient's sum."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, 5))
    layer = layers.Conv(16, (kernel, kernel), padding="VALID")
    params = layer.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(2), p.shape), params)
    pool = lambda y: nn.max_pool(y, (2, 2), (2, 2))
    before = lambda p: layer.apply(p, x, pool=pool)
    after = lambda p: pool(layer.apply(p, x))
    np.testing.assert_array_equal(before(params), after(params))
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
    for a, b in zip(
        jax.tree.leaves(jax.grad(loss(before))(params)),
        jax.tree.leaves(jax.grad(loss(after))(params)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_space_to_depth_round_trips_and_bad_padding_is_refused():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    np.testing.assert_array_equal(
        layers.depth_to_space(layers.space_to_depth(x, (2, 3)), (2, 3)), x
    )
    with pytest.raises(ValueError, match="'SAME' or 'VALID'"):
        layers.space_to_depth_conv(x, jnp.ones((2, 2, 3, 1)), (2, 2), "FULL")
