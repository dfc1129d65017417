"""MuJoCo Scenes: the 3D CAD renderer SPIRAL writes programs for (thesis sec. 6.4.2, 6.4.6).

At every step the agent picks an object shape (4 MuJoCo primitives), a location on a 16 x 16 grid
laid over a square platform, a size (3 options) and a colour (4 bins for each of R, G, B), plus
the kind of action: add a new object, change the most recently emitted object, or skip the move
(sec. 6.4.2). One object therefore has M = 4 * 16^2 * 3 * 4^3 * 3 settings (sec. 6.4.6). Episodes
last 20 steps, so a scene holds up to 20 objects.

Action components, in spec order:

    shape     4    SHAPES: 0 sphere, 1 box, 2 cylinder, 3 capsule (lying along the image's x axis)
    location  256  grid cell, row-major: row 0 is the far edge of the platform (top of the image),
                   column 0 its left edge
    size      3    `ScenesConfig.object_sizes` (world units; the platform spans [-1, 1]^2)
    red       4    colour bins; bin b is intensity b / (color_bins - 1)
    green     4
    blue      4
    mode      3    MODES: 0 add a new object, 1 modify the last emitted object (adds one when the
                   scene is still empty), 2 skip (the scene is left unchanged)

A scene is an int32 array [max_objects, 7] whose columns are OBJECT_FIELDS: a presence flag and the
six object attributes above, in emission order. The same array describes the agent's scenes, the
dataset's (sec. 6.4.1) and the latent execution traces of the MCMC baseline (sec. 6.4.6).

Rendering is offscreen with `mujoco.Renderer` (64 x 64 RGB by default): a fixed camera looks down
at an angle on a grey platform lit by one directional light and the headlight; shadows are off
for speed. The MuJoCo model is compiled once with one geom slot per object; a scene is drawn by
editing the slots' type, size, position, orientation and colour in place (`model.geom_*`), and
slots without an object are put in a geom group the renderer does not draw. mujoco is imported
lazily, so importing `thesis_jax` does not need it; the OpenGL backend is chosen (MUJOCO_GL) the
first time this module imports mujoco, and a user-set MUJOCO_GL is respected.
"""

from __future__ import annotations

import atexit
import ctypes.util
import glob
import os
import sys
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from thesis_jax.spiral.envs.spec import (
    ActionSpec,
    ArraySpec,
    Observation,
    make_action_spec,
    observation_spec,
    validate_action,
)

SHAPES = ("sphere", "box", "cylinder", "capsule")
MODES = ("add", "modify", "skip")
MODE_ADD, MODE_MODIFY, MODE_SKIP = 0, 1, 2
OBJECT_FIELDS = ("present", "shape", "location", "size", "red", "green", "blue")
"""Columns of a scene array; columns 1: are the first six action components, in spec order."""
NUM_FIELDS = len(OBJECT_FIELDS)

PLATFORM_HALF_WIDTH = 1.0
PLATFORM_RGBA = (0.6, 0.6, 0.6, 1.0)
CAMERA_POSITION = (0.0, -3.6, 8.2)
CAMERA_TARGET = (0.0, -0.05, 0.0)
CAMERA_FOVY = 14.5
_HIDDEN_GROUP = 5  # geom group of empty slots; the renderer's MjvOption does not draw it

MUJOCO_INSTALL_HINT = "pip install mujoco  (or pip install 'thesis_jax[mujoco]')"
GL_INSTALL_HINT = (
    "MuJoCo renders offscreen through OSMesa (CPU; Debian package `libosmesa6`, MUJOCO_GL=osmesa) "
    "or EGL (GPU; Debian package `libegl1` plus the GPU driver's EGL vendor library, "
    "MUJOCO_GL=egl). Install one, e.g. `sudo apt-get install libosmesa6`, and set MUJOCO_GL "
    "before Python imports mujoco."
)


class MujocoUnavailableError(RuntimeError):
    """mujoco is not installed, or it cannot open an offscreen OpenGL context."""


class ScenesConfig(NamedTuple):
    """Shape of the MuJoCo Scenes action space and of its renders (sec. 6.4.2)."""

    image_size: int = 64
    grid_size: int = 16
    episode_length: int = 20
    object_sizes: tuple[float, ...] = (0.1, 0.15, 0.2)
    color_bins: int = 4
    multisamples: int = 4  # offscreen anti-aliasing samples; 0 renders ~3x faster, jagged

    @property
    def num_cells(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def channels(self) -> int:
        return 3


DEFAULT_CONFIG = ScenesConfig()
"""The thesis's setting: 64 x 64 renders, a 16 x 16 grid, 20 steps, 3 sizes, 4 colour bins."""


def _check_config(config: ScenesConfig) -> None:
    if config.image_size < 1 or config.grid_size < 1 or config.episode_length < 1:
        raise ValueError(f"image_size, grid_size and episode_length must be >= 1, got {config}")
    if not config.object_sizes or min(config.object_sizes) <= 0:
        raise ValueError(f"object_sizes must be positive, got {config.object_sizes}")
    if config.color_bins < 1 or config.multisamples < 0:
        raise ValueError(f"color_bins must be >= 1 and multisamples >= 0, got {config}")


def scenes_action_spec(config: ScenesConfig = DEFAULT_CONFIG) -> ActionSpec:
    """shape, location, size, red, green, blue, mode (see the module docstring)."""
    return make_action_spec(
        [
            ("shape", len(SHAPES)),
            ("location", config.num_cells),
            ("size", len(config.object_sizes)),
            ("red", config.color_bins),
            ("green", config.color_bins),
            ("blue", config.color_bins),
            ("mode", len(MODES)),
        ]
    )


# --------------------------------------------------------------------------------------------
# Scenes as arrays (pure numpy).


def empty_scene(max_objects: int) -> np.ndarray:
    """A scene with no objects: int32 [max_objects, 7], all zeros."""
    return np.zeros((max_objects, NUM_FIELDS), np.int32)


def num_objects(scene: np.ndarray) -> int:
    """How many objects a scene shows (rows with the presence flag set)."""
    return int(np.count_nonzero(np.asarray(scene)[..., 0]))


def attribute_ranges(config: ScenesConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Number of values of each scene column (OBJECT_FIELDS order), int32 [7]."""
    return np.array(
        [2, len(SHAPES), config.num_cells, len(config.object_sizes)] + [config.color_bins] * 3,
        np.int32,
    )


def validate_scene(scene: Any, config: ScenesConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Checks a scene array (shape [K, 7], integer values in range); returns it as int32."""
    array = np.asarray(scene)
    if array.ndim != 2 or array.shape[1] != NUM_FIELDS:
        raise ValueError(
            f"a scene is [max_objects, {NUM_FIELDS}] ({OBJECT_FIELDS}), got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_):
        raise TypeError(f"a scene holds integers, got dtype {array.dtype}")
    array = array.astype(np.int32)
    ranges = attribute_ranges(config)
    bad = (array < 0) | (array >= ranges)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"scene[{row}, {col}] ({OBJECT_FIELDS[col]}) = {array[row, col]} is out of range "
            f"[0, {ranges[col]})"
        )
    return array


def apply_action(
    scene: np.ndarray, action: np.ndarray, config: ScenesConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """The scene after one action (int [7] in spec order); the environment's semantics.

    add: the object goes to the first empty row. modify: the last emitted object (the present row
    with the highest index) takes the new attributes; with no object yet it adds one. skip: the
    scene is returned unchanged. Raises ValueError when adding to a full scene.
    """
    scene = np.array(scene, np.int32, copy=True)
    action = np.asarray(action)
    mode = int(action[-1])
    if mode == MODE_SKIP:
        return scene
    present = np.flatnonzero(scene[:, 0])
    if mode == MODE_MODIFY and present.size:
        row = int(present[-1])
    else:
        empty = np.flatnonzero(scene[:, 0] == 0)
        if not empty.size:
            raise ValueError(f"the scene already holds {len(scene)} objects; cannot add another")
        row = int(empty[0])
    scene[row, 0] = 1
    scene[row, 1:] = action[: NUM_FIELDS - 1]
    return scene


def scene_from_actions(
    actions: np.ndarray, config: ScenesConfig = DEFAULT_CONFIG, max_objects: int | None = None
) -> np.ndarray:
    """Replays actions (int [T, 7], spec order) from an empty scene of `max_objects` (default T)."""
    actions = np.asarray(actions)
    scene = empty_scene(max_objects or max(len(actions), 1))
    for action in actions:
        scene = apply_action(scene, action, config)
    return scene


def cell_to_world(location: Any, config: ScenesConfig = DEFAULT_CONFIG) -> tuple[Any, Any]:
    """Grid cell (row-major) -> (x, y) world coordinates of the cell's centre on the platform.

    Columns grow along +x (image right), rows along -y (towards the camera, image down).
    """
    location = np.asarray(location)
    row, col = location // config.grid_size, location % config.grid_size
    cell = 2.0 * PLATFORM_HALF_WIDTH / config.grid_size
    x = -PLATFORM_HALF_WIDTH + (col + 0.5) * cell
    y = PLATFORM_HALF_WIDTH - (row + 0.5) * cell
    return x, y


def color_value(bins: Any, config: ScenesConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Colour bin(s) -> intensity in [0, 1]: bin 0 is 0, the last bin is 1."""
    return np.asarray(bins, np.float64) / max(config.color_bins - 1, 1)


def shape_geometry(shape: int, size: float) -> tuple[tuple[float, float, float], float, float]:
    """(MuJoCo geom size, height of the centre above the platform, footprint radius) of an object.

    `size` is the object's scale s: a sphere of radius s, a cube of half-side 0.8 s, an upright
    cylinder of radius s and half-height 0.8 s, a capsule of radius 0.5 s and half-length 0.8 s
    lying along x. The footprint radius bounds the object's extent on the platform.
    """
    if shape == 0:
        return (size, 0.0, 0.0), size, size
    if shape == 1:
        half = 0.8 * size
        return (half, half, half), half, half * np.sqrt(2.0)
    if shape == 2:
        return (size, 0.8 * size, 0.0), 0.8 * size, size
    if shape == 3:
        return (0.5 * size, 0.8 * size, 0.0), 0.5 * size, 1.3 * size
    raise ValueError(f"shape must be in [0, {len(SHAPES)}), got {shape}")


# --------------------------------------------------------------------------------------------
# mujoco and its OpenGL backend.


def default_gl_backend() -> str:
    """The MUJOCO_GL used when the user sets none: EGL where a GPU is visible, else OSMesa.

    A GPU counts as visible through an NVIDIA device node or a DRI render node; EGL also serves
    (through Mesa's software rasterizer) when OSMesa is not installed but EGL is.
    """
    has_egl = ctypes.util.find_library("EGL") is not None
    has_osmesa = ctypes.util.find_library("OSMesa") is not None
    gpu_nodes = glob.glob("/dev/nvidia[0-9]*") + glob.glob("/dev/dri/renderD*")
    if has_egl and any(os.access(node, os.R_OK | os.W_OK) for node in gpu_nodes):
        return "egl"
    if has_osmesa or not has_egl:
        return "osmesa"
    return "egl"


def _preload_osmesa() -> None:
    """Loads OSMesa with RTLD_DEEPBIND so Mesa's LLVM binds to itself, not to another LLVM.

    TensorFlow (imported by tensorflow-datasets) exports LLVM symbols of its own version into the
    process; Mesa's llvmpipe, which OSMesa renders with, then binds to some of them and crashes
    in its first draw (a segfault in mjr_render). Loading libOSMesa with RTLD_DEEPBIND before
    PyOpenGL does makes the library and its dependencies resolve their own symbols first; the
    later load by PyOpenGL reuses this handle.
    """
    name = ctypes.util.find_library("OSMesa")
    if name is not None:
        try:
            ctypes.CDLL(name, mode=os.RTLD_DEEPBIND | os.RTLD_LOCAL)
        except OSError:  # PyOpenGL will report the missing library with its own message
            pass


def import_mujoco() -> Any:
    """Imports mujoco, first setting MUJOCO_GL (if unset) to `default_gl_backend()`."""
    if "mujoco" not in sys.modules:
        if not os.environ.get("MUJOCO_GL"):
            os.environ["MUJOCO_GL"] = default_gl_backend()
        if os.environ["MUJOCO_GL"] == "osmesa":
            _preload_osmesa()
    try:
        import mujoco
    except ImportError as err:
        raise MujocoUnavailableError(
            f"the MuJoCo Scenes environment needs the `mujoco` package: {MUJOCO_INSTALL_HINT}"
        ) from err
    return mujoco


def _camera_axes(position: tuple[float, ...], target: tuple[float, ...]) -> np.ndarray:
    """MuJoCo `xyaxes` of a camera at `position` looking at `target` with +z up in the image."""
    forward = np.subtract(target, position, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.concatenate([right, up])


def _scene_xml(config: ScenesConfig, num_slots: int, slot_shapes: tuple[int, ...] = ()) -> str:
    """The MJCF model: platform, light, camera and `num_slots` hidden object geoms."""
    axes = " ".join(f"{v:.6f}" for v in _camera_axes(CAMERA_POSITION, CAMERA_TARGET))
    camera = " ".join(f"{v:g}" for v in CAMERA_POSITION)
    half, grey = PLATFORM_HALF_WIDTH, " ".join(f"{v:g}" for v in PLATFORM_RGBA)
    slots = "\n".join(
        f'    <geom name="object{k}" type="{SHAPES[slot_shapes[k] if k < len(slot_shapes) else 0]}"'
        f' size="0.1 0.1 0.1" pos="0 0 -1" group="{_HIDDEN_GROUP}" contype="0" conaffinity="0"/>'
        for k in range(num_slots)
    )
    return f"""<mujoco model="mujoco_scenes">
  <statistic extent="2" center="0 0 0"/>
  <visual>
    <global offwidth="{config.image_size}" offheight="{config.image_size}"/>
    <quality shadowsize="0" offsamples="{config.multisamples}"/>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
  </visual>
  <worldbody>
    <light directional="true" pos="0 0 3" dir="0.3 0.5 -1" diffuse="0.6 0.6 0.6"
           specular="0.2 0.2 0.2" castshadow="false"/>
    <camera name="view" pos="{camera}" xyaxes="{axes}" fovy="{CAMERA_FOVY:g}"/>
    <geom name="platform" type="box" size="{half:g} {half:g} 0.02" pos="0 0 -0.02"
          rgba="{grey}" contype="0" conaffinity="0"/>
{slots}
  </worldbody>
</mujoco>"""


_UNREACHABLE_RENDERERS: list[Any] = []
"""mujoco.Renderer objects whose SceneRenderer was garbage-collected without `close()`.

Freeing a GL context from a garbage-collector callback is unsafe: collection can run inside
another renderer's `render`, after it made its own context current and before it draws, and
freeing a context there leaves none current, so the draw crashes (seen as segfaults in
mjr_render under OSMesa). Such renderers are parked here and closed at the next safe point:
when a renderer is created or renders, and at exit.
"""


def _park_renderer(renderer: Any) -> None:
    _UNREACHABLE_RENDERERS.append(renderer)


def _close_unreachable_renderers() -> None:
    while _UNREACHABLE_RENDERERS:
        _UNREACHABLE_RENDERERS.pop().close()


atexit.register(_close_unreachable_renderers)


class SceneRenderer:
    """Renders scene arrays with one compiled MuJoCo model and one offscreen GL context.

    The model holds `max_objects` geom slots; `render` edits them in place (type, size, position,
    orientation, colour, visibility group) and draws through the fixed camera. Close it with
    `close()` or use it as a context manager. One dropped without `close()` is closed at the next
    safe point after it is garbage-collected (see `_UNREACHABLE_RENDERERS`).
    """

    def __init__(self, config: ScenesConfig = DEFAULT_CONFIG, max_objects: int | None = None):
        _check_config(config)
        self.config = config
        self.max_objects = int(max_objects or config.episode_length)
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        _close_unreachable_renderers()
        mujoco = import_mujoco()
        self._mujoco = mujoco
        self._model = mujoco.MjModel.from_xml_string(_scene_xml(config, self.max_objects))
        self._data = mujoco.MjData(self._model)
        self._slots = np.array(
            [
                mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_GEOM, f"object{k}")
                for k in range(self.max_objects)
            ]
        )
        self._geom_types = np.array(
            [getattr(mujoco.mjtGeom, f"mjGEOM_{name.upper()}") for name in SHAPES], np.int32
        )
        self._option = mujoco.MjvOption()
        self._option.geomgroup[_HIDDEN_GROUP] = 0
        self._camera = mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_CAMERA, "view")
        size = config.image_size
        try:
            self._renderer = mujoco.Renderer(self._model, size, size, max_geom=self.max_objects + 8)
        except Exception as err:
            backend = os.environ.get("MUJOCO_GL", "")
            raise MujocoUnavailableError(
                f"MuJoCo could not open an offscreen OpenGL context (MUJOCO_GL={backend!r}): "
                f"{type(err).__name__}: {err}\n{GL_INSTALL_HINT}"
            ) from err
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_FOG"):
            self._renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False
        # Unreachable without close(): park the GL renderer (see _UNREACHABLE_RENDERERS).
        self._finalizer = weakref.finalize(self, _park_renderer, self._renderer)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Frees the GL context; `render` raises afterwards. Safe to call twice."""
        if self._finalizer.detach() is not None:
            self._renderer.close()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _set_scene(self, scene: np.ndarray) -> None:
        model, config = self._model, self.config
        sizes = config.object_sizes
        for k, slot in enumerate(self._slots):
            if k >= len(scene) or not scene[k, 0]:
                model.geom_group[slot] = _HIDDEN_GROUP
                continue
            _, shape, location, size, red, green, blue = (int(v) for v in scene[k])
            geom_size, height, _ = shape_geometry(shape, sizes[size])
            x, y = cell_to_world(location, config)
            model.geom_type[slot] = self._geom_types[shape]
            model.geom_size[slot] = geom_size
            model.geom_pos[slot] = (x, y, height)
            # Capsules lie along x: their axis (geom z) is turned onto the world x axis.
            model.geom_quat[slot] = (
                (np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0) if shape == 3 else (1.0, 0.0, 0.0, 0.0)
            )
            model.geom_rgba[slot, :3] = color_value((red, green, blue), config)
            model.geom_rgba[slot, 3] = 1.0
            model.geom_group[slot] = 0

    def render_pixels(self, scene: np.ndarray) -> np.ndarray:
        """Renders a scene (int [K <= max_objects, 7]) to uint8 [H, W, 3]."""
        if self.closed:
            raise RuntimeError("this SceneRenderer is closed; create a new one")
        scene = validate_scene(scene, self.config)
        if len(scene) > self.max_objects:
            raise ValueError(
                f"the scene has {len(scene)} rows but this renderer has {self.max_objects} slots"
            )
        _close_unreachable_renderers()
        self._set_scene(scene)
        mujoco = self._mujoco
        mujoco.mj_kinematics(self._model, self._data)
        mujoco.mj_camlight(self._model, self._data)
        self._renderer.update_scene(self._data, camera=self._camera, scene_option=self._option)
        return self._renderer.render()

    def render(self, scene: np.ndarray) -> np.ndarray:
        """Renders a scene (int [K <= max_objects, 7]) to float32 [H, W, 3] in [0, 1]."""
        return self.render_pixels(scene).astype(np.float32) / np.float32(255.0)


def render_scene(
    scene: np.ndarray,
    config: ScenesConfig = DEFAULT_CONFIG,
    renderer: SceneRenderer | None = None,
) -> np.ndarray:
    """Renders one scene to float32 [H, W, 3] in [0, 1].

    Without a `renderer`, a temporary one is built and closed (tens of milliseconds); pass a
    `SceneRenderer` to render many scenes.
    """
    if renderer is not None:
        return renderer.render(scene)
    with SceneRenderer(config, max_objects=max(len(np.asarray(scene)), 1)) as temporary:
        return temporary.render(scene)


# --------------------------------------------------------------------------------------------
# The environment.


class MujocoScenes:
    """The MuJoCo Scenes environment (sec. 6.4.2), following `spec.Environment`.

    Deterministic: `reset`'s seed is accepted for the common interface and ignored. Skipping
    does not re-render. After `episode_length` actions the episode is over and `step` raises
    until `reset`.
    """

    def __init__(
        self, config: ScenesConfig = DEFAULT_CONFIG, renderer: SceneRenderer | None = None
    ):
        _check_config(config)
        if renderer is not None and (
            renderer.config != config or renderer.max_objects < config.episode_length
        ):
            raise ValueError(
                "the renderer must share the environment's config and have at least "
                f"episode_length={config.episode_length} slots"
            )
        self.config = config
        self._owns_renderer = renderer is None
        self.renderer = renderer or SceneRenderer(config, config.episode_length)
        self._spec = scenes_action_spec(config)
        self._empty_canvas = self.renderer.render(empty_scene(config.episode_length))
        self.reset()

    def action_spec(self) -> ActionSpec:
        return self._spec

    def observation_spec(self) -> Mapping[str, ArraySpec]:
        size = self.config.image_size
        return observation_spec(self._spec, size, size, self.config.channels)

    @property
    def scene(self) -> np.ndarray:
        """The current scene, int32 [episode_length, 7] (a copy)."""
        return self._scene.copy()

    @property
    def canvas(self) -> np.ndarray:
        return self._canvas.copy()

    def _observation(self) -> Observation:
        return Observation(
            canvas=self._canvas.copy(),
            step=np.asarray(self._step, np.int32),
            last_action=self._last_action.copy(),
            done=np.asarray(self._step >= self.config.episode_length),
        )

    def reset(self, seed: int | None = None) -> Observation:
        self._scene = empty_scene(self.config.episode_length)
        self._canvas = self._empty_canvas.copy()
        self._step = 0
        self._last_action = np.zeros(len(self._spec), np.int32)
        return self._observation()

    def step(self, action: Mapping[str, int]) -> Observation:
        """Applies one action {component: int}; raises on bad actions or a finished episode."""
        array = validate_action(action, self._spec)
        if self._step >= self.config.episode_length:
            raise RuntimeError(
                f"the episode is over after {self.config.episode_length} actions; call reset()"
            )
        scene = apply_action(self._scene, array, self.config)
        if not np.array_equal(scene, self._scene):
            self._scene = scene
            self._canvas = self.renderer.render(scene)
        self._step += 1
        self._last_action = array
        return self._observation()

    def close(self) -> None:
        if self._owns_renderer:
            self.renderer.close()

    def __enter__(self) -> MujocoScenes:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
