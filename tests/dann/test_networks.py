"""The fig. 5.3 networks' fast layer forms give `nn.max_pool`'s and `nn.Conv`'s numbers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.dann import networks


@pytest.mark.parametrize(
    "size, window, stride, padding",
    [
        (15, 3, 2, "SAME"),
        (16, 3, 2, "SAME"),
        (15, 3, 2, "VALID"),
        (15, 2, 2, "SAME"),
        (16, 3, 3, "VALID"),
    ],
)
def test_max_pool_equals_flax_in_value_and_in_the_gradient_after_a_relu(
    size, window, stride, padding
):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, 4)) - 0.3  # ties at 0

    def loss(pool):
        return lambda z: jnp.sum(jnp.sin(pool(jax.nn.relu(z))))

    ours = lambda z: networks.max_pool(z, window, stride, padding)
    flax = lambda z: nn.max_pool(z, (window, window), (stride, stride), padding=padding)
    np.testing.assert_array_equal(ours(x), flax(x))
    np.testing.assert_array_equal(jax.grad(loss(ours))(x), jax.grad(loss(flax))(x))


@pytest.mark.parametrize("architecture", ["mnist", "svhn", "gtsrb"])
def test_feature_extractors_equal_flax_convolutions(architecture):
    """Same parameter tree as with `nn.Conv` / `nn.max_pool`, same features and gradients."""
    features, _, _ = networks._thesis_components(architecture, 10, 100)

    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x):
            for width, kernel, pool, stride in features.layers:
                x = nn.relu(nn.Conv(width, (kernel, kernel), padding=features.padding)(x))
                if pool:
                    x = nn.max_pool(x, (pool, pool), (stride, stride), padding=features.padding)
            return x.reshape(x.shape[0], -1)

    x = jax.random.uniform(jax.random.PRNGKey(1), (2, *networks.INPUT_SHAPES[architecture]))
    params = features.init(jax.random.PRNGKey(2), x)
    assert jax.tree.structure(params) == jax.tree.structure(
        Reference().init(jax.random.PRNGKey(2), x)
    )

    def loss(module):
        return lambda p: jnp.sum(jnp.sin(module.apply(p, x)))

    np.testing.assert_allclose(
        features.apply(params, x), Reference().apply(params, x), rtol=1e-5, atol=1e-5
    )
    for a, b in zip(
        jax.tree.leaves(jax.grad(loss(features))(params)),
        jax.tree.leaves(jax.grad(loss(Reference()))(params)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
