"""Training (sec. 3.3.2-3.3.3): targets per head, SGD momentum updates, annealing."""

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

from tests.n4fields import tiny
from tests.n4fields.tiny import prng_key
from thesis_jax import n4fields


def _config(**extra):
    config = ml_collections.ConfigDict(
        {
            "model": {"conv_features": (8, 16, 16), "fc_features": (256, 256), "init_std": 0.1},
            "head": "code",
            "channel_mean": tiny.CHANNEL_MEAN[:3],
            "learning_rate": 0.01,
            "momentum": 0.9,
            "max_norm": 1.0,
        }
    )
    config.update(extra)
    return config


def test_channel_mean_is_over_all_pixels():
    images = [np.full((2, 2, 3), 1.0), np.zeros((2, 6, 3))]
    np.testing.assert_allclose(n4fields.channel_mean(images), [0.25, 0.25, 0.25])


def test_make_batch_targets(shapes_data):
    samples = n4fields.sample_patches(shapes_data.images, shapes_data.annotations, 0, 32)
    pca = n4fields.fit_pca(samples["annotation"], 16)
    code = n4fields.make_batch(samples, head="code", pca=pca)
    np.testing.assert_allclose(code["target"], pca.encode(samples["annotation"]), rtol=1e-6)
    central = n4fields.make_batch(samples, head="central")
    np.testing.assert_array_equal(central["target"][:, 0], samples["annotation"][:, 8, 8])
    patch = n4fields.make_batch(samples, head="patch")
    assert patch["target"].shape == (32, 256)
    # the alternative encoding: PCA of the pairwise bits of one annotator's segmentation
    samples = n4fields.sample_patches(
        shapes_data.images,
        shapes_data.annotations,
        1,
        32,
        segmentations=list(shapes_data.annotator_segmentations),
    )
    bits = n4fields.pairwise_codes(samples["segmentation"], pairs=256)
    pairwise_pca = n4fields.fit_pca(bits, 16)
    pairwise = n4fields.make_batch(samples, pca=pairwise_pca, encoding="pairwise", pairs=256)
    np.testing.assert_allclose(pairwise["target"], pairwise_pca.encode(bits.astype(np.float32)))
    assert code["image"].shape == (32, 34, 34, 3)


# CNN-central's loss is CNN-patch's with one logit instead of 256
@pytest.mark.parametrize("head, learning_rate, steps", [("code", 0.03, 100), ("patch", 0.01, 25)])
def test_updates_lower_the_loss(shapes_data, head, learning_rate, steps):
    images, annotations = shapes_data.images, shapes_data.annotations
    samples = n4fields.sample_patches(images, annotations, 0, 64, rotation="none", flip=False)
    pca = n4fields.fit_pca(samples["annotation"], 16) if head == "code" else None
    batch = n4fields.make_batch(samples, head=head, pca=pca)
    config = _config(head=head, learning_rate=learning_rate)
    state = n4fields.init(prng_key(0), config)
    assert state.hparams.arch == tiny.tiny_arch(head)
    assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(
        config.learning_rate
    )

    def objective(params):  # without dropout
        outputs = n4fields.predict(params, batch, apply_fn=state.apply_fn)["output"]
        if head == "code":
            return float(np.mean(np.sum((outputs - batch["target"]) ** 2, -1)))
        p = 1 / (1 + np.exp(-np.asarray(outputs, np.float64)))
        t = batch["target"]
        return float(-np.mean(np.sum(t * np.log(p) + (1 - t) * np.log(1 - p), -1)))

    before = objective(state.params)
    update = jax.jit(n4fields.update)
    for _ in range(steps):
        state, metrics = update(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    assert objective(state.params) < 0.7 * before
    norms = np.linalg.norm(np.asarray(state.params["conv1"]["kernel"]).reshape(-1, 8), axis=0)
    assert np.all(norms <= 1.0 + 1e-5)  # the max-norm projection after every step
    annealed = n4fields.anneal_learning_rate(state, 0.1)
    _, metrics = update(annealed, batch)
    assert float(metrics["learning_rate"]) == pytest.approx(0.1 * learning_rate)


def test_anneal_at_divides_the_rate_at_fixed_fractions_of_the_run():
    import ml_collections

    config = ml_collections.ConfigDict(
        {"learning_rate": 0.1, "num_steps": 100, "anneal_at": (0.5, 0.8), "anneal_factor": 0.1}
    )
    tx = n4fields.train.make_optimizer(config)
    params = {"w": np.zeros(3, np.float32)}
    state = tx.init(params)
    rates = []
    for _ in range(100):  # the hyperparameters a state holds are those its update used
        _, state = tx.update({"w": np.ones(3, np.float32)}, state, params)
        rates.append(float(state.hyperparams["learning_rate"]))
    assert rates[0] == pytest.approx(0.1) and rates[49] == pytest.approx(0.1)
    assert rates[50] == pytest.approx(0.01) and rates[79] == pytest.approx(0.01)
    assert rates[80] == pytest.approx(0.001) and rates[99] == pytest.approx(0.001)
    with pytest.raises(ValueError, match="fractions"):
        n4fields.train.make_optimizer(ml_collections.ConfigDict({**config, "anneal_at": (1.5,)}))


def test_output_bias_starts_the_baselines_at_the_prior():
    config = _config()
    state = n4fields.init(prng_key(), config, head="patch", output_bias=-3.0)
    np.testing.assert_array_equal(np.asarray(state.params["output"]["bias"]), np.full(256, -3.0))
    fresh = n4fields.init(prng_key(), config, head="patch")
    assert not np.any(np.asarray(fresh.params["output"]["bias"]))
    for name in ("conv1", "fc1"):  # nothing else moves
        np.testing.assert_array_equal(
            np.asarray(state.params[name]["kernel"]), np.asarray(fresh.params[name]["kernel"])
        )


def test_update_caps_the_first_layer_filters_only(shapes_data):
    """The max-norm projection of sec. 3.3.3 after each step: conv1's filters are rescaled to
    the cap, direction kept; the rest of the step is the one without the projection."""
    samples = n4fields.sample_patches(shapes_data.images, shapes_data.annotations, 0, 16)
    batch = n4fields.make_batch(samples, head="patch")
    free = n4fields.init(prng_key(0), _config(head="patch", max_norm=0.0))

    def filters(state, name):
        kernel = np.asarray(state.params[name]["kernel"])
        return kernel.reshape(-1, kernel.shape[-1])

    cap = float(np.median(np.linalg.norm(filters(free, "conv1"), axis=0)))
    capped = free.replace(hparams=dataclasses.replace(free.hparams, max_norm=cap))
    update = jax.jit(n4fields.update)
    unprojected, _ = update(free, batch)
    projected, _ = update(capped, batch)
    before = np.linalg.norm(filters(unprojected, "conv1"), axis=0)
    assert (before > cap).any() and (before < cap).any()
    scale = np.minimum(1.0, cap / before)
    np.testing.assert_allclose(
        filters(projected, "conv1"), filters(unprojected, "conv1") * scale, rtol=1e-5, atol=1e-8
    )
    for name in ("conv2", "conv3", "fc1", "fc2", "output"):
        np.testing.assert_array_equal(filters(projected, name), filters(unprojected, name))
    assert (np.linalg.norm(filters(projected, "conv2"), axis=0) > cap).any()  # not projected
