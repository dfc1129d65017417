"""Blocked Metropolis-Hastings over MuJoCo scene programs: SPIRAL's MCMC baseline (sec. 6.4.6).

To show how hard the MuJoCo Scenes search is (M^N traces, M = 4 * 16^2 * 3 * 4^3 * 3 and
N = 20), the thesis runs a general-purpose Metropolis-Hastings sampler on 100 held-out images
(fig. 6.10). The latent is an execution trace of up to 20 objects, each a block of a presence flag
and its attributes (shape, location, size, colour bins): a scene array, int32 [20, 7]. Each step
picks one block uniformly and redraws the whole block uniformly within its ranges; the proposal
renders to an image x' that is accepted with probability

    min(1, p(x_target | x') / p(x_target | x)),   p(x_target | x) = N(x_target; x, 0.25 I)

(the prior over traces is uniform and the proposal symmetric, so both cancel). Pixel values are in
[0, 1]. Every render is one evaluation; after each, the chain's l2 distance to the target (mean
squared pixel difference, the y axis of figs. 6.9 and 6.10) is recorded.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from thesis_jax.spiral.envs.mujoco_scenes import (
    MujocoScenes,
    SceneRenderer,
    attribute_ranges,
    empty_scene,
    validate_scene,
)

LIKELIHOOD_VARIANCE = 0.25
MAX_TRACE_OBJECTS = 20


class MHResult(NamedTuple):
    """One blocked Metropolis-Hastings run on one target image."""

    best_scene: np.ndarray  # int32 [K, 7], the lowest-l2 state the chain visited
    best_l2: float
    final_scene: np.ndarray  # int32 [K, 7], the chain's last state
    l2_history: np.ndarray  # float32 [num_evaluations], l2 of the chain's state after each render
    best_l2_history: np.ndarray  # float32 [num_evaluations], running minimum of l2_history
    acceptance_rate: float  # accepted proposals / proposals


def _as_float_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    return image.astype(np.float32)


def l2_distance(image: np.ndarray, target: np.ndarray) -> float:
    """Mean squared difference between two images with values in [0, 1] (figs. 6.9, 6.10)."""
    image, target = _as_float_image(image), _as_float_image(target)
    if image.shape != target.shape:
        raise ValueError(f"image {image.shape} and target {target.shape} differ in shape")
    return float(np.mean(np.square(image - target, dtype=np.float64)))


def gaussian_log_likelihood(
    image: np.ndarray, target: np.ndarray, variance: float = LIKELIHOOD_VARIANCE
) -> float:
    """log N(target; image, variance I) = -sum((target - image)^2) / (2 variance) + const."""
    image, target = _as_float_image(image), _as_float_image(target)
    if image.shape != target.shape:
        raise ValueError(f"image {image.shape} and target {target.shape} differ in shape")
    return float(-np.sum(np.square(target - image, dtype=np.float64)) / (2.0 * variance))


def mh_accept(
    current_log_likelihood: float, proposed_log_likelihood: float, uniform: float
) -> bool:
    """Metropolis-Hastings rule for a symmetric proposal and a uniform prior.

    Accepts when uniform < min(1, exp(proposed - current)); `uniform` is a U[0, 1) draw.
    """
    log_ratio = proposed_log_likelihood - current_log_likelihood
    return bool(log_ratio >= 0.0 or uniform < np.exp(log_ratio))


def propose_block(
    scene: np.ndarray, rng: np.random.Generator, ranges: np.ndarray
) -> tuple[np.ndarray, int]:
    """Redraws one uniformly chosen object block (presence flag and attributes) uniformly.

    `ranges` is the number of values of each column (`attribute_ranges`). Returns the proposed
    scene and the block index.
    """
    block = int(rng.integers(len(scene)))
    proposal = scene.copy()
    proposal[block] = rng.integers(ranges)
    return proposal, block


def blocked_mh(
    target_image: np.ndarray,
    num_evaluations: int,
    rng: np.random.Generator | int,
    renderer: SceneRenderer | MujocoScenes,
    *,
    max_objects: int = MAX_TRACE_OBJECTS,
    initial_scene: np.ndarray | None = None,
    variance: float = LIKELIHOOD_VARIANCE,
) -> MHResult:
    """Runs blocked Metropolis-Hastings towards `target_image` for `num_evaluations` renders.

    Args:
      target_image: [H, W, 3], float in [0, 1] or uint8, the renderer's image size.
      num_evaluations: renders in total, the initial state's included.
      rng: numpy Generator or seed.
      renderer: a SceneRenderer (or an environment, whose renderer is used) with at least
        `max_objects` slots.
      max_objects: blocks in the trace (the thesis uses 20, the episode length).
      initial_scene: the chain's start, int [max_objects, 7]; default the empty scene.
      variance: variance of the Gaussian likelihood (0.25 in the thesis).

    Returns:
      MHResult with the l2 curve of fig. 6.10 for this image.
    """
    if isinstance(renderer, MujocoScenes):
        renderer = renderer.renderer
    if num_evaluations < 1:
        raise ValueError(f"num_evaluations must be >= 1, got {num_evaluations}")
    if not 1 <= max_objects <= renderer.max_objects:
        raise ValueError(
            f"max_objects must be in [1, {renderer.max_objects}] (the renderer's slots), "
            f"got {max_objects}"
        )
    if variance <= 0:
        raise ValueError(f"variance must be positive, got {variance}")
    rng = np.random.default_rng(rng)
    target = _as_float_image(target_image)
    size = renderer.config.image_size
    if target.shape != (size, size, 3):
        raise ValueError(f"target_image must be ({size}, {size}, 3), got {target.shape}")
    if initial_scene is None:
        scene = empty_scene(max_objects)
    else:
        scene = validate_scene(initial_scene, renderer.config)
        if len(scene) != max_objects:
            raise ValueError(f"initial_scene must have {max_objects} rows, got {len(scene)}")
    ranges = attribute_ranges(renderer.config)

    image = renderer.render(scene)
    log_likelihood = gaussian_log_likelihood(image, target, variance)
    l2 = l2_distance(image, target)
    best_scene, best_l2 = scene, l2
    history = np.empty(num_evaluations, np.float32)
    history[0] = l2
    accepted = 0
    for evaluation in range(1, num_evaluations):
        proposal, _ = propose_block(scene, rng, ranges)
        proposed_image = renderer.render(proposal)
        proposed_log_likelihood = gaussian_log_likelihood(proposed_image, target, variance)
        if mh_accept(log_likelihood, proposed_log_likelihood, rng.random()):
            scene, log_likelihood = proposal, proposed_log_likelihood
            l2 = l2_distance(proposed_image, target)
            accepted += 1
            if l2 < best_l2:
                best_scene, best_l2 = scene, l2
        history[evaluation] = l2
    proposals = num_evaluations - 1
    return MHResult(
        best_scene=best_scene,
        best_l2=best_l2,
        final_scene=scene,
        l2_history=history,
        best_l2_history=np.minimum.accumulate(history),
        acceptance_rate=accepted / proposals if proposals else 0.0,
    )


def blocked_mh_curves(
    target_images: np.ndarray,
    num_evaluations: int,
    seed: int,
    renderer: SceneRenderer | MujocoScenes,
    *,
    max_objects: int = MAX_TRACE_OBJECTS,
    progress: bool = True,
) -> np.ndarray:
    """l2 vs. evaluations for each target (fig. 6.10): float32 [num_targets, num_evaluations].

    Target i runs its own chain from `default_rng([seed, i])`; average over axis 0 for the curve.
    """
    curves = np.empty((len(target_images), num_evaluations), np.float32)
    bar = None
    if progress:
        from thesis_jax.core.metrics import progress_bar

        bar = progress_bar(len(target_images), desc="blocked MH")
    try:
        for i, target in enumerate(target_images):
            result = blocked_mh(
                target,
                num_evaluations,
                np.random.default_rng([seed, i]),
                renderer,
                max_objects=max_objects,
            )
            curves[i] = result.l2_history
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return curves
