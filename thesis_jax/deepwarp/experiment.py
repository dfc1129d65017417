"""The variants of one DeepWarp experiment (thesis sec. 4.4.3), trained on the same pairs.

`Experiment.create(config)` loads the (train, test) pairs of the preset and jits one `predict`
per variant; `train_variant` trains a variant with the core loop (resumable; its held-out MSE
goes to `<workdir>/<variant>/metrics.jsonl`) and `export_variant` writes the trained model for
inference (`thesis_jax.deepwarp.gaze`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from thesis_jax import core
from thesis_jax.core import parallel
from thesis_jax.core.presets import ConfigError
from thesis_jax.data import eyes
from thesis_jax.deepwarp import evaluation, export, pairs, train
from thesis_jax.deepwarp.model import VARIANTS

EVAL_PAIRS = 512
"""Held-out pairs the periodic evaluation during training looks at."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Unknown variants, angle dimensions that contradict `two_d` or a batch that does not
    split over the devices raise ConfigError."""
    unknown = set(config.variants) - set(VARIANTS)
    if unknown or not config.variants:
        raise ConfigError(
            f"config.variants must name some of {VARIANTS}, got {tuple(config.variants)}"
        )
    if config.angle_dims != (2 if config.two_d else 1):
        raise ConfigError("config.angle_dims must be 2 when config.two_d is set, else 1")
    parallel.check_batch_split(config.batch_size)


def variant_config(config: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
    """A copy of `config` whose network is `variant`."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.model.variant = variant
    return config


def _jit_predict(apply_fn: Callable[..., Any], mesh: jax.sharding.Mesh) -> Callable:
    def run(variables: tuple[Any, Any], batch: Mapping[str, jax.Array]) -> dict:
        params, model_state = variables
        return train.predict(params, batch, apply_fn=apply_fn, model_state=model_state)

    return parallel.jit_apply(run, mesh)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What every variant of one run shares: config, pairs, mesh, a jitted predict per variant."""

    config: ml_collections.ConfigDict
    train: eyes.EyePairs
    test: eyes.EyePairs
    mesh: jax.sharding.Mesh
    predicts: Mapping[str, Callable]

    @classmethod
    def create(cls, config: ml_collections.ConfigDict) -> Experiment:
        train_pairs, test_pairs = pairs.load_pairs(config)
        mesh = parallel.data_mesh()
        predicts = {
            variant: _jit_predict(train.make_model(variant_config(config, variant)).apply, mesh)
            for variant in config.variants
        }
        return cls(config, train_pairs, test_pairs, mesh, predicts)

    def predict(
        self,
        variant: str,
        state: core.TrainState,
        eye_pairs: eyes.EyePairs,
        angles: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs of `variant`'s trained `state` on `eye_pairs` (at `angles` instead of
        theirs, (N, angle_dims), if given), in batches over the mesh."""
        dims = self.config.angle_dims
        batch = {
            "image": eye_pairs.inputs,
            "landmarks": eye_pairs.landmarks,
            "angle": pairs.pair_angles(eye_pairs, dims) if angles is None else angles,
        }
        return parallel.map_batched(
            self.predicts[variant],
            (state.params, state.model_state),
            batch,
            batch_size=self.config.eval_batch_size,
            mesh=self.mesh,
        )


def train_variant(exp: Experiment, variant: str, workdir: str) -> core.LoopResult:
    """Trains `variant` in `workdir/variant` (resuming what is there)."""
    config = variant_config(exp.config, variant)
    state = train.init(jax.random.PRNGKey(config.seed), config)
    sampler = pairs.make_sampler(config, exp.train)
    parallel.local_batch_size(sampler.batch_size, exp.mesh)  # fails early on an uneven split
    eval_pairs = exp.test.subset(np.arange(min(len(exp.test), EVAL_PAIRS)))

    def eval_fn(state: core.TrainState) -> dict[str, float]:
        out = exp.predict(variant, state, eval_pairs)
        errors = evaluation.redirection_errors(
            out["output"], eval_pairs.aligned_targets(), eval_pairs.inputs
        )
        return {
            "mse": float(errors["mse"].mean()),
            "normalized": float(errors["normalized"].mean()),
        }

    return core.train(
        state,
        train.update,
        pairs.make_batch_fn(config, exp.train, sampler),
        workdir=os.path.join(workdir, variant),
        mesh=exp.mesh,
        eval_fn=eval_fn,
        desc=f"deepwarp/{variant}",
        **core.loop_options(config),
    )


def export_variant(exp: Experiment, variant: str, state: core.TrainState, workdir: str) -> None:
    """Writes `workdir/variant/export.msgpack` (on process 0): the model for inference."""
    if jax.process_index() != 0:
        return
    export.save_export(
        os.path.join(workdir, variant, "export.msgpack"),
        state.params,
        state.model_state,
        export.Architecture.from_config(variant_config(exp.config, variant)),
    )
