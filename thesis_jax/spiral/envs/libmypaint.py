"""The libmypaint painting environment of SPIRAL (thesis sec. 6.4.2, fig. 6.3).

The agent holds a brush over a white canvas. An action is a tuple of discrete decisions (see
`spec.paint_action_spec`): the control point p_c and the end point l_{t+1} on a 32 x 32 grid, a
flag (1 paints, 0 jumps), pressure, brush size and, for colour canvases, red, green and blue.
A paint action draws the quadratic Bezier curve of eq. (6.4.1),

    p(tau) = (1 - tau)^2 l_t + 2 (1 - tau) tau p_c + tau^2 l_{t+1},

with libmypaint's brush engine; a jump only moves the brush. Either way the next stroke starts at
l_{t+1}. The brush starts at the upper-left corner, l_0 = (0, 0).

How a stroke is rendered:

- The curve is sampled every `SAMPLE_SPACING` pixels (a 64-pixel canvas; scaled with the canvas)
  and every sample goes to `mypaint_brush_stroke_to` with the action's pressure, `SAMPLE_DTIME`
  seconds after the previous one, so the pointer moves at a constant speed and the brush's speed
  inputs do not depend on the stroke's length. The brush lays dabs along the path on its own
  (twelve per radius for the default brush), so a stroke that does not move (l_t = p_c =
  l_{t+1}) leaves no ink, as in MyPaint.
- Before the first sample the brush is reset and put down at l_t with zero pressure, so nothing
  connects a stroke to where the brush was before (a jump leaves no trail).
- Radius: `radius_logarithmic` = log(radius); colour: `color_h/s/v` from the RGB bins
  (grayscale canvases paint black).
- The brush file's random dab offsets, random radius, tracking noise and slow tracking would put
  ink away from the curve the action names (the default `classic/dry_brush` scatters dabs by
  up to 1.4 radii at full pressure) and make the stroke lag behind the pointer, so
  `STEADY_BRUSH_SETTINGS` turns them off; pass `brush_settings={}` to paint with the brush as
  its file defines it.

Episodes are a pure function of the actions: `reset` recreates the brush, which restarts its
random number generator from libmypaint's fixed seed, and repaints the canvas white. The `seed`
argument is accepted for the `Environment` interface and has nothing to choose.

Pixels live in 64 x 64 tiles of premultiplied 16-bit fix15 RGBA; `canvas()` composites them over
white and returns float32 [H, W, C] in [0, 1] (C = 1 for grayscale: the mean of R, G and B).
"""

import colorsys
import ctypes
import json
import math
import os
import pathlib
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from thesis_jax.spiral.envs import _mypaint_ffi as ffi
from thesis_jax.spiral.envs._mypaint_ffi import LibMyPaintUnavailableError
from thesis_jax.spiral.envs.spec import (
    ActionSpec,
    ArraySpec,
    Observation,
    PaintConfig,
    bezier,
    brush_radius,
    color_value,
    grid_to_canvas,
    observation_spec,
    paint_action_spec,
    pressure_value,
    start_position,
    validate_action,
)

__all__ = [
    "BRUSH_DIRS",
    "DEFAULT_BRUSH",
    "STEADY_BRUSH_SETTINGS",
    "BrushNotFoundError",
    "LibMyPaint",
    "LibMyPaintUnavailableError",
]

DEFAULT_BRUSH = "classic/dry_brush"
BRUSH_DIRS = (
    "/usr/share/mypaint-data/1.0/brushes",
    "/usr/local/share/mypaint-data/1.0/brushes",
)
"""Where the Debian/Ubuntu package `mypaint-brushes` (and a source install) put the brushes."""

STEADY_BRUSH_SETTINGS = MappingProxyType(
    {
        "slow_tracking": 0.0,
        "slow_tracking_per_dab": 0.0,
        "tracking_noise": 0.0,
        "offset_by_random": 0.0,
        "offset_by_speed": 0.0,
        "radius_by_random": 0.0,
    }
)
"""Brush settings fixed to a constant (inputs dropped) so that ink lands on the named curve."""

SAMPLE_SPACING = 2.0
"""Pixels (of a 64-pixel canvas) between consecutive pointer positions along a stroke."""

SAMPLE_DTIME = 0.05
"""Seconds between consecutive pointer positions; below libmypaint's 0.1 s pen-lift heuristic."""

_PUT_DOWN_DTIME = 1.0
"""Seconds before the zero-pressure event that puts the brush down at l_t: long enough for a
brush's slow tracking to arrive there, short of the 5 s after which libmypaint resets a brush."""

_PRESS_DTIME = 1e-3
"""Seconds of the zero-motion event that raises the pressure at the stroke's start."""


class BrushNotFoundError(FileNotFoundError):
    """A MyPaint brush file (or the brush directory) is missing."""


def _find_brush_dir(brush_dir: str | os.PathLike | None) -> pathlib.Path:
    candidates = (
        [pathlib.Path(brush_dir)] if brush_dir is not None else map(pathlib.Path, BRUSH_DIRS)
    )
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    searched = str(brush_dir) if brush_dir is not None else ", ".join(BRUSH_DIRS)
    raise BrushNotFoundError(
        f"no MyPaint brush directory at {searched}. The brushes come with the Debian package "
        f"mypaint-brushes: `{ffi.INSTALL_COMMAND}`; or pass brush_dir=<dir with *.myb files>."
    )


def _read_brush(brush: str, brush_dir: pathlib.Path, settings: Mapping[str, float]) -> bytes:
    """The brush file's JSON with `settings` fixed to constants (their inputs dropped)."""
    path = brush_dir / f"{brush}.myb"
    if not path.is_file():
        available = sorted(
            p.relative_to(brush_dir).with_suffix("").as_posix() for p in brush_dir.glob("*/*.myb")
        )
        preview = ", ".join(available[:8]) + (", ..." if len(available) > 8 else "")
        raise BrushNotFoundError(
            f"MyPaint brush {brush!r} not found: {path} does not exist. {brush_dir} has "
            f"{len(available)} brushes: {preview or 'none'}. The stock brushes come with the "
            f"Debian package mypaint-brushes (`{ffi.INSTALL_COMMAND}`)."
        )
    try:
        description = json.loads(path.read_text())
        description["settings"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a MyPaint brush in the JSON format (v3)") from error
    for name, value in settings.items():
        description["settings"][name] = {"base_value": float(value), "inputs": {}}
    return json.dumps(description).encode()


class LibMyPaint:
    """SPIRAL's libmypaint renderer (sec. 6.4.2); see the module docstring.

    Usage:

        with LibMyPaint(PaintConfig(grayscale=True)) as env:
            observation = env.reset()
            observation = env.step({"control": 40, "end": 300, "flag": 1, ...})
    """

    def __init__(
        self,
        config: PaintConfig | None = None,
        brush: str = DEFAULT_BRUSH,
        brush_dir: str | os.PathLike | None = None,
        brush_settings: Mapping[str, float] = STEADY_BRUSH_SETTINGS,
    ):
        """Loads libmypaint and the brush and allocates the canvas.

        Args:
          config: the action space and canvas (`spec.PaintConfig`; its defaults if None).
          brush: a brush file relative to `brush_dir`, without `.myb`.
          brush_dir: the directory with brush collections; by default the first of `BRUSH_DIRS`.
          brush_settings: brush settings (MyPaint names) fixed to constants on top of the file.

        Raises:
          LibMyPaintUnavailableError: libmypaint is not installed (the message says how to).
          BrushNotFoundError: the brush file or directory is missing.
          ValueError: an unknown setting name in `brush_settings`, or a malformed brush file.
        """
        config = PaintConfig() if config is None else config
        self._config = config
        self._spec = paint_action_spec(config)
        self._lib = ffi.load_library()
        for name in brush_settings:
            ffi.setting_id(self._lib, name)
        self._brush_json = _read_brush(brush, _find_brush_dir(brush_dir), brush_settings)
        self._setting = {
            name: ffi.setting_id(self._lib, name)
            for name in ("radius_logarithmic", "color_h", "color_s", "color_v")
        }
        self._tiles = math.ceil(config.canvas_size / ffi.TILE_SIZE)
        self._brush = None
        self._fixed_surface = self._lib.mypaint_fixed_tiled_surface_new(
            config.canvas_size, config.canvas_size
        )
        if not self._fixed_surface:
            raise MemoryError(f"libmypaint could not allocate a {config.canvas_size}^2 canvas")
        self._surface = self._lib.mypaint_fixed_tiled_surface_interface(self._fixed_surface)
        self._tiled_surface = ctypes.cast(self._surface, ffi.TiledSurfacePointer)
        self._brush = self._new_brush()
        self._position = start_position(config)
        self._step: int | None = None
        self._last_action = np.zeros(len(self._spec), np.int32)
        self._clear()

    # ------------------------------------------------------------------------------------------
    # Environment interface.

    def action_spec(self) -> ActionSpec:
        return self._spec

    def observation_spec(self) -> Mapping[str, ArraySpec]:
        size = self._config.canvas_size
        return observation_spec(self._spec, size, size, self._config.channels)

    def reset(self, seed: int | None = None) -> Observation:
        """Starts an episode: white canvas, brush at the upper-left corner, a fresh brush.

        `seed` has no effect: episodes are determined by the actions alone (module docstring).
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise TypeError(f"seed must be an integer or None, got {seed!r}")
        self._check_open()
        self._lib.mypaint_brush_unref(self._brush)
        self._brush = None
        self._brush = self._new_brush()
        self._clear()
        self._position = start_position(self._config)
        self._step = 0
        self._last_action = np.zeros(len(self._spec), np.int32)
        return self._observation()

    def step(self, action: Mapping[str, int]) -> Observation:
        """Paints (flag 1) or jumps (flag 0) to the action's end point.

        Raises:
          RuntimeError: the environment needs `reset()` (never reset, episode over, or closed).
          TypeError, KeyError, ValueError: a malformed action (see `spec.validate_action`).
        """
        self._check_open()
        if self._step is None:
            raise RuntimeError("call reset() before the first step()")
        if self._step >= self._config.episode_length:
            raise RuntimeError(
                f"the episode is over after {self._config.episode_length} steps; "
                "call reset() to start a new one"
            )
        values = validate_action(action, self._spec)
        decisions = dict(zip(self._spec, values.tolist(), strict=True))
        end = tuple(float(v) for v in grid_to_canvas(decisions["end"], self._config))
        if decisions["flag"] == 1:
            control = tuple(float(v) for v in grid_to_canvas(decisions["control"], self._config))
            self._paint(control, end, decisions)
        self._position = end
        self._step += 1
        self._last_action = values
        return self._observation()

    def canvas(self) -> np.ndarray:
        """The canvas composited over white: float32 [H, W, C] in [0, 1]."""
        self._check_open()
        size = self._config.canvas_size
        pixels = np.empty((self._tiles * ffi.TILE_SIZE,) * 2 + (4,), np.uint16)
        for ty in range(self._tiles):
            for tx in range(self._tiles):
                with ffi.tile(self._lib, self._tiled_surface, tx, ty, readonly=True) as tile:
                    rows = slice(ty * ffi.TILE_SIZE, (ty + 1) * ffi.TILE_SIZE)
                    cols = slice(tx * ffi.TILE_SIZE, (tx + 1) * ffi.TILE_SIZE)
                    pixels[rows, cols] = tile
        rgba = pixels[:size, :size].astype(np.float32) * (1.0 / ffi.FIX15_ONE)
        rgb = np.clip(rgba[..., :3] + (1.0 - rgba[..., 3:]), 0.0, 1.0)
        if self._config.grayscale:
            return rgb.mean(axis=-1, keepdims=True)
        return rgb

    @property
    def position(self) -> tuple[float, float]:
        """The brush location l_t as canvas (x, y)."""
        return self._position

    # ------------------------------------------------------------------------------------------
    # Resources.

    def close(self) -> None:
        """Frees the brush and the canvas; further calls raise. Safe to call twice."""
        lib = getattr(self, "_lib", None)
        if getattr(self, "_brush", None):
            lib.mypaint_brush_unref(self._brush)
        if getattr(self, "_surface", None):
            lib.mypaint_surface_unref(self._surface)
        self._brush = self._surface = self._tiled_surface = self._fixed_surface = None

    def __enter__(self) -> "LibMyPaint":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):
        self.close()

    # ------------------------------------------------------------------------------------------
    # Painting.

    def _check_open(self) -> None:
        if self._surface is None:
            raise RuntimeError("this LibMyPaint environment is closed")

    def _new_brush(self) -> ffi.BrushPointer:
        brush = self._lib.mypaint_brush_new()
        if not brush:
            raise MemoryError("libmypaint could not allocate a brush")
        self._lib.mypaint_brush_from_defaults(brush)
        if not self._lib.mypaint_brush_from_string(brush, self._brush_json):
            self._lib.mypaint_brush_unref(brush)
            raise ValueError("libmypaint rejected the brush file")
        return brush

    def _clear(self) -> None:
        for ty in range(self._tiles):
            for tx in range(self._tiles):
                with ffi.tile(self._lib, self._tiled_surface, tx, ty, readonly=False) as tile:
                    tile.fill(ffi.FIX15_ONE)

    def _paint(
        self, control: tuple[float, float], end: tuple[float, float], decisions: Mapping[str, int]
    ) -> None:
        """Strokes the Bezier curve from the current position through `control` to `end`."""
        config, lib, brush, surface = self._config, self._lib, self._brush, self._surface
        start = self._position
        pressure = float(pressure_value(decisions["pressure"], config))
        radius = float(brush_radius(decisions["size"], config))
        if config.grayscale:
            rgb = (0.0, 0.0, 0.0)
        else:
            rgb = tuple(float(color_value(decisions[c], config)) for c in ("red", "green", "blue"))
        for name, value in zip(
            ("color_h", "color_s", "color_v"), colorsys.rgb_to_hsv(*rgb), strict=True
        ):
            lib.mypaint_brush_set_base_value(brush, self._setting[name], value)
        lib.mypaint_brush_set_base_value(
            brush, self._setting["radius_logarithmic"], math.log(radius)
        )

        p0, p1, p2 = (np.asarray(p, np.float64) for p in (start, control, end))
        polygon_length = np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
        spacing = SAMPLE_SPACING * config.canvas_size / 64.0
        num_samples = max(1, math.ceil(polygon_length / spacing))
        tau = np.arange(1, num_samples + 1)[:, None] / num_samples
        samples = bezier(p0, p1, p2, tau).tolist()  # eq. (6.4.1)

        lib.mypaint_surface_begin_atomic(surface)
        lib.mypaint_brush_reset(brush)
        lib.mypaint_brush_new_stroke(brush)
        lib.mypaint_brush_stroke_to(brush, surface, *start, 0.0, 0.0, 0.0, _PUT_DOWN_DTIME)
        lib.mypaint_brush_stroke_to(brush, surface, *start, pressure, 0.0, 0.0, _PRESS_DTIME)
        for x, y in samples:
            lib.mypaint_brush_stroke_to(brush, surface, x, y, pressure, 0.0, 0.0, SAMPLE_DTIME)
        lib.mypaint_surface_end_atomic(surface, None)

    def _observation(self) -> Observation:
        return Observation(
            canvas=self.canvas(),
            step=np.asarray(self._step, np.int32),
            last_action=self._last_action.copy(),
            done=np.asarray(self._step >= self._config.episode_length),
        )
