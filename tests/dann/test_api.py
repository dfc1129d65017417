"""DANN's pure API as another JAX codebase would use it: init, loss, update, predict."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from thesis_jax.dann import Hparams, gradient_reversal, init, loss, predict, update


def _config():
    return ml_collections.ConfigDict(
        {
            "architecture": "mnist",
            "num_classes": 10,
            "num_steps": 20,
            "momentum": 0.9,
            "gamma": 10.0,
            "learning_rate": {"mu0": 0.01, "alpha": 10.0, "beta": 0.75},
        }
    )


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = rng.normal(size=(n, 28, 28, 3)).astype(np.float32) + labels[:, None, None, None] / 5
    return {
        "source_image": images,
        "source_label": labels,
        "target_image": images[::-1] + 0.5,
        "target_label": labels[::-1],
    }


def test_a_caller_trains_with_its_own_loop():
    """The caller owns the loop: jit `update` once, feed batches, read the dict of `predict`."""
    state = init(jax.random.PRNGKey(0), _config())
    step = jax.jit(update)
    batch = _batch()
    first = None
    for _ in range(20):
        state, metrics = step(state, batch)
        first = float(metrics["label_loss"]) if first is None else first
    assert float(metrics["label_loss"]) < first
    out = predict(state.params, {"image": batch["source_image"]}, apply_fn=state.apply_fn)
    assert out["logits"].shape == (8, 10) and out["features"].shape == (8, 768)
    assert step._cache_size() == 1  # the static hparams live in the state: one compilation


def test_loss_and_predict_with_and_without_jit(variant):
    state = init(jax.random.PRNGKey(0), _config())
    loss_fn = variant(loss, static_argnames=("apply_fn", "hparams"))
    value, (metrics, model_state) = loss_fn(
        state.params,
        _batch(),
        jax.random.PRNGKey(1),
        apply_fn=state.apply_fn,
        hparams=state.hparams,
        lam=0.5,
    )
    assert value.shape == () and float(value) == pytest.approx(float(metrics["loss"]))
    assert model_state is None
    assert float(metrics["domain_loss"]) == pytest.approx(2 * np.log(2), rel=0.2)
    predict_fn = variant(predict, static_argnames=("apply_fn",))
    out = predict_fn(state.params, {"image": _batch()["target_image"]}, apply_fn=state.apply_fn)
    assert set(out) == {"logits", "features", "hidden"}


def test_the_loss_composes_with_an_optax_optimizer_of_the_caller():
    """`loss` is an ordinary differentiable function: any optimizer can follow its gradient."""
    state = init(jax.random.PRNGKey(0), _config())
    hparams = Hparams(mode="source_only")
    tx = optax.adam(1e-3)
    params, opt_state = state.params, tx.init(state.params)
    grad_fn = jax.jit(jax.grad(loss, has_aux=True), static_argnames=("apply_fn", "hparams"))
    values = []
    for i in range(10):
        grads, (metrics, _) = grad_fn(
            params, _batch(), jax.random.PRNGKey(i), apply_fn=state.apply_fn, hparams=hparams
        )
        updates, opt_state = tx.update(grads, opt_state)
        params = optax.apply_updates(params, updates)
        values.append(float(metrics["label_loss"]))
    assert values[-1] < values[0]


def test_the_gradient_reversal_layer_in_a_callers_model():
    f = lambda x: jnp.sum(gradient_reversal(x, 0.3) ** 2)
    np.testing.assert_allclose(jax.grad(f)(jnp.array([1.0, -2.0])), [-0.6, 1.2], rtol=1e-6)


def test_a_batch_without_the_source_images_is_refused():
    state = init(jax.random.PRNGKey(0), _config())
    batch = _batch()
    with pytest.raises(AssertionError):
        loss(
            state.params,
            {**batch, "source_image": batch["source_image"][0]},
            jax.random.PRNGKey(0),
            apply_fn=state.apply_fn,
            hparams=state.hparams,
        )
