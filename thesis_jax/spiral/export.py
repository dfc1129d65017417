"""A trained SPIRAL agent in one file: the policy's parameters and the config that built it.

What painting with a trained agent needs from a run of `experiments.spiral`, without orbax, the
replay buffer or the optimizers' state: an `.npz` of the policy's parameters and the critic's
(which rewards further training and scores evaluations; float16 by default, read back as
float32), the run's config as JSON and the held-out metrics it reached.

    save_agent("agent.npz", state, config, metrics={"readability": 0.42})
    agent = load_agent("agent.npz")                  # or load_agent("mnist"): the shipped one
    state = with_agent(spiral.init(rng, agent.config), agent)

The binary takes one with `--config.agent=<path or name>`: training starts from its policy, and
`--config.num_steps=0` only evaluates it and paints samples. A run's latest checkpoint becomes an
agent file, with the held-out metrics of its float16 weights, by

    python -m experiments.spiral_export --workdir=runs/spiral_mnist --output=agent.npz
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from thesis_jax.core import parallel
from thesis_jax.core.metrics import write_atomic

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
SHIPPED = {
    "mnist": os.path.join(ASSETS, "spiral_mnist_cond_cpu_v2.npz"),
    "omniglot": os.path.join(ASSETS, "spiral_omniglot_small_cpu_v1.npz"),
}
"""Agents that ship with the package, by name (README: "A trained agent" has the command)."""

_CONFIG = "__config__"
_METRICS = "__metrics__"


class Agent(NamedTuple):
    params: Any  # the policy's parameters, float32
    critic_params: Any  # the critic's, float32; None for an agent trained with the l2 reward
    config: ml_collections.ConfigDict  # the run's config: preset, canvas, networks, ...
    metrics: dict[str, float]  # held-out metrics at export time


def resolve(name_or_path: str) -> str:
    """The file of a shipped agent's name, or `name_or_path` itself if it is a file."""
    from thesis_jax.core.files import resolve_shipped

    return resolve_shipped(name_or_path, SHIPPED, "SPIRAL agent", "an .npz written by save_agent")


def _network_arrays(state: Any, config: ml_collections.ConfigDict, dtype: Any) -> dict:
    """{"policy/...": array, "critic/...": array (critic reward only)}, cast to `dtype`."""
    networks = {"policy": state.policy.params}
    if config.reward == "critic":
        networks["critic"] = state.critic.params
    flat = flax.traverse_util.flatten_dict(jax.device_get(networks), sep="/")
    return {key: np.asarray(value, dtype) for key, value in flat.items()}


def _agent(arrays: dict, config: ml_collections.ConfigDict, metrics: dict, path: str) -> Agent:
    """The agent of `_network_arrays`' arrays, read back as float32."""
    networks = flax.traverse_util.unflatten_dict(
        {key: jnp.asarray(value, jnp.float32) for key, value in arrays.items()}, sep="/"
    )
    if "policy" not in networks:
        raise ValueError(f"{path} is not a SPIRAL agent written by save_agent: no policy")
    return Agent(networks["policy"], networks.get("critic"), config, metrics)


def save_agent(
    path: str | os.PathLike[str],
    state: Any,
    config: ml_collections.ConfigDict,
    metrics: dict[str, float] | None = None,
    dtype: Any = np.float16,
) -> str:
    """Writes the policy's and (critic reward) the critic's parameters, cast to `dtype`,
    `config` and `metrics` atomically."""
    arrays = _network_arrays(state, config, dtype)
    config = ml_collections.ConfigDict(config.to_dict())
    config.agent = ""  # the file is the agent; it does not name another
    arrays[_CONFIG] = np.asarray(config.to_json())
    arrays[_METRICS] = np.asarray(json.dumps(metrics or {}))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomic(os.fspath(path), buffer.getvalue())


def load_agent(name_or_path: str) -> Agent:
    """The agent in a `save_agent` file, or a shipped one by name (`SHIPPED`)."""
    path = resolve(name_or_path)
    try:
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files}
        config = ml_collections.ConfigDict(json.loads(str(arrays.pop(_CONFIG))))
        metrics = json.loads(str(arrays.pop(_METRICS)))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a SPIRAL agent written by save_agent: {error}") from error
    return _agent(arrays, config, metrics, path)


def with_agent(state: Any, agent: Agent) -> Any:
    """`state` (a fresh `SpiralState`) with the agent's policy and critic parameters.

    Raises:
      ValueError: the agent's network does not fit the state's (another canvas, action space or
        network size); the message names the preset the agent was trained with.
    """

    def layout(tree: Any) -> Any:
        return jax.tree.map(lambda x: (x.shape, x.dtype), tree)

    fits = layout(state.policy.params) == layout(agent.params)
    if agent.critic_params is not None:
        fits = fits and layout(state.critic.params) == layout(agent.critic_params)
    if not fits:
        raise ValueError(
            f"this agent was trained with --config={agent.config.get('preset', '?')} (a "
            f"{agent.config.canvas_size}x{agent.config.canvas_size} canvas, "
            f"{agent.config.grid_size}x{agent.config.grid_size} grid and its network sizes); "
            "its policy does not fit this config's: use that preset"
        )

    policy = parallel.placed_like(agent.params, state.policy.params)
    state = state.replace(policy=state.policy.replace(params=policy))
    if agent.critic_params is not None:
        critic = parallel.placed_like(agent.critic_params, state.critic.params)
        state = state.replace(critic=state.critic.replace(params=critic))
    return state


def export_run(workdir: str, output: str) -> dict[str, float]:
    """Writes the latest checkpoint of the run in `workdir` as an agent file, with the held-out
    metrics the float16 agent reaches (the binary's evaluation); returns them."""
    from thesis_jax import core
    from thesis_jax.spiral import actors, experiment

    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir} is not a run of experiments.spiral (no config.json)")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    template = experiment.init_state(config)
    state = core.Checkpointer(os.path.join(workdir, "checkpoints"), save_every=1).restore(template)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints to export")
    data = experiment.load_data(config)
    painters = actors.Actors(config)
    # What the file will hold: the weights rounded to float16 and read back as float32.
    stored = _agent(_network_arrays(state, config, np.float16), config, {}, output)
    try:
        evaluate = experiment.evaluator(config, painters, data.held_out, data.held_out_labels)
        metrics = {"step": int(state.step), **evaluate(with_agent(state, stored))}
    finally:
        painters.close()
    save_agent(output, state, config, metrics)
    return metrics
