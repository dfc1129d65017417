"""The eye pairs of a DeepWarp preset and the batches that train on them (thesis sec. 4.4.1-4.4.2).

`load_pairs(config)` gives (train, test) pairs from the procedural renderer or a folder of
captures, the test pairs from identities training never sees (sec. 4.4.3). `make_batch_fn`
turns the training pairs into `batch_fn(step)` for `core.train`, sampled by the angle-binned
sampler of sec. 4.4.2 (`sampling.BinnedSampler`): a pure function of (seed, step), so a resumed
run sees the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import ml_collections
import numpy as np

from thesis_jax.core import parallel
from thesis_jax.core.presets import ConfigError
from thesis_jax.data import eyes
from thesis_jax.deepwarp.sampling import BinnedSampler

FIRST_TEST_IDENTITY = 1_000_000
"""Procedural test identities start here, far from any training identity."""


def load_pairs(config: ml_collections.ConfigDict) -> tuple[eyes.EyePairs, eyes.EyePairs]:
    """(train, test) pairs; test pairs come from identities that training never sees."""
    size = tuple(config.crop_size)
    if config.dataset == "procedural":
        common = dict(
            max_angle=config.max_angle,
            two_d=config.two_d,
            fixed_angle=config.fixed_angle or None,
            margin=config.margin,
            size=size,
            appearance=config.get("appearance", "default"),
        )
        train = eyes.generate_eye_pairs(
            config.train_pairs,
            identities=range(config.train_identities),
            seed=config.seed,
            **common,
        )
        test = eyes.generate_eye_pairs(
            config.test_pairs,
            identities=range(FIRST_TEST_IDENTITY, FIRST_TEST_IDENTITY + config.test_identities),
            seed=config.seed + 1,
            **common,
        )
        return train, test
    if config.dataset == "folder":
        pairs = eyes.load_eye_folder(
            os.path.expanduser(config.data_dir),
            max_angle=config.max_angle,
            margin=config.margin,
            size=size,
        )
        people = np.unique(pairs.identity)
        if len(people) < 2:
            raise ValueError(
                f"{config.data_dir} holds {len(people)} person; at least 2 are needed to hold "
                "one out for testing"
            )
        held_out = people[-max(1, len(people) // 5) :]
        is_test = np.isin(pairs.identity, held_out)
        return pairs.subset(np.flatnonzero(~is_test)), pairs.subset(np.flatnonzero(is_test))
    raise ValueError(f"unknown dataset {config.dataset!r}; choose procedural or folder")


def pair_angles(pairs: eyes.EyePairs, dims: int) -> np.ndarray:
    """The redirections (N, dims) the model sees: vertical, then horizontal if dims == 2."""
    return np.asarray(pairs.angles[:, :dims], np.float32)


def batch_of(pairs: eyes.EyePairs, index: np.ndarray, dims: int) -> dict[str, np.ndarray]:
    """The batch (`train` module docstring) of the pairs at `index`."""
    return {
        "image": pairs.inputs[index],
        "landmarks": pairs.landmarks[index],
        "angle": pair_angles(pairs, dims)[index],
        "target": pairs.targets[index],
    }


def make_sampler(config: ml_collections.ConfigDict, pairs: eyes.EyePairs) -> BinnedSampler:
    """Sec. 4.4.2's sampler over `pairs`: `bins_per_batch` angle bins of `batch_size /
    bins_per_batch` pairs, `hard_per_bin` of them with a tilted head."""
    per_bin, remainder = divmod(config.batch_size, config.bins_per_batch)
    if remainder or not 0 <= config.hard_per_bin <= per_bin:
        raise ConfigError(
            f"batch_size {config.batch_size} must split into {config.bins_per_batch} bins of "
            f"at least hard_per_bin={config.hard_per_bin} pairs"
        )
    return BinnedSampler.create(
        pairs.angles[:, 0],
        pairs.tilt,
        max_angle=config.max_angle,
        num_bins=config.num_bins,
        hard_tilt=config.hard_tilt,
        bins_per_batch=config.bins_per_batch,
        easy_per_bin=per_bin - config.hard_per_bin,
        hard_per_bin=config.hard_per_bin,
    )


def make_batch_fn(
    config: ml_collections.ConfigDict, pairs: eyes.EyePairs, sampler: BinnedSampler
) -> Callable[[int], dict[str, np.ndarray]]:
    """`batch_fn(step)` for `core.train`: this process's slice of the sampler's batch `step`."""

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        index = sampler.indices(step, config.seed)
        return parallel.process_slice(batch_of(pairs, index, config.angle_dims))

    return batch_fn
