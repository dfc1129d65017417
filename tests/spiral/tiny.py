"""Tiny SPIRAL presets for tests: the `digits` preset on a 16x16 canvas with small networks.

Equal configs give equal hparams, modules and optimizers (`train.policy_net` & co. are cached),
so states built from one of these share a jitted `update` across tests: it compiles once per
session (and once per machine with the persistent compilation cache).
"""

from __future__ import annotations

import pathlib

import ml_collections

from thesis_jax import core

PRESETS = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "configs" / "spiral.py"

POLICY = {
    "channels": 8,
    "encoder_blocks": 1,
    "embedding_size": 32,
    "lstm_size": 32,
    "decoder_blocks": 1,
    "condition_mlp": (16,),
    "update_mlp": (16,),
}


def tiny_config(preset: str = "digits", **overrides) -> ml_collections.ConfigDict:
    """`preset` on a 16x16 canvas, an 8x8 grid, 3-step episodes, batches of 8, tiny networks
    (`POLICY`, a critic of 8 and 16 channels) and the policy learning rate 1e-4.

    `overrides` replace any field (`policy` takes a dict of the policy's fields).
    """
    policy = {**POLICY, **overrides.pop("policy", {})}
    fields = {
        "batch_size": 8,
        "eval_batch_size": 8,
        "canvas_size": 16,
        "grid_size": 8,
        "episode_length": 3,
        "critic_channels": (8, 16),
        "policy_learning_rate": 1e-4,
        **overrides,
    }
    config = core.get_config(preset, PRESETS, fields)
    with config.unlocked():
        config.policy.update(policy)
    return config
