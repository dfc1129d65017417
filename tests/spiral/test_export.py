"""Trained agents in one file (`thesis_jax.spiral.export`): round trip, loading, clear errors."""

import jax
import numpy as np
import pytest

from tests.spiral.tiny import PRESETS, tiny_config
from thesis_jax import core
from thesis_jax.spiral import actors, experiment, export, train


def _trained_state(config):
    state = train.init(jax.random.PRNGKey(3), config)
    # Parameters unlike a fresh init's, so that loading them is visible.
    params = jax.tree.map(lambda x: x + 0.25, state.policy.params)
    critic = jax.tree.map(lambda x: x - 0.25, state.critic.params)
    return state.replace(
        policy=state.policy.replace(params=params), critic=state.critic.replace(params=critic)
    )


def test_an_agent_round_trips_in_float16_and_starts_a_run(tmp_path):
    config = tiny_config()
    state = _trained_state(config)
    path = export.save_agent(tmp_path / "agent.npz", state, config, {"readability": 0.5})
    agent = export.load_agent(path)
    assert agent.metrics == {"readability": 0.5}
    assert agent.config.canvas_size == 16 and agent.config.agent == ""
    saved_networks = (state.policy.params, state.critic.params)
    for saved, loaded in zip(
        jax.tree.leaves(saved_networks),
        jax.tree.leaves((agent.params, agent.critic_params)),
        strict=True,
    ):
        assert loaded.dtype == np.float32
        np.testing.assert_allclose(loaded, saved, rtol=1e-3, atol=1e-3)  # float16 on disk
    with config.unlocked():
        config.agent = path
    started = experiment.init_state(config)
    started_networks = (started.policy.params, started.critic.params)
    assert jax.tree.all(
        jax.tree.map(np.array_equal, started_networks, (agent.params, agent.critic_params))
    ), "the run starts from the agent's policy and critic"


def test_a_wrong_file_or_preset_is_refused_clearly(tmp_path):
    config = tiny_config()
    with config.unlocked():
        config.agent = str(tmp_path / "missing.npz")
    with pytest.raises(core.ConfigError, match="no SPIRAL agent at"):
        experiment.check_config(config)
    not_an_agent = tmp_path / "weights.npz"
    np.savez(not_an_agent, w=np.zeros(3))
    with pytest.raises(ValueError, match="not a SPIRAL agent"):
        export.load_agent(str(not_an_agent))
    path = export.save_agent(tmp_path / "agent.npz", _trained_state(config), config)
    wider = tiny_config(policy={"channels": 16})
    with pytest.raises(ValueError, match="trained with --config=digits"):
        export.with_agent(train.init(jax.random.PRNGKey(0), wider), export.load_agent(path))


def test_the_shipped_agent_paints_held_out_digits_a_reader_reads():
    agent = export.load_agent("mnist")
    assert agent.config.preset == "mnist_cond_cpu"
    config = core.get_config("mnist_cond_cpu", PRESETS, {"agent": "mnist"})
    data = experiment.load_data(config)
    painters = actors.Actors(config)
    evaluate = experiment.evaluator(config, painters, data.held_out, data.held_out_labels)
    metrics = evaluate(experiment.init_state(config))
    # A fresh install measures what the export recorded (and the README states), and the reader
    # reads most reconstructions of held-out digits as their digit (chance: 0.1).
    assert metrics["readability"] == pytest.approx(agent.metrics["readability"], abs=0.05)
    assert metrics["l2"] == pytest.approx(agent.metrics["l2"], rel=0.05)
    assert metrics["critic_score"] == pytest.approx(agent.metrics["critic_score"], rel=0.1)
    assert metrics["readability"] >= 0.8


def test_the_shipped_omniglot_agent_parses_characters_closer_than_the_digit_agent(shared_data):
    """`experiments.paint --agent=omniglot`: held-out characters drawn large, each framed as the
    agent's training data (strokes.FRAMING), painted closer than the digit agent paints them."""
    from PIL import Image

    from thesis_jax.spiral import strokes

    agent = export.load_agent("omniglot")
    assert agent.config.preset == "omniglot_small_cpu" and agent.metrics["step"] == 8000
    config = core.get_config(
        "omniglot_small_cpu", PRESETS, {"data_dir": str(shared_data / "omniglot")}
    )
    held_out = experiment.load_data(config).held_out[:6]
    medians = {}
    for name in ("omniglot", "mnist"):
        painter = strokes.Painter(export.load_agent(name))
        l2 = []
        for target in held_out:
            pixels = Image.fromarray((target[..., 0] * 255).astype(np.uint8))
            drawing = np.asarray(pixels.resize((105, 105), Image.BILINEAR))
            framed = strokes.fit_drawing(
                drawing, painter.canvas_size, box=painter.box, min_line=painter.min_line
            )
            l2.append(painter(framed, samples=8)["l2"])
        medians[name] = float(np.median(l2))
    assert medians["omniglot"] < medians["mnist"], medians
