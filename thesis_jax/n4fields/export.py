"""A trained N4-Fields committee in one file: parameters, architecture and PCA.

`save_export` writes what inference needs besides the dictionary (the dictionary is rebuilt
from the training images, `committee.build_dictionaries`); `load_export` reads it back. The
format is flax's msgpack of {"arch": JSON of the `Architecture`, "params": {"0": ..., "1": ...},
"pca": {mean, components, variance, shape}}.

    params, arch, pca = load_export("runs/n4fields/bsds/n4/export.msgpack")
    edges = predict_edges(params, image, dictionaries, arch=arch, scales=(0.5, 1.0, 2.0))
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from thesis_jax.core.metrics import write_atomic
from thesis_jax.n4fields.model import Architecture
from thesis_jax.n4fields.targets import PCA


def save_export(
    path: str,
    params: Sequence[Any],
    arch: Architecture,
    pca: PCA | None,
    dtype: Any = np.float32,
) -> None:
    """Writes what inference needs: the committee's parameters, architecture and PCA.

    `dtype=np.float16` halves the file (for distributing a model); `load_export` returns
    float32 either way.
    """
    from flax import serialization

    payload = {
        "arch": json.dumps(dataclasses.asdict(arch)),
        "params": {
            str(i): jax.tree.map(lambda x: np.asarray(x, dtype), jax.device_get(p))
            for i, p in enumerate(params)
        },
    }
    if pca is not None:
        payload["pca"] = {
            "mean": pca.mean,
            "components": pca.components,
            "variance": pca.variance,
            "shape": np.asarray(pca.shape),
        }
    write_atomic(path, serialization.msgpack_serialize(payload))


def load_export(path: str) -> tuple[list[Any], Architecture, PCA | None]:
    """(committee parameters, architecture, PCA or None) from `save_export`'s file."""
    from flax import serialization

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no exported model at {path}; train it with experiments.n4fields")
    with open(path, "rb") as f:
        payload = serialization.msgpack_restore(f.read())
    arch_fields = json.loads(payload["arch"])
    for key, value in arch_fields.items():
        if isinstance(value, list):
            arch_fields[key] = tuple(value)
    arch = Architecture(**arch_fields)
    params = [
        jax.tree.map(lambda x: np.asarray(x, np.float32), payload["params"][k])
        for k in sorted(payload["params"], key=int)
    ]
    pca = None
    if "pca" in payload:
        p = payload["pca"]
        pca = PCA(
            mean=np.asarray(p["mean"]),
            components=np.asarray(p["components"]),
            variance=np.asarray(p["variance"]),
            shape=tuple(int(v) for v in p["shape"]),
        )
    return params, arch, pca
