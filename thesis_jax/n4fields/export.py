"""A trained N4-Fields committee in one file: parameters, architecture and PCA.

`save_export` writes what inference needs besides the dictionary (the dictionary is rebuilt
from the training images, `committee.build_dictionaries`); `load_export` reads it back. The
format is flax's msgpack of {"arch": JSON of the `Architecture`, "params": {"0": ..., "1": ...},
"pca": {mean, components, variance, shape}}.

    params, arch, pca = load_export("runs/n4fields/bsds/n4/export.msgpack")
    edges = predict_edges(params, image, dictionaries, arch=arch, scales=(0.5, 1.0, 2.0))

An edge model (`save_edge_model` / `load_edge_model`) is the committee with its dictionaries,
small enough to ship (a compressed .npz: int8 fully connected kernels, float16 elsewhere, a
subsampled dictionary); `experiments.edges` runs one on the user's photos, by default the
shipped `SHIPPED["bsds"]`, and `experiments.edges_package` makes one from a run:

    model = load_edge_model("bsds")                  # or a file, or load_any_edge_model(run)
    edges = model.photo_edges(uint8_photo, scales=(0.5, 1.0), stride=2)
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from thesis_jax.core.metrics import write_atomic
from thesis_jax.n4fields.dictionary import Dictionary
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
    arch = _architecture(json.loads(payload["arch"]))
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


ASSETS = os.path.join(os.path.dirname(__file__), "assets")
SHIPPED = {"bsds": os.path.join(ASSETS, "n4fields_bsds_v1.npz")}
"""Edge models that ship with the package, by name (README "Edges of your own photos")."""

_ARCH = "__arch__"
_META = "__meta__"


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeModel:
    """Everything `predict_edges` needs, from one file: the committee, its architecture and
    each network's dictionary (codes of the same T training patches; their annotations shared).

    `meta` says where it came from (preset, training images, steps) and what it scored."""

    params: list[Any]
    arch: Architecture
    dictionaries: list[Dictionary]
    meta: dict[str, Any]

    def predict(
        self, image: np.ndarray, *, scales: Sequence[float] = (0.5, 1.0), stride: int = 1
    ) -> np.ndarray:
        """The (H, W) edge probabilities in [0, 1] of an (H, W, C) float image in [0, 1]."""
        from thesis_jax.n4fields.inference import predict_edges

        return predict_edges(
            self.params, image, self.dictionaries, arch=self.arch, scales=scales, stride=stride
        )

    def photo_edges(
        self,
        photo: np.ndarray,
        *,
        scales: Sequence[float] = (0.5, 1.0),
        stride: int = 1,
        max_side: int = 0,
    ) -> np.ndarray:
        """The (H, W) edge probabilities of uint8 (H, W, 3) pixels, at their size: a photo whose
        longer side exceeds `max_side` (0: never) is shrunk for the networks and its map
        enlarged back."""
        from skimage.transform import resize

        pixels = photo.astype(np.float32) / 255.0
        height, width = pixels.shape[:2]
        factor = max_side / max(height, width) if max_side else 1.0
        if factor < 1.0:
            shape = (max(1, round(height * factor)), max(1, round(width * factor)))
            pixels = resize(pixels, shape, order=1, anti_aliasing=True).astype(np.float32)
        edges = self.predict(pixels, scales=scales, stride=stride)
        if edges.shape != (height, width):
            edges = resize(edges, (height, width), order=1).astype(np.float32)
        return np.clip(edges, 0.0, 1.0)


def output_picture(
    edges: np.ndarray, *, thin: bool, threshold: float, invert: bool, stretch: bool = False
) -> np.ndarray:
    """An edge map as the uint8 picture `experiments.edges` writes: the probabilities as they
    are (`stretch`: over their 99.9th percentile), or the thin edges NMS keeps at or above
    `threshold`; `invert`: dark on white. (`thesis_jax.edges.edge_picture` draws maps for the
    report's figures.)"""
    if stretch and not thin:
        edges = np.clip(edges / max(float(np.percentile(edges, 99.9)), 1e-6), 0.0, 1.0)
    if thin:
        from thesis_jax.edges import edge_nms

        edges = np.where(edge_nms(edges) >= threshold, 1.0, 0.0)
    values = 1.0 - edges if invert else edges
    return np.round(values * 255.0).astype(np.uint8)


def resolve_edge_model(name_or_path: str) -> str:
    """The file of a shipped edge model's name, or `name_or_path` itself if it is a file."""
    from thesis_jax.core.files import resolve_shipped

    hint = "an .npz written by save_edge_model, an export.msgpack of experiments.n4fields,"
    return resolve_shipped(name_or_path, SHIPPED, "edge model", hint)


def save_edge_model(
    path: str,
    params: Sequence[Any],
    arch: Architecture,
    dictionaries: Sequence[Dictionary],
    *,
    size: int | None = None,
    meta: dict[str, Any] | None = None,
) -> str:
    """Writes a committee with its dictionaries in one compressed `.npz`, small enough to ship:
    the fully connected kernels in int8 with a scale per output unit (`INT8_MIN_SIZE`), other
    parameters and the codes in float16, annotations (means of binary maps) in uint8, the first
    `size` dictionary entries (random training patches, so any prefix is a random subsample).
    Returns the path."""
    from flax import traverse_util

    if arch.head != "code" or len(dictionaries) != len(params):
        raise ValueError("an edge model is a 'code' committee with one dictionary per network")
    count = min(len(d) for d in dictionaries) if size is None else int(size)
    annotations = np.asarray(dictionaries[0].annotations[:count], np.float32)
    arrays = {"dictionary/annotations": np.round(np.clip(annotations, 0, 1) * 255).astype(np.uint8)}
    for i, (p, d) in enumerate(zip(params, dictionaries, strict=True)):
        arrays[f"dictionary/codes/{i}"] = np.asarray(d.codes[:count], np.float16)
        flat = traverse_util.flatten_dict(jax.device_get(p), sep="/")
        for key, value in flat.items():
            arrays.update(_packed(f"params/{i}/{key}", np.asarray(value, np.float32)))
    arrays[_ARCH] = np.asarray(json.dumps(dataclasses.asdict(arch)))
    arrays[_META] = np.asarray(json.dumps({**(meta or {}), "dictionary_size": count}))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomic(path, buffer.getvalue())


INT8_MIN_SIZE = 100_000
"""Kernels of at least this many weights (the fully connected layers) are stored as int8 with
one float32 scale per output unit; the rest as float16."""


def _packed(key: str, value: np.ndarray) -> dict[str, np.ndarray]:
    """One parameter as stored: float16, or int8 + per-column scale for a large 2-D kernel."""
    if value.ndim != 2 or value.size < INT8_MIN_SIZE:
        return {key: value.astype(np.float16)}
    scale = np.maximum(np.abs(value).max(axis=0), 1e-12) / 127.0
    return {
        f"{key}:int8": np.round(value / scale).astype(np.int8),
        f"{key}:scale": scale.astype(np.float32),
    }


def _unpacked(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`_packed`'s entries back to float32 parameters by name."""
    out = {}
    for key, value in flat.items():
        if key.endswith(":int8"):
            name = key[: -len(":int8")]
            out[name] = value.astype(np.float32) * flat[f"{name}:scale"]
        elif not key.endswith(":scale"):
            out[key] = value.astype(np.float32)
    return out


def load_edge_model(name_or_path: str) -> EdgeModel:
    """The edge model in a `save_edge_model` file, or a shipped one by name (`SHIPPED`)."""
    from flax import traverse_util

    path = resolve_edge_model(name_or_path)
    try:
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files}
        arch = _architecture(json.loads(str(arrays.pop(_ARCH))))
        meta = json.loads(str(arrays.pop(_META)))
        annotations = arrays.pop("dictionary/annotations").astype(np.float32) / 255.0
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{path} is not an edge model written by save_edge_model: {error}"
        ) from None
    members = sorted({int(key.split("/")[1]) for key in arrays if key.startswith("params/")})
    params, dictionaries = [], []
    for i in members:
        prefix = f"params/{i}/"
        flat = _unpacked({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
        params.append(traverse_util.unflatten_dict(flat, sep="/"))
        codes = arrays[f"dictionary/codes/{i}"].astype(np.float32)
        dictionaries.append(Dictionary(codes=codes, annotations=annotations))
    return EdgeModel(params, arch, dictionaries, meta)


def _architecture(fields: dict[str, Any]) -> Architecture:
    return Architecture(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def edge_model_from_run(model_folder: str) -> EdgeModel:
    """The edge model of a run of `experiments.n4fields`: `<model_folder>/export.msgpack` and the
    dictionaries rebuilt as the run built them (its config.json one folder up names the training
    images and T)."""
    import ml_collections

    from thesis_jax.n4fields.committee import build_dictionaries
    from thesis_jax.n4fields.datasets import load_split

    params, arch, _ = load_export(os.path.join(model_folder, "export.msgpack"))
    config_path = os.path.join(os.path.dirname(os.path.abspath(model_folder)), "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"no {config_path}: the run's config names its training images")
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    config.search = "exact"
    train = load_split(config, config.train_split, config.train_images, False)
    dictionaries = build_dictionaries(config, train, params, arch)
    meta = {
        "preset": config.preset,
        "model": os.path.basename(os.path.normpath(model_folder)),
        "train_split": config.train_split,
        "train_images": len(train),
        "num_steps": config.num_steps,
        "committee": len(params),
        "scales": list(config.scales),
    }
    return EdgeModel(params, arch, dictionaries, meta)


def load_any_edge_model(name_or_path: str) -> EdgeModel:
    """A shipped model's name, a `save_edge_model` file, or a run's `export.msgpack` (or the
    model folder holding it; its dictionaries are rebuilt from the run's training images)."""
    path = os.path.expanduser(name_or_path)
    if os.path.isdir(path):
        path = os.path.join(path, "export.msgpack")
    if path.endswith(".msgpack"):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no {path}: experiments.n4fields writes one per model it trains"
            )
        return edge_model_from_run(os.path.dirname(path))
    return load_edge_model(name_or_path)
