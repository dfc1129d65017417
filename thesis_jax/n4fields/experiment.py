"""Training and inference of the models of one N4-Fields experiment (thesis sec. 3.3.3, 3.4).

`run_model` trains a model's committee with the core loop (resumable, one folder per network:
`<workdir>/<model>/net<k>/` with checkpoints and metrics.jsonl holding the validation error of
fig. 3.6), exports it (`<model>/export.msgpack`), builds the dictionaries and infers every
evaluated image; its edge maps are cached in `<model>/predictions.npz`, so a finished model is
neither trained nor inferred again.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.core import parallel
from thesis_jax.core.metrics import is_main_process, write_atomic
from thesis_jax.core.presets import ConfigError
from thesis_jax.n4fields import committee, targets, train
from thesis_jax.n4fields.committee import MODELS
from thesis_jax.n4fields.datasets import EdgeData
from thesis_jax.n4fields.export import save_export
from thesis_jax.n4fields.sampler import PatchSampler, channel_mean, make_batch, sample_patches

AE_PCA_SAMPLES = 20_000  # C(256, 2) = 32,640 bytes per AE sample: 650 MB at this count


def check_config(config: ml_collections.ConfigDict) -> None:
    """Unknown models, impossible committee / scale / stride values or a batch that does not
    split over the devices raise ConfigError."""
    unknown = [m for m in config.models if m not in MODELS]
    if unknown or not config.models:
        raise ConfigError(
            f"config.models must name some of {tuple(MODELS)}, got {tuple(config.models)}"
        )
    if config.committee < 1:
        raise ConfigError(f"config.committee must be >= 1, got {config.committee}")
    if not config.scales or any(s <= 0 for s in config.scales):
        raise ConfigError(f"config.scales must be positive, got {tuple(config.scales)}")
    if not 1 <= config.stride <= targets.ANNOTATION_SIZE // 2:
        raise ConfigError(f"config.stride must be in 1..{targets.ANNOTATION_SIZE // 2}")
    parallel.check_batch_split(config.batch_size)


def network_config(
    config: ml_collections.ConfigDict, model: str, channels: int
) -> ml_collections.ConfigDict:
    """The training config of one network of `model`: the AE rate for n4_ae, the baselines'
    rates for central / patch, and as many input channels as the images have (4 for RGBD)."""
    net = ml_collections.ConfigDict(config.to_dict())
    if model == "n4_ae":
        net.learning_rate = config.learning_rate_ae
    elif model in ("central", "patch") and config.learning_rate_baselines:
        net.learning_rate = config.learning_rate_baselines
    if model == "patch" and config.get("learning_rate_patch", 0.0):
        net.learning_rate = config.learning_rate_patch
    net.model.in_channels = int(channels)
    return net


def _fixed_patches(
    config: ml_collections.ConfigDict, data: EdgeData, model: str, seed: int, count: int
) -> dict[str, np.ndarray]:
    """`count` patches, not rotated (PCA and validation samples)."""
    pairwise = MODELS[model].encoding == "pairwise"
    return sample_patches(
        data.images,
        data.annotations,
        np.random.default_rng([config.seed, seed]),
        count,
        segmentations=data.segmentations if pairwise else None,
        rotation="none",
        flip=False,
        annotator=config.annotator,
    )


def fit_targets(
    config: ml_collections.ConfigDict, data: EdgeData, model: str
) -> targets.PCA | None:
    """The PCA of the code head's targets (sec. 3.3.2 step 1; eq. 3.4.1 for n4_ae)."""
    if MODELS[model].head != "code":
        return None
    if MODELS[model].encoding == "pairwise":
        samples = _fixed_patches(config, data, model, 17, min(config.pca_samples, AE_PCA_SAMPLES))
        return targets.fit_pca(targets.pairwise_codes(samples["segmentation"]))
    return targets.fit_pca(
        _fixed_patches(config, data, model, 17, config.pca_samples)["annotation"]
    )


def validation_batch(
    config: ml_collections.ConfigDict, data: EdgeData, model: str, pca: targets.PCA | None
) -> dict[str, np.ndarray]:
    """`config.val_patches` held-out patches and their targets (fig. 3.6's validation set)."""
    samples = _fixed_patches(config, data, model, 23, config.val_patches)
    spec = MODELS[model]
    return make_batch(samples, head=spec.head, pca=pca, encoding=spec.encoding)


@functools.partial(jax.jit, static_argnames=("apply_fn", "hparams"))
def _held_out_loss(
    params: Any, batch: dict[str, jax.Array], rng: jax.Array, **statics
) -> jax.Array:
    return train.loss(params, batch, rng, train=False, **statics)[0]


def validation_error(state: core.TrainState, batch: dict[str, np.ndarray]) -> float:
    """The training objective on held-out patches without dropout (fig. 3.6's error)."""
    loss = _held_out_loss(
        state.params, batch, state.rng, apply_fn=state.apply_fn, hparams=state.hparams
    )
    return float(loss)


def init_network(
    config: ml_collections.ConfigDict, data: EdgeData, model: str, member: int
) -> core.TrainState:
    """The fresh state of committee member `member` of `model`: its rate and head, the
    training images' channel mean and, for the CNN baselines, the output bias at the log-odds
    of the boundary rate (`config.prior_bias`)."""
    net = network_config(config, model, data.images[0].shape[-1])
    spec = MODELS[model]
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), member)
    bias = None
    if spec.head != "code" and config.prior_bias:  # start the sigmoid at the boundary rate
        rate = float(np.clip(np.mean([a.mean() for a in data.annotations]), 1e-4, 0.5))
        bias = float(np.log(rate / (1 - rate)))
    return train.init(
        key, net, head=spec.head, channel_mean=channel_mean(data.images), output_bias=bias
    )


def train_network(
    config: ml_collections.ConfigDict,
    data: EdgeData,
    model: str,
    member: int,
    pca: targets.PCA | None,
    val_batch: dict[str, np.ndarray],
    workdir: str,
    mesh: jax.sharding.Mesh,
) -> core.LoopResult:
    """Trains committee member `member` of `model` (sec. 3.3.3) in workdir/<model>/net<k>."""
    spec = MODELS[model]
    state = init_network(config, data, model, member)
    parallel.local_batch_size(config.batch_size, mesh)  # fails early on an uneven split
    options = dict(rotation=config.rotation, flip=config.flip, annotator=config.annotator)
    pairwise = spec.encoding == "pairwise"
    # the device sampler where it can: the AE targets need the segmentations (numpy)
    sampler = None if pairwise else PatchSampler(data.images, data.annotations, **options)

    def batch_fn(step: int) -> dict[str, Any]:
        rng = np.random.default_rng([config.seed, member, step])
        if sampler is not None:
            samples = sampler(rng, config.batch_size)
            if jax.process_count() > 1:  # each process feeds its slice from host memory
                samples = jax.tree.map(np.asarray, samples)
        else:
            samples = sample_patches(
                data.images,
                data.annotations,
                rng,
                config.batch_size,
                segmentations=data.segmentations if pairwise else None,
                **options,
            )
        batch = make_batch(samples, head=spec.head, pca=pca, encoding=spec.encoding)
        return parallel.process_slice(batch)

    return core.train(
        state,
        train.update,
        batch_fn,
        workdir=os.path.join(workdir, model, f"net{member}"),
        mesh=mesh,
        eval_fn=lambda s: {"validation_error": validation_error(s, val_batch)},
        desc=f"n4fields/{model}/net{member}",
        **core.loop_options(config),
    )


def _load_predictions(path: str, count: int, extra: int) -> tuple[list, list] | None:
    if not os.path.isfile(path):
        return None
    with np.load(path) as archive:
        maps = [archive[k].astype(np.float32) for k in sorted(archive.files) if k[0] == "m"]
        more = [archive[k].astype(np.float32) for k in sorted(archive.files) if k[0] == "q"]
    return (maps, more) if len(maps) == count and len(more) == extra else None


def _save_predictions(path: str, maps: Sequence[np.ndarray], extra: Sequence[np.ndarray]) -> None:
    arrays = {f"map{i:05d}": m.astype(np.float16) for i, m in enumerate(maps)}
    arrays |= {f"qualitative{i:03d}": m.astype(np.float16) for i, m in enumerate(extra)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def run_model(
    config: ml_collections.ConfigDict,
    model: str,
    data: EdgeData,
    evaluated: EdgeData,
    workdir: str,
    mesh: jax.sharding.Mesh,
    extra_images: Sequence[np.ndarray] = (),
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Trains (or reloads) `model` on `data`, then infers the evaluated and the extra
    (qualitative) images: (maps, extra maps), or None if interrupted."""
    folder = os.path.join(workdir, model)
    predictions_path = os.path.join(folder, "predictions.npz")
    cached = _load_predictions(predictions_path, len(evaluated), len(extra_images))
    if cached is not None:
        absl_logging.info("%s: reusing %s", model, predictions_path)
        return cached
    images = [*evaluated.images, *extra_images]
    if MODELS[model].head is None:
        dictionary = committee.sift_dictionary(config, data)
        maps = committee.predict_model(config, model, images, None, None, [dictionary])
    else:
        pca = fit_targets(config, data, model)
        val_batch = validation_batch(config, evaluated, model, pca)
        states = []
        for member in range(config.committee):
            run = train_network(config, data, model, member, pca, val_batch, workdir, mesh)
            if run.interrupted:
                return None
            states.append(run.state)
        arch = states[0].hparams.arch
        params = [jax.device_get(s.params) for s in states]
        if is_main_process():
            save_export(os.path.join(folder, "export.msgpack"), params, arch, pca)
        dictionaries = None
        if MODELS[model].head == "code":
            dictionaries = committee.build_dictionaries(config, data, params, arch)
        maps = committee.predict_model(config, model, images, params, arch, dictionaries)
    # rounded as predictions.npz stores them, so a rerun that reloads them scores the same
    maps = [m.astype(np.float16).astype(np.float32) for m in maps]
    maps, extra = maps[: len(evaluated)], maps[len(evaluated) :]
    if is_main_process():
        _save_predictions(predictions_path, maps, extra)
    return maps, extra
