"""The models of Table 3.I as committees: their dictionaries and their edge maps (sec. 3.3.3, 3.4).

`MODELS` names every model an experiment can train: N4-Fields with the PCA codes of the
annotation (`n4`, sec. 3.3.2) or the pairwise encoding (`n4_ae`, eq. 3.4.1), the CNN baselines
CNN-central and CNN-patch, and SIFT + NNB. A network model is a committee of networks, each
with its own dictionary of the same T training patches (sec. 3.3.2, step 3; the codes differ
between networks); `predict_model` averages the committee over the preset's scales.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from thesis_jax.core.metrics import progress_bar
from thesis_jax.n4fields import descriptor_baseline, inference
from thesis_jax.n4fields.datasets import EdgeData
from thesis_jax.n4fields.dictionary import Dictionary, compute_codes
from thesis_jax.n4fields.model import Architecture, network
from thesis_jax.n4fields.sampler import PatchSampler


@dataclasses.dataclass(frozen=True)
class Model:
    """One row of Table 3.I: its title and the head its networks train (None: SIFT + NNB)."""

    title: str
    head: str | None
    encoding: str = "annotation"  # "pairwise": the code head regresses B(P) of eq. 3.4.1


MODELS = {
    "n4": Model("N4-fields", "code"),
    "n4_ae": Model("N4-fields, AE", "code", "pairwise"),
    "central": Model("CNN-central", "central"),
    "patch": Model("CNN-patch", "patch"),
    "sift": Model("SIFT + NNB", None),
}
DICTIONARY_CHUNK = 16_384


def dictionary_chunks(
    config: ml_collections.ConfigDict, train: EdgeData
) -> Iterator[tuple[jax.Array, np.ndarray]]:
    """The T dictionary patches (sec. 3.3.2, step 3) as (images, annotations) chunks: random
    training patches, not rotated, drawn on the device so that T = 10^6 never sits in memory
    as 34 x 34 pixels (14 GB) at once."""
    sampler = PatchSampler(
        train.images, train.annotations, rotation="none", flip=False, annotator=config.annotator
    )
    for start in range(0, config.dictionary_size, DICTIONARY_CHUNK):
        count = min(DICTIONARY_CHUNK, config.dictionary_size - start)
        chunk = sampler(np.random.default_rng([config.seed, 29, start]), count)
        yield chunk["image"], np.asarray(chunk["annotation"])


def _finish_dictionary(
    config: ml_collections.ConfigDict, codes: np.ndarray, annotations: np.ndarray
) -> Dictionary:
    if config.search == "pynndescent":
        return Dictionary(codes=codes, annotations=annotations).with_index(seed=config.seed)
    return Dictionary(  # kept on the accelerator between images
        codes=jax.device_put(codes), annotations=jax.device_put(annotations)
    )


def build_dictionaries(
    config: ml_collections.ConfigDict,
    train: EdgeData,
    params: Sequence[Any],
    arch: Architecture,
) -> list[Dictionary]:
    """One dictionary per committee network: the codes of the same T training patches."""
    apply_fn = network(arch).apply
    codes: list[list[np.ndarray]] = [[] for _ in params]
    annotations = []
    for images, chunk_annotations in dictionary_chunks(config, train):
        annotations.append(chunk_annotations)
        for member, p in enumerate(params):
            codes[member].append(compute_codes(p, images, apply_fn=apply_fn))
    annotations = np.concatenate(annotations)
    return [_finish_dictionary(config, np.concatenate(c), annotations) for c in codes]


def sift_dictionary(config: ml_collections.ConfigDict, train: EdgeData) -> Dictionary:
    """The SIFT + NNB baseline's dictionary over the same kind of T patches."""
    codes, annotations = [], []
    for images, chunk_annotations in dictionary_chunks(config, train):
        codes.append(descriptor_baseline.sift_descriptors(np.asarray(images)))
        annotations.append(chunk_annotations)
    return _finish_dictionary(config, np.concatenate(codes), np.concatenate(annotations))


def predict_model(
    config: ml_collections.ConfigDict,
    model: str,
    images: Sequence[np.ndarray],
    params: Sequence[Any] | None,
    arch: Architecture | None,
    dictionaries: Sequence[Dictionary] | None,
) -> list[np.ndarray]:
    """Each image's (H, W) map in [0, 1] by `model`: committee x scales (sec. 3.3.3)."""
    scales = tuple(config.scales)
    head = MODELS[model].head
    out = []
    bar = progress_bar(len(images), desc=f"infer {model}")
    for image in images:
        if head is None:
            edge_map = descriptor_baseline.predict_edges_sift(
                image, dictionaries[0], scales=scales, stride=config.stride, method=config.search
            )
        elif head == "code":
            edge_map = inference.predict_edges(
                list(params),
                image,
                list(dictionaries),
                arch=arch,
                scales=scales,
                stride=config.stride,
                method=config.search,
            )
        else:
            predict = inference.predict_central if head == "central" else inference.predict_patch
            edge_map = predict(list(params), image, arch=arch, scales=scales, stride=config.stride)
        out.append(np.asarray(edge_map, np.float32))
        bar.update(1)
    bar.close()
    return out
