"""The training state that every method's `init`, `loss` and `update` pass around.

A `flax.struct.dataclass`: the step counter, parameters, optimizer state, mutable model state
(e.g. BatchNorm statistics) and the PRNG key are pytree leaves (sharded, checkpointed); the
model's `apply`, the optax transformation and the method's hyperparameters (a frozen, hashable
dataclass) are static fields, so `update(state, batch)` needs nothing else and stays a pure
function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: optax.OptState
    model_state: Any
    rng: jax.Array
    apply_fn: Callable[..., Any] = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    hparams: Any = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(
        cls,
        *,
        params: Any,
        tx: optax.GradientTransformation,
        apply_fn: Callable[..., Any],
        rng: jax.Array,
        model_state: Any = None,
        hparams: Any = None,
    ) -> TrainState:
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state={} if model_state is None else model_state,
            rng=rng,
            apply_fn=apply_fn,
            tx=tx,
            hparams=hparams,
        )

    def apply_gradients(self, grads: Any, **changes: Any) -> TrainState:
        """One optimizer step; `changes` replaces other fields (model_state, rng)."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)
