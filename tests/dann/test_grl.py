"""Gradient reversal: identity forward, -lam * g backward, lam traced without recompiling."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.dann import gradient_reversal


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_forward_is_identity(transform):
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(transform(gradient_reversal)(x, 0.7), x)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
def test_gradient_is_minus_lambda_times_incoming(lam):
    x = jnp.array([0.5, -1.0, 2.0])
    weights = jnp.array([1.0, 2.0, -3.0])
    f = lambda x: jnp.sum(weights * jnp.sin(gradient_reversal(x, lam)))
    expected = -lam * weights * jnp.cos(x)
    np.testing.assert_allclose(jax.grad(f)(x), expected, rtol=1e-6)


def test_gradient_against_finite_differences_of_the_unreversed_function():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4,)))
    g = lambda x: jnp.sum(jnp.tanh(x) ** 2 * jnp.arange(1.0, 5.0))
    lam = 0.6
    eps = 1e-3
    numeric = np.array([(g(x.at[i].add(eps)) - g(x.at[i].add(-eps))) / (2 * eps) for i in range(4)])
    reversed_grad = jax.grad(lambda x: g(gradient_reversal(x, lam)))(x)
    np.testing.assert_allclose(reversed_grad, -lam * numeric, rtol=1e-3, atol=1e-4)


def test_layers_after_the_grl_get_the_plain_gradient():
    # d/dw of w * R(x) is R(x) = x: only gradients flowing *through* R into x are reversed.
    w, x = 1.5, 2.0
    dw, dx = jax.grad(lambda w, x: w * gradient_reversal(x, 0.4), argnums=(0, 1))(w, x)
    assert dw == pytest.approx(x)
    assert dx == pytest.approx(-0.4 * w)


def test_lambda_is_traced_one_compilation_for_all_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def grad_at(x, lam):
        return jax.grad(lambda x: jnp.sum(gradient_reversal(x, lam) ** 2))(x)

    x = jnp.ones(3)
    for lam in (0.0, 0.25, 0.5, 1.0):
        np.testing.assert_allclose(grad_at(x, jnp.float32(lam)), -lam * 2 * x)


def test_second_order_and_vmap():
    f = lambda x: jnp.sum(gradient_reversal(x, 0.5) ** 3)
    x = jnp.array([1.0, 2.0])
    batched = jax.vmap(jax.grad(lambda v: gradient_reversal(v, 0.5) ** 2))(x)
    np.testing.assert_allclose(batched, -0.5 * 2 * x)
    assert jax.grad(f)(x).shape == (2,)
