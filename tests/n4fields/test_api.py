"""The four pure functions every method exposes: init, loss, update, predict (sec. 3.3.2-3.3.3).

The first test is what another JAX codebase writes: its own patches and targets, its own loop.
The others run the functions jitted and eagerly (the shared `variant` fixture) against answers
computed another way.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tests.n4fields import tiny
from thesis_jax import n4fields

CONFIG = {
    "model": {"conv_features": (8, 16, 16), "fc_features": (256, 256), "init_std": 0.1},
    "channel_mean": tiny.CHANNEL_MEAN[:3],
    "learning_rate": 0.03,
}


def _config(head: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({**CONFIG, "head": head})


def _batch(head: str, count: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Random patches and targets of the head's size: a bright centre pixel is a boundary."""
    rng = np.random.default_rng(seed)
    image = rng.random((count, 34, 34, 3)).astype(np.float32)
    size = tiny.tiny_arch(head).outputs
    if head == "code":
        target = rng.normal(size=(count, size))
    else:
        target = np.repeat(image[:, 16:17, 16, 0] > 0.5, size, axis=1)
    return {"image": image, "target": target.astype(np.float32)}


@pytest.fixture(scope="module", params=["code", "patch"])
def state_and_batch(request):
    head = request.param
    return n4fields.init(tiny.prng_key(0), _config(head)), _batch(head)


def test_another_codebase_trains_with_the_four_functions():
    from thesis_jax.n4fields import init, loss, predict, update

    # its own data: patches of random density, the 16-d target says how dense
    rng = np.random.default_rng(0)
    density = rng.uniform(0.2, 0.8, size=(32, 1))
    image = (rng.random((32, 34, 34, 3)) < density[:, :, None, None]).astype(np.float32)
    batch = {"image": image, "target": np.repeat(4 * density - 2, 16, axis=1).astype(np.float32)}

    state = init(tiny.prng_key(0), _config("code"))  # any key; "rbg" compiles fast on CPU
    objective = jax.jit(
        lambda s: loss(s.params, batch, s.rng, apply_fn=s.apply_fn, hparams=s.hparams, train=False)[
            0
        ]
    )
    before = float(objective(state))
    step = jax.jit(update)
    for _ in range(20):
        state, metrics = step(state, batch)
    assert int(state.step) == 20 and np.isfinite(float(metrics["loss"]))
    assert float(objective(state)) < 0.9 * before
    codes = predict(state.params, {"image": batch["image"][:4]}, apply_fn=state.apply_fn)
    assert codes["output"].shape == (4, n4fields.CODE_DIM)


def test_loss_is_the_head_objective(variant, state_and_batch):
    state, batch = state_and_batch
    head = state.hparams.head
    objective = variant(
        functools.partial(n4fields.loss, apply_fn=state.apply_fn, hparams=state.hparams),
        static_argnames="train",
    )
    value, (metrics, model_state) = objective(state.params, batch, state.rng, train=False)
    outputs = np.asarray(state.apply_fn({"params": state.params}, batch["image"]), np.float64)
    target = batch["target"]
    if head == "code":  # ||CNN(P) - PCA(A(P))||^2, sec. 3.3.2
        expected = np.mean(np.sum((outputs - target) ** 2, -1))
        np.testing.assert_allclose(metrics["rms_error"], np.sqrt(expected / 16), rtol=1e-5)
    else:  # sigmoid cross-entropy summed over the 256 pixels, sec. 3.4
        p = 1 / (1 + np.exp(-outputs))
        expected = -np.mean(np.sum(target * np.log(p) + (1 - target) * np.log(1 - p), -1))
        hits = (outputs > 0) == (target > 0.5)
        np.testing.assert_allclose(metrics["pixel_accuracy"], hits.mean(), rtol=1e-6)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    assert metrics["loss"] == value and model_state is None
    # with dropout (training): another value, the same one for the same key
    dropped, _ = objective(state.params, batch, state.rng)
    again, _ = objective(state.params, batch, state.rng)
    assert float(dropped) != pytest.approx(float(value), rel=1e-3)
    assert float(dropped) == float(again)


def test_loss_checks_its_inputs(variant, state_and_batch):
    state, batch = state_and_batch
    objective = variant(
        functools.partial(n4fields.loss, apply_fn=state.apply_fn, hparams=state.hparams)
    )
    bad_batches = [
        {**batch, "image": batch["image"][0]},  # rank 3
        {**batch, "image": batch["image"][..., :2]},  # 2 channels for an RGB network
        {**batch, "image": (255 * batch["image"]).astype(np.uint8)},  # not float
        {**batch, "target": batch["target"][:, :3]},  # not the head's size
        {**batch, "target": batch["target"][:-1]},  # one target short
    ]
    for bad in bad_batches:
        with pytest.raises(AssertionError):
            objective(state.params, bad, state.rng)


@pytest.fixture(scope="module")
def sgd_step(state_and_batch):
    """One step by hand: the gradient at the step's dropout key, lr 0.03, the first momentum
    step (the gradient itself), then conv1's filters rescaled to norm <= 1 (sec. 3.3.3)."""
    state, batch = state_and_batch
    rng, step_rng = jax.random.split(state.rng)
    grads, (metrics, _) = jax.jit(
        jax.grad(n4fields.loss, has_aux=True), static_argnames=("apply_fn", "hparams")
    )(state.params, batch, step_rng, apply_fn=state.apply_fn, hparams=state.hparams)
    moved = jax.tree.map(lambda p, g: p - 0.03 * g, state.params, grads)
    expected = {**moved, "conv1": dict(moved["conv1"])}
    kernel = np.asarray(moved["conv1"]["kernel"])
    norms = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), axis=0)
    expected["conv1"]["kernel"] = kernel * np.minimum(1.0, 1.0 / norms)
    return expected, metrics, rng


def test_update_is_an_sgd_step_then_the_max_norm_projection(variant, state_and_batch, sgd_step):
    state, batch = state_and_batch
    expected, expected_metrics, rng = sgd_step
    new_state, metrics = variant(n4fields.update)(state, batch)
    for got, want in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-5)
    assert float(metrics["learning_rate"]) == pytest.approx(0.03)
    assert int(new_state.step) == 1
    np.testing.assert_array_equal(jax.random.key_data(new_state.rng), jax.random.key_data(rng))


def test_predict_returns_the_test_time_outputs(variant, state_and_batch):
    state, batch = state_and_batch
    predict = variant(functools.partial(n4fields.predict, apply_fn=state.apply_fn))
    outputs = predict(state.params, {"image": batch["image"]})
    assert set(outputs) == {"output"}
    assert outputs["output"].shape == batch["target"].shape
    expected = state.apply_fn({"params": state.params}, batch["image"], train=False)
    np.testing.assert_allclose(outputs["output"], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError):
        predict(state.params, {"image": jnp.asarray(batch["image"][0])})
