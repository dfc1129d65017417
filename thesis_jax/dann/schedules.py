"""Training schedules of DANN (thesis sec. 5.4.2), as functions of the training progress.

`p` is the training progress, going linearly from 0 to 1 over the run.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp


def progress(step: jnp.ndarray | int, num_steps: int) -> jnp.ndarray:
    """p = step / num_steps, clipped to [0, 1]."""
    return jnp.clip(jnp.asarray(step, jnp.float32) / max(num_steps, 1), 0.0, 1.0)


def lambda_schedule(p: jnp.ndarray | float, gamma: float = 10.0) -> jnp.ndarray:
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1: 0 at the start, towards 1 at the end."""
    return 2.0 / (1.0 + jnp.exp(-gamma * jnp.asarray(p, jnp.float32))) - 1.0


def learning_rate_schedule(
    num_steps: int, mu0: float = 0.01, alpha: float = 10.0, beta: float = 0.75
) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """mu_p = mu0 / (1 + alpha p)^beta as an optax schedule (a function of the step)."""

    def schedule(step: jnp.ndarray) -> jnp.ndarray:
        return mu0 / (1.0 + alpha * progress(step, num_steps)) ** beta

    return schedule
