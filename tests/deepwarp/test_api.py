"""DeepWarp's public API: `init`, `loss`, `update`, `predict` from another codebase's point of
view, and each pure function jitted and eager (the shared `variant` fixture)."""

import jax
import numpy as np
import pytest

from thesis_jax import deepwarp


def test_another_codebase_trains_deepwarp_in_its_own_jitted_loop(tiny_config, shift_batch):
    from thesis_jax.deepwarp import init, loss, predict, update

    state = init(jax.random.PRNGKey(0), tiny_config("cfw"))
    step = jax.jit(update)
    losses = []
    for _ in range(20):
        state, metrics = step(state, shift_batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0], losses
    evaluate = jax.jit(loss, static_argnames=("apply_fn", "hparams"))
    value, (metrics, model_state) = evaluate(
        state.params,
        shift_batch,
        jax.random.PRNGKey(1),
        apply_fn=state.apply_fn,
        hparams=state.hparams,
        model_state=state.model_state,
    )
    assert float(value) < losses[0] and set(model_state) == {"batch_stats"}
    infer = jax.jit(predict, static_argnames="apply_fn")
    out = infer(state.params, shift_batch, apply_fn=state.apply_fn, model_state=model_state)
    assert out["output"].shape == shift_batch["image"].shape
    assert out["flow"].shape == (*shift_batch["image"].shape[:3], 2)


def _aligned(batch):
    m = 2  # the tiny config's margin
    return batch["target"][:, m:-m, m:-m]


def _statics(state):
    """`loss`'s keywords from a TrainState."""
    return dict(apply_fn=state.apply_fn, hparams=state.hparams, model_state=state.model_state)


def _jit_loss():
    return jax.jit(deepwarp.loss, static_argnames=("apply_fn", "hparams"))


def test_loss_of_the_untrained_identity_warp_is_the_input_error(variant, cfw_state, shift_batch):
    state = cfw_state
    loss = variant(deepwarp.loss, static_argnames=("apply_fn", "hparams"))
    value, (metrics, model_state) = loss(state.params, shift_batch, state.rng, **_statics(state))
    # The flow starts at zero: the output is the input, so the l2 loss (sec. 4.4.2) is the
    # input's error against the aligned target.
    expected = np.mean((shift_batch["image"] - _aligned(shift_batch)) ** 2)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["mse"], expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], value)
    np.testing.assert_allclose(metrics["flow_magnitude"], 0.0, atol=1e-6)
    # BatchNorm's running statistics move towards this batch's; the loss itself uses the batch
    # statistics, so starting them afresh (model_state=None) gives the same value.
    assert jax.tree.structure(model_state) == jax.tree.structure(state.model_state)
    old, new = jax.tree.leaves(state.model_state), jax.tree.leaves(model_state)
    assert any(not np.allclose(a, b) for a, b in zip(old, new, strict=True))
    fresh, _ = loss(
        state.params, shift_batch, state.rng, **{**_statics(state), "model_state": None}
    )
    np.testing.assert_allclose(fresh, value, rtol=1e-6)


def test_update_is_one_adam_step_on_the_loss(cfw_state, shift_batch):
    # Jitted only: `loss`, the whole of `update` but the Adam step, also runs eagerly above.
    state = cfw_state
    new_state, metrics = jax.jit(deepwarp.update)(state, shift_batch)
    value, _ = _jit_loss()(state.params, shift_batch, state.rng, **_statics(state))
    np.testing.assert_allclose(metrics["loss"], value, rtol=1e-5)
    assert int(new_state.step) == 1
    assert not np.array_equal(new_state.rng, state.rng)  # a fresh key for the next step
    # Adam's first step moves every parameter that has a gradient by about the learning rate.
    moved = [
        np.max(np.abs(a - b))
        for a, b in zip(
            jax.tree.leaves(new_state.params), jax.tree.leaves(state.params), strict=True
        )
    ]
    assert max(moved) == pytest.approx(3e-3, rel=1e-3)


def test_predict_returns_the_variant_outputs_and_needs_the_batch_statistics(
    variant, cfw_state, shift_batch
):
    state = cfw_state
    predict = variant(deepwarp.predict, static_argnames="apply_fn")
    inputs = {k: v for k, v in shift_batch.items() if k != "target"}
    out = predict(state.params, inputs, apply_fn=state.apply_fn, model_state=state.model_state)
    assert set(out) == {"output", "flow", "coarse_flow", "coarse_output"}
    np.testing.assert_allclose(out["output"], inputs["image"], atol=1e-5)  # identity warp
    with pytest.raises(ValueError, match="model_state"):
        predict(state.params, inputs, apply_fn=state.apply_fn)


def test_bad_batches_fail_at_entry(variant, cfw_state, shift_batch):
    state = cfw_state
    loss = variant(deepwarp.loss, static_argnames=("apply_fn", "hparams"))
    bad = {
        "landmarks": shift_batch["landmarks"][:, :5],  # 5 landmarks, not 7
        "angle": shift_batch["angle"][:, 0],  # rank 1
        "image": (shift_batch["image"] * 255).astype(np.uint8),  # not floats
        "target": _aligned(shift_batch),  # without the registration margin
    }
    for key, value in bad.items():
        with pytest.raises(AssertionError):
            loss(state.params, {**shift_batch, key: value}, state.rng, **_statics(state))
