"""The training state that every method's `init`, `loss` and `update` pass around.

A `flax.struct.dataclass`: the step counter, parameters, optimizer state, mutable model state
(e.g. BatchNorm statistics) and the PRNG key are pytree leaves (sharded, checkpointed); the
model's `apply`, the optax transformation and the method's hyperparameters (a frozen, hashable
dataclass) are static fields, so `update(state, batch)` needs nothing else and stays a pure
function.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
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

    def apply_gradients(
        self, grads: Any, *, learning_rate: jax.Array | float | None = None, **changes: Any
    ) -> TrainState:
        """One optimizer step; `changes` replaces other fields (model_state, rng).

        learning_rate: for a `tx` that returns a direction and no step size (`optax.scale_by_adam()`
        and the like): the parameters move by -learning_rate * direction. A traced value, so a
        schedule or PBT may change it without compiling the step again.
        """
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        if learning_rate is not None:
            updates = jax.tree.map(lambda u: -learning_rate * u, updates)
        params = optax.apply_updates(self.params, updates)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


def exponential_moving_average(average: Any, params: Any, *, decay: float, step: jax.Array) -> Any:
    """One step of a Polyak-Ruppert exponential average of parameters, with a warm-up.

    average <- d * average + (1 - d) * params, d = min(decay, (1 + step) / (10 + step)): early on
    the average follows the parameters closely (d = 0.1 at step 0), later it averages over about
    1 / (1 - decay) steps. Iterate averaging is what makes SGD converge on saddle-point problems
    (adversarial objectives) whose last iterate keeps circling the solution.
    """
    step = jnp.asarray(step, jnp.float32)
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda a, p: d * a + (1.0 - d) * p, average, params)


def max_norm_projection(
    params: Any, max_norm: float, *, layers: Collection[str] | None = None
) -> Any:
    """Rescales each unit's incoming weights to l2 norm <= max_norm (Srivastava et al., 2014).

    Applies to every `kernel` leaf (Dense: the norm over the input axis; Conv: over the window
    and input channels), or, with `layers`, only to kernels whose path names one of those
    modules. Biases and other leaves are untouched. Used after each SGD step as a projection.
    """

    def project(path: tuple, leaf: jax.Array) -> jax.Array:
        names = [getattr(entry, "key", None) for entry in path]
        if names[-1] != "kernel" or (layers is not None and not set(layers) & set(names)):
            return leaf
        norms = jnp.sqrt(jnp.sum(leaf**2, axis=tuple(range(leaf.ndim - 1)), keepdims=True))
        return leaf * jnp.minimum(1.0, max_norm / jnp.maximum(norms, 1e-12))

    return jax.tree_util.tree_map_with_path(project, params)
