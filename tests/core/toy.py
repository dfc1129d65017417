"""A tiny model trained with the core machinery, shared by the core tests."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from thesis_jax.core import TrainState


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(16)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(3)(x)


def init_state(seed: int = 0) -> TrainState:
    model = TinyNet()
    rng = jax.random.PRNGKey(seed)
    params = model.init(rng, jnp.zeros((1, 5)))["params"]
    return TrainState.create(
        params=params, tx=optax.sgd(0.1, momentum=0.9), apply_fn=model.apply, rng=rng
    )


def update(state: TrainState, batch):
    rng, dropout_rng = jax.random.split(state.rng)

    def loss_fn(params):
        logits = state.apply_fn(
            {"params": params}, batch["x"], train=True, rngs={"dropout": dropout_rng}
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads, rng=rng), {"loss": loss}


def batch_fn(step: int, batch_size: int = 16):
    rng = np.random.default_rng(step)
    x = rng.normal(size=(batch_size, 5)).astype(np.float32)
    return {"x": x, "y": (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1)}
