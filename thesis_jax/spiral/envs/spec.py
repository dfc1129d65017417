"""The interface every SPIRAL renderer follows (thesis sec. 6.4.2).

An environment exposes

    env.action_spec()       -> ActionSpec: ordered {component name: number of discrete choices}
    env.observation_spec()  -> {"canvas": ArraySpec, "step": ArraySpec, "last_action": ArraySpec}
    env.reset(seed=None)    -> Observation
    env.step(action)        -> Observation       # action: {component name: int}

The action spec is the single source the agent's decoder is built from: one categorical head per
component, in spec order. Observations carry the canvas (float32 in [0, 1], H x W x C), the
number of actions taken so far, the last action (int32, spec order; zeros after `reset`) and
whether the episode is over.

The paint action space (LibMyPaint and JaxPaint share it, fig. 6.3) and its decoding into
continuous stroke parameters live here too, so the two painters read an action the same way.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol

import numpy as np

ActionSpec = Mapping[str, int]
"""Ordered, read-only mapping from action component name to its number of discrete choices."""


class ArraySpec(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype
    minimum: float | None = None
    maximum: float | None = None


class Observation(NamedTuple):
    """What a renderer returns. A pytree, so batched versions stack along a leading axis."""

    canvas: np.ndarray  # float32 [H, W, C] in [0, 1]
    step: np.ndarray  # int32 [], actions taken in this episode
    last_action: np.ndarray  # int32 [num_components], spec order; zeros after reset
    done: np.ndarray  # bool [], True once `episode_length` actions have been taken


class Environment(Protocol):
    def action_spec(self) -> ActionSpec: ...

    def observation_spec(self) -> Mapping[str, ArraySpec]: ...

    def reset(self, seed: int | None = None) -> Observation: ...

    def step(self, action: Mapping[str, int]) -> Observation: ...


def make_action_spec(components: Mapping[str, int] | list[tuple[str, int]]) -> ActionSpec:
    """A read-only ordered spec; every component needs at least one choice."""
    items = list(components.items() if isinstance(components, Mapping) else components)
    for name, size in items:
        if int(size) < 1:
            raise ValueError(f"action component {name!r} needs at least one choice, got {size}")
    return MappingProxyType({name: int(size) for name, size in items})


def observation_spec(
    spec: ActionSpec, height: int, width: int, channels: int
) -> Mapping[str, ArraySpec]:
    return MappingProxyType(
        {
            "canvas": ArraySpec((height, width, channels), np.dtype(np.float32), 0.0, 1.0),
            "step": ArraySpec((), np.dtype(np.int32), 0, None),
            "last_action": ArraySpec((len(spec),), np.dtype(np.int32), 0, None),
            "done": ArraySpec((), np.dtype(np.bool_)),
        }
    )


def validate_action(action: Mapping[str, int], spec: ActionSpec) -> np.ndarray:
    """Checks an action against the spec; returns it as int32 [num_components] in spec order.

    Raises:
      TypeError: the action is not a mapping, or a value is not an integer.
      KeyError: a component is missing or unknown (the message lists the valid names).
      ValueError: a value is out of range (the message gives the range).
    """
    if not isinstance(action, Mapping):
        raise TypeError(
            f"an action is a mapping {{component: int}} with keys {list(spec)}, "
            f"got {type(action).__name__}"
        )
    missing = [name for name in spec if name not in action]
    unknown = [name for name in action if name not in spec]
    if missing or unknown:
        raise KeyError(
            f"action keys must be exactly {list(spec)}; missing {missing}, unknown {unknown}"
        )
    out = np.empty(len(spec), np.int32)
    for i, (name, size) in enumerate(spec.items()):
        value = action[name]
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"action[{name!r}] must be an integer, got {value!r}")
        if not 0 <= value < size:
            raise ValueError(f"action[{name!r}] = {value} is out of range [0, {size})")
        out[i] = value
    return out


def action_from_array(array: np.ndarray, spec: ActionSpec) -> dict[str, int]:
    """Inverse of `validate_action`: int [num_components] in spec order -> {component: int}."""
    array = np.asarray(array)
    if array.shape != (len(spec),):
        raise ValueError(f"expected shape ({len(spec)},) for spec {list(spec)}, got {array.shape}")
    return {name: int(v) for name, v in zip(spec, array, strict=True)}


# --------------------------------------------------------------------------------------------
# The paint action space (fig. 6.3, sec. 6.4.2).

PAINT_COMPONENTS = ("control", "end", "flag", "pressure", "size", "red", "green", "blue")
DEFAULT_BRUSH_SIZES = (1.0, 2.0, 4.0, 8.0, 12.0, 24.0)
"""Brush radii in pixels of a 64-pixel canvas; scaled with the canvas for other sizes."""


class PaintConfig(NamedTuple):
    """Shape of the paint action space, shared by LibMyPaint and JaxPaint."""

    canvas_size: int = 64
    grid_size: int = 32  # control and end points lie on a grid_size x grid_size grid
    episode_length: int = 20
    pressure_levels: int = 10
    brush_sizes: tuple[float, ...] = DEFAULT_BRUSH_SIZES
    color_bins: int = 20
    grayscale: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


def paint_action_spec(config: PaintConfig) -> ActionSpec:
    """control, end (grid cells, row-major), flag (1 paints, 0 jumps), pressure, size, r, g, b.

    Grayscale drops the colour components (the thesis's MNIST and Omniglot setting).
    """
    cells = config.grid_size * config.grid_size
    components = [
        ("control", cells),
        ("end", cells),
        ("flag", 2),
        ("pressure", config.pressure_levels),
        ("size", len(config.brush_sizes)),
    ]
    if not config.grayscale:
        components += [("red", config.color_bins), ("green", config.color_bins)]
        components += [("blue", config.color_bins)]
    return make_action_spec(components)


def grid_to_canvas(cell, config: PaintConfig, xp=np):
    """Grid cell index (row-major) -> (x, y) canvas coordinates of the cell's centre, float32.

    Works on numpy or jax.numpy arrays (pass `xp=jnp`).
    """
    cell = xp.asarray(cell)
    row, col = cell // config.grid_size, cell % config.grid_size
    step = config.canvas_size / config.grid_size
    x = (col.astype(xp.float32) + 0.5) * step
    y = (row.astype(xp.float32) + 0.5) * step
    return x, y


def pressure_value(level, config: PaintConfig, xp=np):
    """Pressure level -> pressure in (0, 1]: level k maps to (k + 1) / levels."""
    return (xp.asarray(level).astype(xp.float32) + 1.0) / config.pressure_levels


def brush_radius(size, config: PaintConfig, xp=np):
    """Size index -> brush radius in canvas pixels."""
    radii = xp.asarray(config.brush_sizes, dtype=xp.float32) * (config.canvas_size / 64.0)
    return radii[xp.asarray(size)]


def color_value(bin_, config: PaintConfig, xp=np):
    """Colour bin -> intensity in [0, 1] (bin 0 is 0, the last bin is 1)."""
    return xp.asarray(bin_).astype(xp.float32) / max(config.color_bins - 1, 1)


def start_position(config: PaintConfig) -> tuple[float, float]:
    """The brush starts at the upper-left corner of the canvas (sec. 6.4.2)."""
    return 0.0, 0.0


def bezier(p0, p1, p2, t, xp=np):
    """Quadratic Bezier (eq. 6.4.1): (1-t)^2 p0 + 2(1-t)t p1 + t^2 p2, broadcasting over t."""
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
