"""Procedural eyes with known gaze and landmarks (thesis sec. 4.3.1, 4.4.1, 4.4.5, 4.4.6).

The renderer (`render_eye`) draws a patch of face around one eye: skin (per-identity tone,
procedural texture, shading of the socket, lid bulge and under-eye area by a directional light),
an eyeball whose sclera is shaded as a sphere (darker towards the corners), an iris (per-identity
colour, collarette, radial fibres, dark limbal ring) and pupil placed by rotating the eyeball
(iris centre = eyeball centre + d * (sin yaw cos pitch, -sin pitch), d = sqrt(eyeball radius^2 -
iris radius^2) ~ 0.9 eyeball radius the depth of the iris plane; the iris disc foreshortened by
the cosine of the gaze angle), a caruncle at the inner corner, one or two corneal glints fixed by
the light direction (they do not follow the gaze), upper and lower lids whose edges move with
pitch (the upper lid by 55-85% of the eyeball radius times sin(pitch), the lower lid less and
mostly when looking down; neither ever covers the pupil centre), a lid crease, the upper lid's
shadow on the eye, a lash line with lashes and a lower waterline. Every edge is antialiased
analytically (coverage from the signed distance over the pixel footprint). Appearance (skin, iris,
lid shape, eyeball and iris sizes, crease, lashes, textures) is a pure function of the integer
identity; head roll (usually within +-7 degrees, 20% of samples 8-15), scale, position, light
direction, intensity and colour, glints, pupil size, defocus and the sensor-noise level are
per-sample nuisance shared by the two images of a pair (the noise itself, zero-mean uniform, is
drawn independently for each image).

Pairs are rendered straight onto the crop's sampling grid (the grid `cut_eye_crop` would
bilinearly sample from a full `render_eye` image; the renderer is continuous, so this is that
crop without the resampling blur). Speed (51 x 41, margin 3, one process pinned to one core of
this project's 2-core development machine while other jobs kept both cores busy): 40,000 pairs in
47 s of CPU time (about 850 pairs/s; 65 s wall clock). Memory: about 57 KB per pair (float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from thesis_jax.data.eyes.appearance import (
    IDENTITY_SALT,
    NUISANCE_SALT,
    VARIED_SALT,
    apply_camera,
    check_appearance,
    draw_nuisance,
    identity_params,
    nuisance_for_seeds,
    varied_nuisance,
    vary_identities,
)
from thesis_jax.data.eyes.geometry import (
    DEFAULT_CROP_SIZE,
    NUM_LANDMARKS,
    EyePairs,
    check_size,
    crop_landmarks,
    enlarge_box,
    eye_crop_box,
    landmark_tilt,
)
from thesis_jax.data.eyes.shading import box_grid, make_scene, render_grid, scene_landmarks

RENDER_SIZE = (96, 80)
"""W x H of `render_eye` images; the corner distance R is about half the width."""
PITCH_LIMIT = 30.0
"""|pitch| of every rendered gaze stays within this (degrees)."""
YAW_LIMIT = 30.0
"""|yaw| stays within this when horizontal redirection is on (`two_d=True`)."""
YAW_SPREAD = 10.0
"""For vertical-only pairs, the shared yaw is uniform in [-YAW_SPREAD, YAW_SPREAD]."""


def render_eye(
    identity: int | ArrayLike,
    pitch: float | ArrayLike = 0.0,
    yaw: float | ArrayLike = 0.0,
    *,
    nuisance: int | ArrayLike = 0,
    roll: float | ArrayLike | None = None,
    noise_seed: int | None = None,
    size: tuple[int, int] = RENDER_SIZE,
    return_mask: bool = False,
    appearance: str = "default",
) -> tuple[np.ndarray, ...]:
    """Renders left-eye regions with known gaze and landmarks (the data of sec. 4.3.1, 4.4.1).

    All array arguments broadcast together; elements with the same `identity` look like the
    same person, elements with the same `nuisance` share head roll, scale, position, lighting,
    glints, pupil size and defocus. Sweeping `pitch` at fixed identity and nuisance gives one
    eye redirected over a range of angles (fig. 4.1).

    Args:
      identity: non-negative integer person ids.
      pitch: vertical gaze in degrees, positive = up.
      yaw: horizontal gaze in degrees, positive = pupil towards larger x.
      nuisance: non-negative integer seeds of the per-sample nuisance.
      roll: head roll in degrees (counter-clockwise on screen positive) replacing the one drawn
        from `nuisance`; 0 gives upright eyes.
      noise_seed: None for a clean render; else sensor noise (of the nuisance's level) drawn
        from this seed.
      size: (W, H) of the images; the corner distance R is about W / 2.
      return_mask: also return the coverage of the eye opening (the visible eyeball).
      appearance: "default", or "varied" (wider appearance, lighting and camera ranges: blur,
        contrast, gamma, saturation, white balance, noise; see `generate_eye_pairs`).

    Returns:
      images (..., H, W, 3) float32 in [0, 1], landmarks (..., 7, 2) float32 (x, y) image pixels
      in `LANDMARK_NAMES` order, and with `return_mask` masks (..., H, W) float32 in [0, 1].
    """
    width, height = check_size(size)
    arrays = np.broadcast_arrays(
        np.asarray(identity), np.asarray(pitch, np.float64), np.asarray(yaw, np.float64),
        np.asarray(nuisance), np.asarray(0.0 if roll is None else roll, np.float64),
    )  # fmt: skip
    shape = arrays[0].shape
    ids, pitch_flat, yaw_flat, seeds, roll_flat = (a.reshape(-1) for a in arrays)
    for name, values in (("identity", ids), ("nuisance", seeds)):
        if not np.issubdtype(values.dtype, np.integer) or np.any(values < 0):
            raise ValueError(f"{name} must be non-negative integers, got {values[:5]}")
    if not np.all(np.isfinite(pitch_flat) & np.isfinite(yaw_flat) & np.isfinite(roll_flat)):
        raise ValueError("pitch, yaw and roll must be finite")
    if np.any(np.abs(pitch_flat) >= 80) or np.any(np.abs(yaw_flat) >= 80):
        raise ValueError("|pitch| and |yaw| must be below 80 degrees")
    check_appearance(appearance)
    nuisance_params = nuisance_for_seeds(seeds)
    looks = identity_params(ids)
    camera = None
    if appearance == "varied":
        looks = vary_identities(looks, ids)
        draws = np.concatenate(
            [np.random.default_rng([VARIED_SALT, 1, int(s)]).random((1, 14)) for s in seeds]
        )
        nuisance_params, camera = varied_nuisance(nuisance_params, draws)
    if roll is not None:
        nuisance_params["roll"] = roll_flat
    scene = make_scene(looks, nuisance_params, pitch_flat, yaw_flat, (width, height))
    landmarks = scene_landmarks(scene)
    n = len(ids)
    xs = np.broadcast_to(np.arange(width, dtype=np.float32)[None, None, :], (n, 1, width))
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[None, :, None], (n, height, 1))
    noise = None if noise_seed is None else np.random.default_rng([NUISANCE_SALT, 1, noise_seed])
    images, masks = render_grid(
        scene, xs, ys, np.ones(n), None if camera else noise, with_masks=return_mask
    )
    if camera is not None:
        if noise is None:
            camera["noise"] = np.zeros(n)
        images = apply_camera(images, camera, noise or np.random.default_rng(0))
    out = (
        images.reshape(*shape, height, width, 3),
        landmarks.astype(np.float32).reshape(*shape, NUM_LANDMARKS, 2),
    )
    if return_mask:
        out += (masks.reshape(*shape, height, width),)
    return out


def _gaze_pair(
    rng: np.random.Generator, redirection: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Input and target gaze, uniform over the inputs that keep both within [-limit, limit]."""
    low = np.maximum(-limit, -limit - redirection)
    high = np.minimum(limit, limit - redirection)
    start = low + rng.uniform(size=redirection.shape) * (high - low)
    return start, start + redirection


def generate_eye_pairs(
    num_pairs: int,
    *,
    identities: Sequence[int],
    seed: int = 0,
    max_angle: float = 30.0,
    two_d: bool = False,
    fixed_angle: float | None = None,
    margin: int = 3,
    size: tuple[int, int] = DEFAULT_CROP_SIZE,
    appearance: str = "default",
) -> EyePairs:
    """Procedural training pairs for gaze redirection (sec. 4.3.1, 4.4.1, 4.4.5, 4.4.6).

    Each pair is one identity (uniform over `identities`) under one head pose, lighting and
    nuisance, rendered at input gaze g0 and target gaze g0 + alpha, both with |pitch| <=
    PITCH_LIMIT. The crop box comes from the input's landmarks (sec. 4.3.1); the target is cut
    from that box enlarged by `margin` output pixels on every side (sec. 4.4.6). The two images
    get independent sensor noise.

    Args:
      num_pairs: number of pairs N.
      identities: the person ids to draw from (use disjoint sets for train and test).
      seed: everything else is a pure function of (seed, N, identities, the other arguments);
        pair i does not depend on N.
      max_angle: vertical redirection uniform in [-max_angle, max_angle] (sec. 4.4.1).
      two_d: also redirect horizontally, uniform in [-max_angle, max_angle] with |yaw| <=
        YAW_LIMIT (sec. 4.4.5); otherwise the yaw is shared, uniform in +-YAW_SPREAD.
      fixed_angle: every pair redirects vertically by exactly this angle (e.g. 15, sec. 4.4.3).
      margin: registration margin k (sec. 4.4.6); targets are (H + 2k) x (W + 2k).
      size: output (W, H).
      appearance: "default" (the renderer the recorded results used) or "varied": per
        identity, wider lid openings, iris sizes, sclera tones, lashes, make-up, creases and skin
        tones, the iris higher in the opening; per pair, wider lighting, glints that may vanish,
        stronger defocus and a camera (Gaussian blur, contrast, gamma, saturation, white balance,
        brightness, 10% greyscale, noise up to 0.025), shared by input and target (the noise
        itself drawn per image). Meant for models that must transfer to real photos
        (`thesis_jax.deepwarp.gaze`).

    Returns:
      EyePairs; angles are (vertical, horizontal) = target gaze - input gaze, positive
      vertical = upwards.
    """
    width, height = check_size(size)
    if int(num_pairs) != num_pairs or num_pairs < 0:
        raise ValueError(f"num_pairs must be a non-negative integer, got {num_pairs}")
    num_pairs = int(num_pairs)
    pool = np.asarray(list(identities))
    if pool.ndim != 1 or len(pool) == 0 or not np.issubdtype(pool.dtype, np.integer):
        raise ValueError(f"identities must be a non-empty sequence of integers, got {identities}")
    if np.any(pool < 0):
        raise ValueError("identities must be non-negative")
    if not 0 < max_angle <= 2 * PITCH_LIMIT or (two_d and max_angle > 2 * YAW_LIMIT):
        raise ValueError(f"max_angle must be in (0, {2 * PITCH_LIMIT}], got {max_angle}")
    if fixed_angle is not None:
        if two_d:
            raise ValueError("fixed_angle is a vertical redirection; it cannot be used with two_d")
        if abs(fixed_angle) > 2 * PITCH_LIMIT:
            raise ValueError(f"|fixed_angle| must be <= {2 * PITCH_LIMIT}, got {fixed_angle}")
    if int(margin) != margin or margin < 0:
        raise ValueError(f"margin must be a non-negative integer, got {margin}")
    margin = int(margin)

    def stream(index: int) -> np.random.Generator:
        return np.random.default_rng([IDENTITY_SALT, seed, index])

    chosen = pool[stream(0).integers(len(pool), size=num_pairs)]
    if fixed_angle is not None:
        vertical = np.full(num_pairs, fixed_angle, np.float32)
    else:
        vertical = stream(1).uniform(-max_angle, max_angle, num_pairs).astype(np.float32)
    pitch_in, pitch_out = _gaze_pair(stream(2), vertical.astype(np.float64), PITCH_LIMIT)
    if two_d:
        horizontal = stream(3).uniform(-max_angle, max_angle, num_pairs).astype(np.float32)
        yaw_in, yaw_out = _gaze_pair(stream(4), horizontal.astype(np.float64), YAW_LIMIT)
    else:
        horizontal = np.zeros(num_pairs, np.float32)
        yaw_in = stream(4).uniform(-YAW_SPREAD, YAW_SPREAD, num_pairs)
        yaw_out = yaw_in
    check_appearance(appearance)
    looks = identity_params(chosen) if num_pairs else {}
    nuisance = draw_nuisance(stream(5), num_pairs)
    if num_pairs == 0:
        return _empty_pairs(width, height, margin)
    camera = None
    if appearance == "varied":
        looks = vary_identities(looks, chosen)
        nuisance, camera = varied_nuisance(nuisance, stream(8).random((num_pairs, 14)))
    scene_in = make_scene(looks, nuisance, pitch_in, yaw_in, RENDER_SIZE)
    scene_out = make_scene(looks, nuisance, pitch_out, yaw_out, RENDER_SIZE)
    image_landmarks = scene_landmarks(scene_in)
    box = eye_crop_box(image_landmarks, (width, height))
    big = enlarge_box(box, margin, (width, height))
    big_grid = box_grid(big, width + 2 * margin, height + 2 * margin)
    if camera is None:
        inputs, _ = render_grid(scene_in, *box_grid(box, width, height), stream(6))
        targets, _ = render_grid(scene_out, *big_grid, stream(7))
    else:
        inputs, _ = render_grid(scene_in, *box_grid(box, width, height))
        inputs = apply_camera(inputs, camera, stream(6))
        targets, _ = render_grid(scene_out, *big_grid)
        targets = apply_camera(targets, camera, stream(7))
    return EyePairs(
        inputs=inputs,
        targets=targets,
        landmarks=crop_landmarks(image_landmarks, box, (width, height)).astype(np.float32),
        angles=np.stack([vertical, horizontal], axis=-1),
        tilt=landmark_tilt(image_landmarks).astype(np.float32),
        identity=chosen.astype(np.int32),
        margin=margin,
    )


def _empty_pairs(width: int, height: int, margin: int) -> EyePairs:
    return EyePairs(
        inputs=np.zeros((0, height, width, 3), np.float32),
        targets=np.zeros((0, height + 2 * margin, width + 2 * margin, 3), np.float32),
        landmarks=np.zeros((0, NUM_LANDMARKS, 2), np.float32),
        angles=np.zeros((0, 2), np.float32),
        tilt=np.zeros((0,), np.float32),
        identity=np.zeros((0,), np.int32),
        margin=margin,
    )
