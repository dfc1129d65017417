"""The MuJoCo Scenes dataset: renders of 1 to 5 random primitives on a platform (sec. 6.4.1).

The thesis's training set holds 50,000 RGB images of "simple 3D primitives (up to 5 objects)
scattered around a square platform" (sec. 6.4.1, fig. 6.8), rendered by the same MuJoCo
environment the agent draws with (`thesis_jax.spiral.envs.mujoco_scenes`). Here each scene has a
uniform number of objects in 1..5 with uniform shape, size and colour bins, on distinct grid cells
and without overlapping footprints, so every object stays visible.

Scene `i` of seed `s` depends on (s, i) alone, so a smaller `count` gives a prefix of a larger
one. `load_mujoco_scenes` caches images and scene arrays together in one `.npz` per
(count, seed, image size) under `<data_dir>/mujoco_scenes/` (default
`~/.cache/thesis_jax/mujoco_scenes/`), written to a temporary file and renamed; a damaged cache
file is regenerated with a warning. Held-out scenes (e.g. the MCMC baseline's targets,
sec. 6.4.6) come from another seed, e.g. `HOLDOUT_SEED`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from thesis_jax.core import files
from thesis_jax.spiral.envs.mujoco_scenes import (
    DEFAULT_CONFIG,
    NUM_FIELDS,
    SHAPES,
    SceneRenderer,
    ScenesConfig,
    cell_to_world,
    empty_scene,
    shape_geometry,
)

DEFAULT_COUNT = 50_000
MAX_DATASET_OBJECTS = 5
HOLDOUT_SEED = 1
CACHE_FORMAT_VERSION = 1
"""Bumped whenever scene sampling or rendering changes, so stale caches are not reused."""


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/thesis_jax/mujoco_scenes`; by default `~/.cache/thesis_jax/...`."""
    return files.cache_root() / "mujoco_scenes"


def mujoco_scenes_cache_path(
    count: int, seed: int, image_size: int, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Where `load_mujoco_scenes` keeps a dataset: one file per (count, seed, image size)."""
    directory = Path(data_dir).expanduser() / "mujoco_scenes" if data_dir else default_cache_dir()
    name = f"scenes-n{count}-seed{seed}-{image_size}px-v{CACHE_FORMAT_VERSION}.npz"
    return directory / name


def sample_dataset_scene(
    rng: np.random.Generator,
    config: ScenesConfig = DEFAULT_CONFIG,
    max_objects: int = MAX_DATASET_OBJECTS,
) -> np.ndarray:
    """One random scene, int32 [max_objects, 7]: 1..max_objects objects, uniform attributes.

    Objects are drawn one at a time and redrawn while their footprint would overlap an earlier
    object's (or their cell is taken).
    """
    scene = empty_scene(max_objects)
    count = int(rng.integers(1, max_objects + 1))
    footprints: list[tuple[float, float, float]] = []
    k = attempts = 0
    while k < count:
        attempts += 1
        if attempts > 10_000:
            raise ValueError(f"cannot place {count} non-overlapping objects with {config}")
        shape = int(rng.integers(len(SHAPES)))
        location = int(rng.integers(config.num_cells))
        size = int(rng.integers(len(config.object_sizes)))
        colour = rng.integers(config.color_bins, size=3)
        x, y = cell_to_world(location, config)
        radius = shape_geometry(shape, config.object_sizes[size])[2]
        if any(np.hypot(x - fx, y - fy) < radius + fr for fx, fy, fr in footprints):
            continue
        footprints.append((float(x), float(y), radius))
        scene[k] = (1, shape, location, size, *colour)
        k += 1
    return scene


def sample_dataset_scenes(
    count: int, seed: int = 0, config: ScenesConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """`count` scenes, int32 [count, 5, 7]; scene i is drawn from `default_rng([seed, i])`."""
    scenes = [sample_dataset_scene(np.random.default_rng([seed, i]), config) for i in range(count)]
    return np.asarray(scenes, np.int32).reshape(count, MAX_DATASET_OBJECTS, NUM_FIELDS)


def render_scenes(
    scenes: np.ndarray,
    config: ScenesConfig = DEFAULT_CONFIG,
    renderer: SceneRenderer | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Renders scenes (int [N, K, 7]) to uint8 [N, H, W, 3], with a progress bar when asked."""
    scenes = np.asarray(scenes)
    size = config.image_size
    images = np.empty((len(scenes), size, size, 3), np.uint8)
    own = renderer is None
    renderer = renderer or SceneRenderer(config, max_objects=scenes.shape[1])
    bar = None
    if progress:
        from thesis_jax.core.metrics import progress_bar

        bar = progress_bar(len(scenes), desc="rendering MuJoCo scenes")
    try:
        for i, scene in enumerate(scenes):
            images[i] = renderer.render_pixels(scene)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if own:
            renderer.close()
    return images


def _read_cache(path: Path, count: int, seed: int, image_size: int):
    with np.load(path, allow_pickle=False) as stored:
        images, scenes, meta = stored["images"], stored["scenes"], stored["meta"]
    expected_meta = [count, seed, image_size, CACHE_FORMAT_VERSION]
    if (
        meta.tolist() != expected_meta
        or images.shape != (count, image_size, image_size, 3)
        or images.dtype != np.uint8
        or scenes.shape != (count, MAX_DATASET_OBJECTS, NUM_FIELDS)
    ):
        raise ValueError(f"unexpected contents (meta {meta.tolist()}, images {images.shape})")
    return images, scenes.astype(np.int32)


def _write_cache(path: Path, images: np.ndarray, scenes: np.ndarray, meta: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, images=images, scenes=scenes, meta=np.asarray(meta))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_mujoco_scenes(
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int = 64,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The MuJoCo Scenes dataset (sec. 6.4.1), generated once and cached.

    Args:
      count: number of scenes (the thesis's training set has 50,000).
      seed: selects the scenes; use another seed (e.g. `HOLDOUT_SEED`) for held-out targets.
      data_dir: the cache goes to `<data_dir>/mujoco_scenes/`; default `default_cache_dir()`.
      image_size: side of the square renders.
      progress: show a progress bar while rendering.

    Returns:
      images: uint8 [count, image_size, image_size, 3].
      scenes: int32 [count, 5, 7], the rendered scene arrays (columns `OBJECT_FIELDS`).
    """
    for name, value, low in (("count", count, 1), ("seed", seed, 0), ("image_size", image_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    count, seed, image_size = int(count), int(seed), int(image_size)
    path = mujoco_scenes_cache_path(count, seed, image_size, data_dir)
    if path.exists():
        try:
            return _read_cache(path, count, seed, image_size)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"the MuJoCo Scenes cache {path} is unreadable ({err}); regenerating it",
                RuntimeWarning,
                stacklevel=2,
            )
    config = ScenesConfig(image_size=image_size)
    scenes = sample_dataset_scenes(count, seed, config)
    images = render_scenes(scenes, config, progress=progress)
    _write_cache(path, images, scenes, [count, seed, image_size, CACHE_FORMAT_VERSION])
    return images, scenes
