"""The gradient reversal layer of DANN (thesis sec. 5.3.2).

Forward it is the identity; backward it multiplies the incoming gradient by `-lam`, so a loss
downstream of it (the domain classifier's) is minimised by the layers after it and maximised by
the layers before it: the pseudo-function R(x) = x, dR/dx = -lam I of eq. (5.3.11).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def gradient_reversal(x: jax.Array, lam: jax.Array | float) -> jax.Array:
    """Identity forward, `-lam * g` backward. `lam` may be traced: no recompilation per value."""
    return x


def _forward(x: jax.Array, lam: jax.Array | float) -> tuple[jax.Array, jax.Array]:
    return x, jnp.asarray(lam, dtype=jnp.result_type(x))


def _backward(lam: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    # R(x) = x, dR/dx = -lam I: eq. (5.3.11). No gradient flows to lam (a schedule, not a weight).
    return -lam * g, jnp.zeros_like(lam)


gradient_reversal.defvjp(_forward, _backward)
