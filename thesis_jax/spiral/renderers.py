"""The renderer a SPIRAL preset names, built from its config (thesis sec. 6.4.2).

    jax_paint   JaxPaint: the paint action space rendered inside the jitted step
    libmypaint  LibMyPaint: the reference painter, on the host (fig. 6.3)
    mujoco      MuJoCo Scenes: 3D scenes of primitives, on the host (sec. 6.4.2)

`paint_config` / `scenes_config` turn a preset's fields (canvas_size, grid_size, episode_length,
grayscale) into the environments' configs, `action_spec` gives the agent's action space,
`image_shape` its canvases' shape, and `make_env_factory` a picklable factory of one host
environment (worker processes and Ray actors rebuild it). Nothing here loads libmypaint or MuJoCo.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import ml_collections

from thesis_jax.spiral.envs import mujoco_scenes, spec

RENDERERS = ("jax_paint", "libmypaint", "mujoco")


def paint_config(config: ml_collections.ConfigDict) -> spec.PaintConfig:
    """The paint action space (JaxPaint and LibMyPaint) of a preset."""
    return spec.PaintConfig(
        canvas_size=config.canvas_size,
        grid_size=config.grid_size,
        episode_length=config.episode_length,
        grayscale=config.grayscale,
    )


def scenes_config(config: ml_collections.ConfigDict) -> mujoco_scenes.ScenesConfig:
    """The MuJoCo Scenes action space of a preset (`renderer="mujoco"`)."""
    return mujoco_scenes.ScenesConfig(
        image_size=config.canvas_size,
        grid_size=config.grid_size,
        episode_length=config.episode_length,
    )


def action_spec(config: ml_collections.ConfigDict) -> spec.ActionSpec:
    """The agent's action components, in the order the policy decodes them."""
    if config.renderer == "mujoco":
        return mujoco_scenes.scenes_action_spec(scenes_config(config))
    return spec.paint_action_spec(paint_config(config))


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """(H, W, C) of canvases and targets: grayscale presets have one channel."""
    return (config.canvas_size, config.canvas_size, 1 if config.grayscale else 3)


def make_env_factory(config: ml_collections.ConfigDict) -> Callable[[], spec.Environment]:
    """A picklable zero-argument factory of one host environment."""
    if config.renderer == "libmypaint":
        from thesis_jax.spiral.envs.libmypaint import LibMyPaint

        return functools.partial(LibMyPaint, paint_config(config))
    if config.renderer == "mujoco":
        return functools.partial(mujoco_scenes.MujocoScenes, scenes_config(config))
    raise ValueError(f"{config.renderer!r} is not a host renderer")
