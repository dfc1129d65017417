"""SPIRAL's renderers (thesis sec. 6.4.2), all behind the interface of `spec`.

    LibMyPaint     the reference painter: system libmypaint through ctypes (fig. 6.3)
    JaxPaint       the same action space in pure JAX, whole episodes in one jit (beyond the thesis)
    MujocoScenes   3D scenes of primitives rendered offscreen by MuJoCo
    BatchedEnv     many environments stepped together, in process or by a worker pool

Importing this package loads neither libmypaint nor MuJoCo; they load when an environment is made.
"""

from thesis_jax.spiral.envs.batched import BatchedEnv, WorkerError
from thesis_jax.spiral.envs.jax_paint import JaxPaint, PaintState, init_state, observe, render_step
from thesis_jax.spiral.envs.libmypaint import (
    BrushNotFoundError,
    LibMyPaint,
    LibMyPaintUnavailableError,
)
from thesis_jax.spiral.envs.mujoco_scenes import (
    MujocoScenes,
    MujocoUnavailableError,
    SceneRenderer,
    ScenesConfig,
    render_scene,
    scenes_action_spec,
)
from thesis_jax.spiral.envs.spec import (
    ActionSpec,
    ArraySpec,
    Environment,
    Observation,
    PaintConfig,
    paint_action_spec,
    validate_action,
)

__all__ = [
    "ActionSpec",
    "ArraySpec",
    "BatchedEnv",
    "BrushNotFoundError",
    "Environment",
    "JaxPaint",
    "LibMyPaint",
    "LibMyPaintUnavailableError",
    "MujocoScenes",
    "MujocoUnavailableError",
    "Observation",
    "PaintConfig",
    "PaintState",
    "SceneRenderer",
    "ScenesConfig",
    "WorkerError",
    "init_state",
    "observe",
    "paint_action_spec",
    "render_scene",
    "render_step",
    "scenes_action_spec",
    "validate_action",
]
