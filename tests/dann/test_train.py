"""DANN networks and the update: fig. 5.3 shapes, eq. (5.3.9)-(5.3.10), baselines, max-norm."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from thesis_jax import dann
from thesis_jax.core import parallel


def _config(architecture="mnist", num_classes=10, **extra):
    config = ml_collections.ConfigDict(
        {
            "architecture": architecture,
            "num_classes": num_classes,
            "shallow_hidden": 16,
            "num_steps": 100,
            "momentum": 0.9,
            "gamma": 10.0,
            "max_norm": 0.0,
            "learning_rate": {"mu0": 0.01, "alpha": 10.0, "beta": 0.75},
            "input_shape": None,
        }
    )
    config.update(extra)
    return config


def _batch(shape=(28, 28, 3), n=8, seed=0):
    """Each class is a fixed random pattern plus noise; the target domain is shifted."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(10, *shape)).astype(np.float32)
    source_label = rng.integers(0, 10, n).astype(np.int32)
    target_label = rng.integers(0, 10, n).astype(np.int32)
    noise = lambda: 0.3 * rng.normal(size=(n, *shape)).astype(np.float32)
    return {
        "source_image": patterns[source_label] + noise(),
        "source_label": source_label,
        "target_image": patterns[target_label] + noise() + 0.3,
        "target_label": target_label,
    }


@pytest.mark.parametrize(
    "architecture, shape, feature_size, classes",
    [
        ("mnist", (28, 28, 3), 4 * 4 * 48, 10),  # fig. 5.3 (A)
        ("svhn", (32, 32, 3), 8 * 8 * 128, 10),  # fig. 5.3 (B)
        ("gtsrb", (40, 40, 3), 2 * 2 * 256, 43),  # fig. 5.3 (C)
        ("shallow", (28, 28, 3), 16, 10),  # sec. 5.3.1
    ],
)
def test_architectures(architecture, shape, feature_size, classes):
    model = dann.DANN(architecture=architecture, num_classes=classes, shallow_hidden=16)
    x = jnp.zeros((2, *shape))
    variables = model.init(jax.random.PRNGKey(0), x, 0.0)
    out = model.apply(variables, x, 0.0)
    assert out["features"].shape == (2, feature_size)
    assert out["logits"].shape == (2, classes)
    assert out["domain_logits"].shape == (2, 2)
    domain = variables["params"]["domain_classifier"]
    widths = [domain[k]["kernel"].shape[1] for k in sorted(domain)]
    expected = {
        "mnist": [100, 2],
        "svhn": [1024, 1024, 2],
        "gtsrb": [1024, 1024, 2],
        "shallow": [2],
    }[architecture]
    assert widths == expected


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'lenet'"):
        dann.DANN(architecture="lenet").init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 3)))


def _grads(state, batch, lam):
    return jax.grad(dann.loss, has_aux=True)(
        state.params,
        batch,
        jax.random.PRNGKey(1),
        apply_fn=state.apply_fn,
        hparams=state.hparams,
        lam=lam,
    )[0]


def test_grl_reverses_only_the_feature_extractor_gradient():
    """eq. (5.3.9)-(5.3.10): G_d descends L_d; G_f gets dL_y - lam dL_d."""
    state = dann.init(jax.random.PRNGKey(0), _config(), mode="dann")
    batch = _batch()
    at0, at1, at_half = (_grads(state, batch, lam) for lam in (0.0, 1.0, 0.5))
    # The domain classifier's gradient does not depend on lambda (it learns at lambda = 1).
    jax.tree.map(np.testing.assert_allclose, at0["domain_classifier"], at1["domain_classifier"])
    # The label predictor never sees the domain loss.
    jax.tree.map(np.testing.assert_allclose, at0["label_predictor"], at1["label_predictor"])
    # The feature extractor: g(lam) = g_y - lam g_d, linear in lambda.
    f0, f1, fh = (g["feature_extractor"] for g in (at0, at1, at_half))
    jax.tree.map(
        lambda a, b, c: np.testing.assert_allclose(c, (a + b) / 2, rtol=1e-4, atol=1e-7), f0, f1, fh
    )

    # And g_d really is subtracted: compare with the gradient of L_d alone, unreversed.
    def domain_loss(params):
        return dann.loss(
            params,
            batch,
            jax.random.PRNGKey(1),
            apply_fn=state.apply_fn,
            hparams=state.hparams,
            lam=-1.0,
        )[1][0]["domain_loss"]

    g_d = jax.grad(domain_loss)(state.params)["feature_extractor"]
    # With lam = -1 the GRL passes +g_d; so f1 = f0 - g_d.
    jax.tree.map(
        lambda a, b, d: np.testing.assert_allclose(b, a - d, rtol=1e-4, atol=1e-6), f0, f1, g_d
    )


def test_source_only_ignores_domains_and_train_on_target_uses_target_labels():
    config = _config()
    batch = _batch()
    source_only = dann.init(jax.random.PRNGKey(0), config, mode="source_only")
    g = _grads(source_only, batch, 1.0)
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g["domain_classifier"]))
    on_target = dann.init(jax.random.PRNGKey(0), config, mode="train_on_target")
    value, _ = dann.loss(
        on_target.params,
        batch,
        jax.random.PRNGKey(1),
        apply_fn=on_target.apply_fn,
        hparams=on_target.hparams,
        lam=0.0,
    )
    logits = on_target.apply_fn({"params": on_target.params}, batch["target_image"], 0.0)["logits"]
    expected = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), batch["target_label"]])
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_semi_supervised_labelled_targets_join_the_label_loss():
    state = dann.init(jax.random.PRNGKey(0), _config(), mode="dann")
    batch = _batch()
    with_labels = dict(
        batch, labelled_image=batch["target_image"][:4], labelled_label=batch["target_label"][:4]
    )
    kwargs = dict(apply_fn=state.apply_fn, hparams=state.hparams, lam=0.5)
    _, (plain, _) = dann.loss(state.params, batch, jax.random.PRNGKey(1), **kwargs)
    _, (semi, _) = dann.loss(state.params, with_labels, jax.random.PRNGKey(1), **kwargs)
    assert float(semi["label_loss"]) != pytest.approx(float(plain["label_loss"]))
    assert float(semi["domain_loss"]) == pytest.approx(float(plain["domain_loss"]))


def test_update_learns_and_follows_the_lambda_schedule():
    config = _config(num_steps=150)
    state = dann.init(jax.random.PRNGKey(0), config, mode="dann")
    batch = _batch(n=16)
    update = jax.jit(dann.update)
    lambdas, losses = [], []
    for _ in range(150):
        state, metrics = update(state, batch)
        lambdas.append(float(metrics["lambda"]))
        losses.append(float(metrics["label_loss"]))
    assert int(state.step) == 150
    assert lambdas[0] == 0.0 and lambdas[-1] == pytest.approx(
        float(dann.lambda_schedule(149 / 150)), rel=1e-5
    )
    assert losses[-1] < 0.5 * losses[0]


def test_schedule_steps_decouples_the_schedules_from_the_run_length():
    """`schedule_steps` fixes where lambda_p and mu_p saturate; `num_steps` says when to stop."""
    batch = _batch(n=8)
    update = jax.jit(dann.update)
    by_length = dann.init(jax.random.PRNGKey(0), _config(num_steps=40))
    fixed = dann.init(jax.random.PRNGKey(0), _config(num_steps=400, schedule_steps=40))
    stretched = dann.init(jax.random.PRNGKey(0), _config(num_steps=400))
    assert fixed.hparams.schedule_steps == by_length.hparams.schedule_steps == 40
    for _ in range(20):
        by_length, m_length = update(by_length, batch)
        fixed, m_fixed = update(fixed, batch)
        stretched, m_stretched = update(stretched, batch)
    assert float(m_fixed["lambda"]) == pytest.approx(float(m_length["lambda"]))
    assert float(m_fixed["lambda"]) == pytest.approx(float(dann.lambda_schedule(19 / 40)), rel=1e-5)
    assert float(m_stretched["lambda"]) < 0.5 * float(m_fixed["lambda"])
    chex.assert_trees_all_close(fixed.params, by_length.params, rtol=1e-5, atol=1e-7)


def test_sharded_update_matches_single_device():
    config = _config()
    batch = _batch(n=16)
    one = parallel.jit_update(dann.update, parallel.data_mesh(jax.devices()[:1]), donate=False)
    mesh = parallel.data_mesh()
    eight = parallel.jit_update(dann.update, mesh, donate=False)
    s1, m1 = one(dann.init(jax.random.PRNGKey(0), config), batch)
    s8, m8 = eight(
        parallel.replicate(dann.init(jax.random.PRNGKey(0), config), mesh),
        parallel.shard_batch(batch, mesh),
    )
    np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), s8.params, s1.params
    )


def test_update_applies_the_max_norm_projection():
    state = dann.init(
        jax.random.PRNGKey(0),
        _config("mnist", max_norm=0.5, learning_rate={"mu0": 1.0, "alpha": 0.0, "beta": 0.75}),
    )  # the thesis sets max_norm for SVHN's network; the projection is the same for any
    state, _ = jax.jit(dann.update)(state, _batch(n=8))
    kernel = state.params["label_predictor"]["Dense_0"]["kernel"]
    assert float(jnp.sqrt(jnp.sum(kernel**2, axis=0)).max()) <= 0.5 + 1e-5


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown DANN mode 'adapt'"):
        dann.init(jax.random.PRNGKey(0), _config(), mode="adapt")


def test_domain_classifier_options_and_dropout():
    """G_d's hidden layers and dropout can be set; dropout acts in training only."""
    model = dann.DANN(architecture="mnist", domain_hidden=(64, 32), domain_dropout=0.5)
    x = jnp.asarray(_batch(n=4)["source_image"])
    variables = model.init(jax.random.PRNGKey(0), x, 1.0)
    domain = variables["params"]["domain_classifier"]
    assert [domain[k]["kernel"].shape[1] for k in sorted(domain)] == [64, 32, 2]
    run = lambda key, train: model.apply(
        variables, x, 1.0, train=train, rngs={"dropout": jax.random.PRNGKey(key)}
    )
    a, b = run(1, True)["domain_logits"], run(2, True)["domain_logits"]
    assert not np.allclose(a, b)  # different dropout masks
    np.testing.assert_allclose(run(1, False)["domain_logits"], run(2, False)["domain_logits"])
    # The label path has no dropout in the mnist architecture: train and eval logits agree.
    np.testing.assert_allclose(run(1, True)["logits"], run(1, False)["logits"], rtol=1e-5)
    # From a config: domain_dropout < 0 keeps the thesis's G_d (no dropout for mnist).
    plain = dann.make_model(_config(domain_dropout=-1.0))
    assert plain.domain_dropout is None
    assert dann.make_model(_config(domain_dropout=0.5)).domain_dropout == 0.5


def test_update_reports_feature_and_gradient_norms():
    """The metrics that show G_f collapsing (features -> 0) or blowing up (README, DANN)."""
    state = dann.init(jax.random.PRNGKey(0), _config(), mode="dann")
    batch = _batch()
    _, metrics = jax.jit(dann.update)(state, batch)
    out = state.apply_fn({"params": state.params}, batch["source_image"], 0.0)
    expected = np.mean(np.linalg.norm(np.asarray(out["features"]), axis=-1))
    np.testing.assert_allclose(metrics["feature_norm"], expected, rtol=1e-5)
    grads = _grads(state, batch, float(metrics["lambda"]))
    # The update's gradient uses its own dropout key, but this architecture has no dropout.
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-4)


def test_parameter_average_follows_the_warm_up_formula_under_donation():
    config = _config(ema_decay=0.9)
    state = dann.init(jax.random.PRNGKey(0), config, mode="dann")
    start = jax.tree.map(np.asarray, state.params)
    assert dann.inference_params(state) is state.model_state["ema_params"]
    step = parallel.jit_update(dann.update, parallel.data_mesh(jax.devices()[:1]))  # donates
    batch = _batch()
    state, _ = step(state, batch)
    first = jax.tree.map(np.asarray, state.params)
    # step 0: d = min(0.9, 1 / 10) = 0.1
    expected = jax.tree.map(lambda a, p: 0.1 * a + 0.9 * p, start, first)
    jax.tree.map(
        lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7),
        expected,
        state.model_state["ema_params"],
    )
    state, _ = step(state, batch)
    # step 1: d = min(0.9, 2 / 11)
    d = 2 / 11
    expected = jax.tree.map(
        lambda e, p: d * e + (1 - d) * p, expected, jax.tree.map(np.asarray, state.params)
    )
    jax.tree.map(
        lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7),
        expected,
        dann.inference_params(state),
    )
    plain = dann.init(jax.random.PRNGKey(0), _config(), mode="dann")
    assert dann.inference_params(plain) is plain.params
    with pytest.raises(ValueError, match="ema_decay"):
        dann.init(jax.random.PRNGKey(0), _config(ema_decay=1.0))
