"""A trained DeepWarp model in one file: architecture, parameters and BatchNorm statistics.

What inference (`thesis_jax.deepwarp.gaze`) needs from a run of `experiments.deepwarp`, without
orbax or the optimizer state. The format is flax's msgpack of {"arch": JSON of `Architecture`,
"params": ..., "batch_stats": ...}; `dtype=np.float16` halves the file (the shipped gaze model),
`load_export` returns float32 either way.

    save_export("deepwarp.msgpack", state.params, state.model_state, Architecture.from_config(c))
    params, model_state, arch = load_export("deepwarp.msgpack")
    out = arch.model().apply({"params": params, **model_state}, image, landmarks, angles)

A run's export in float16, as the shipped gaze model was made: `python -m
experiments.deepwarp_export --workdir=runs/gaze_varied`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from thesis_jax.core.metrics import write_atomic
from thesis_jax.deepwarp.model import DeepWarp, make_network


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything besides the weights that rebuilds the network and feeds it (sec. 4.3)."""

    variant: str = "cfw_lcm"
    widths: tuple[int, ...] = (16, 32, 16, 16)
    kernels: tuple[int, ...] = (5, 3, 3, 1)
    lcm_widths: tuple[int, ...] = (8, 8)
    crop_size: tuple[int, int] = (51, 41)  # W x H (sec. 4.3.1)
    angle_dims: int = 1  # 1: vertical; 2: vertical, horizontal (sec. 4.4.5)
    max_angle: float = 30.0  # the redirections the model was trained on: |angle| <= this

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> Architecture:
        """The architecture of an `experiments/configs/deepwarp.py` config."""
        model = config.model
        return cls(
            variant=model.variant,
            widths=tuple(model.widths),
            kernels=tuple(model.kernels),
            lcm_widths=tuple(model.lcm_widths),
            crop_size=tuple(config.crop_size),
            angle_dims=int(config.angle_dims),
            max_angle=float(config.max_angle),
        )

    def model(self) -> DeepWarp:
        return make_network(self)


def save_export(
    path: str | os.PathLike,
    params: Any,
    model_state: Mapping[str, Any],
    arch: Architecture,
    dtype: Any = np.float32,
) -> str:
    """Writes the model atomically; returns the path."""
    from flax import serialization

    def cast(tree: Any) -> Any:
        return jax.tree.map(lambda x: np.asarray(x, dtype), jax.device_get(tree))

    payload = {
        "arch": json.dumps(dataclasses.asdict(arch)),
        "params": cast(params),
        "batch_stats": cast(model_state.get("batch_stats", {})),
    }
    return write_atomic(path, serialization.msgpack_serialize(payload))


def load_export(path: str | os.PathLike) -> tuple[Any, dict[str, Any], Architecture]:
    """(params, model_state, architecture) from `save_export`'s file, float32."""
    from flax import serialization

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no exported DeepWarp model at {path}")
    with open(path, "rb") as f:
        try:
            payload = serialization.msgpack_restore(f.read())
            fields = json.loads(payload["arch"])
        except Exception as e:
            raise ValueError(f"{path} is not a DeepWarp export (save_export): {e}") from None
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = tuple(value)
    arch = Architecture(**fields)

    def floats(tree: Any) -> Any:
        return jax.tree.map(lambda x: np.asarray(x, np.float32), tree)

    model_state = {"batch_stats": floats(payload["batch_stats"])} if payload["batch_stats"] else {}
    return floats(payload["params"]), model_state, arch
