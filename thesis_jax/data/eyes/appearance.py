"""Who is in a rendered eye and under what conditions: the renderer's random parameters.

An identity's appearance (skin, iris, lid shape, eyeball and iris sizes, crease, lashes,
textures) is a pure function of its integer id; the nuisance (head roll, scale, position,
lighting, glints, pupil size, defocus, sensor-noise level) a pure function of a seed. The
"varied" appearance widens both and adds a camera (blur, contrast, gamma, saturation, white
balance, greyscale, noise) for models that must transfer to real photos.
"""

from __future__ import annotations

import numpy as np
from scipy import special

APPEARANCES = ("default", "varied")
"""`appearance` of the renderer: "default" (the recorded results) or "varied" (for real photos)."""

IDENTITY_SALT = 0x3E7E5
NUISANCE_SALT = 0x9A2E
VARIED_SALT = 0x7A41
_SKIN_ANCHORS = np.array(
    [[0.97, 0.80, 0.70], [0.84, 0.63, 0.50], [0.64, 0.44, 0.32], [0.40, 0.26, 0.18]], np.float64
)
_IRIS_PALETTE = np.array(
    [
        [0.20, 0.11, 0.06],  # dark brown
        [0.38, 0.22, 0.11],  # brown
        [0.46, 0.36, 0.17],  # hazel
        [0.30, 0.42, 0.24],  # green
        [0.32, 0.48, 0.64],  # blue
        [0.45, 0.50, 0.53],  # grey
    ],
    np.float64,
)
_IRIS_WEIGHTS = np.array([0.30, 0.25, 0.12, 0.10, 0.15, 0.08])
IRIS_HARMONICS = 6
SKIN_WAVES = 4


def check_appearance(appearance: str) -> None:
    if appearance not in APPEARANCES:
        raise ValueError(f"unknown appearance {appearance!r}; choose one of {APPEARANCES}")


def identity_params(identities: np.ndarray) -> dict[str, np.ndarray]:
    """Appearance of each identity (a pure function of the integer id), arrays over `identities`."""
    unique, inverse = np.unique(identities, return_inverse=True)
    rows = [_one_identity(int(identity)) for identity in unique]
    return {key: np.stack([row[key] for row in rows])[inverse] for key in rows[0]}


def _lid_norm(skew: float, fullness: float) -> float:
    t = np.linspace(0.0, 1.0, 401)
    p = t * (1 - t)
    return float(1.0 / np.max(p * (1 + skew * (2 * t - 1)) * (1 + fullness * p)))


def _one_identity(identity: int) -> dict[str, np.ndarray]:
    if identity < 0:
        raise ValueError(f"identities must be non-negative integers, got {identity}")
    rng = np.random.default_rng([IDENTITY_SALT, identity])
    uniform = rng.uniform
    tone = uniform(0.0, 1.0) ** 1.3 * 3.0
    low = min(int(tone), 2)
    skin = _SKIN_ANCHORS[low] + (tone - low) * (_SKIN_ANCHORS[low + 1] - _SKIN_ANCHORS[low])
    skin = np.clip(skin * uniform(0.94, 1.06, 3), 0.05, 1.0)
    iris = _IRIS_PALETTE[rng.choice(len(_IRIS_PALETTE), p=_IRIS_WEIGHTS)]
    iris = np.clip(iris * uniform(0.8, 1.2) * uniform(0.9, 1.1, 3), 0.02, 0.9)
    iris_inner = np.clip(iris * uniform(0.9, 1.5) + np.array([0.08, 0.05, -0.02]) * uniform(), 0, 1)
    skew_upper = uniform(-0.45, -0.05)
    skew_lower = uniform(0.05, 0.45)
    fullness_upper = uniform(0.0, 1.5)
    fullness_lower = uniform(0.0, 1.0)
    harmonics = rng.integers(5, 32, IRIS_HARMONICS).astype(np.float64)
    wave_angle = uniform(0, np.pi, SKIN_WAVES)
    wave_cycles = np.exp(uniform(np.log(2.5), np.log(12.0), SKIN_WAVES))
    wave_freq = 2 * np.pi * wave_cycles
    return {
        "eye_size": np.float64(uniform(0.9, 1.1)),
        "canthal": np.float64(uniform(-0.03, 0.10)),
        "upper_height": np.float64(uniform(0.22, 0.30)),
        "lower_height": np.float64(uniform(0.11, 0.16)),
        "skew_upper": np.float64(skew_upper),
        "skew_lower": np.float64(skew_lower),
        "fullness_upper": np.float64(fullness_upper),
        "fullness_lower": np.float64(fullness_lower),
        "norm_upper": np.float64(_lid_norm(skew_upper, fullness_upper)),
        "norm_lower": np.float64(_lid_norm(skew_lower, fullness_lower)),
        "upper_follow": np.float64(uniform(0.55, 0.85)),
        "lower_follow_down": np.float64(uniform(0.3, 0.5)),
        "lower_follow_up": np.float64(uniform(0.0, 0.12)),
        "ball_radius": np.float64(uniform(0.38, 0.45)),
        "ball_u": np.float64(uniform(-0.03, 0.03)),
        "ball_v": np.float64(uniform(-0.05, 0.0)),
        "iris_radius": np.float64(uniform(0.18, 0.215)),
        "pupil_fraction": np.float64(uniform(0.32, 0.45)),
        "crease_gap": np.float64(uniform(0.07, 0.16)),
        "crease_depth": np.float64(uniform(0.05, 0.25)),
        "lid_bulge": np.float64(uniform(0.02, 0.06)),
        "dark_circle": np.float64(uniform(0.0, 0.15)),
        "lash_length": np.float64(uniform(0.05, 0.11)),
        "lash_darkness": np.float64(uniform(0.7, 0.95)),
        "lash_count": np.float64(uniform(10.0, 16.0)),
        "skin": skin,
        "lid_tint": np.array([1.0, uniform(0.88, 0.96), uniform(0.86, 0.95)]),
        "sclera": np.clip(np.array([0.94, 0.91, 0.88]) * uniform(0.95, 1.03, 3), 0, 1),
        "redness": np.float64(uniform(0.05, 0.3)),
        "iris": iris,
        "iris_inner": iris_inner,
        "collarette": np.float64(uniform(0.1, 0.5)),
        "limbal": np.float64(uniform(0.3, 0.7)),
        "harmonic": harmonics,
        "harmonic_amp": uniform(0.03, 0.09, IRIS_HARMONICS) / np.sqrt(IRIS_HARMONICS / 3),
        "harmonic_phase": uniform(0, 2 * np.pi, IRIS_HARMONICS),
        "harmonic_twist": uniform(-6.0, 6.0, IRIS_HARMONICS),
        "wave_u": wave_freq * np.cos(wave_angle),
        "wave_v": wave_freq * np.sin(wave_angle),
        "wave_phase": uniform(0, 2 * np.pi, SKIN_WAVES),
        "wave_amp": uniform(0.02, 0.06, SKIN_WAVES) / wave_cycles,
    }


def draw_nuisance(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-sample nuisance shared by both images of a pair (see the module docstring).

    Sample i's values come from row i of one (n, 20) uniform draw, so they do not depend on n.
    """
    draw = rng.random((n, 20))

    def between(column: int, low: float, high: float) -> np.ndarray:
        return low + (high - low) * draw[:, column]

    hard = draw[:, 0] < 0.2
    roll = np.where(
        hard,
        np.where(draw[:, 1] < 0.5, -1.0, 1.0) * between(2, 8.0, 15.0),
        np.clip(3.0 * special.ndtri(np.clip(draw[:, 2], 1e-9, 1 - 1e-9)), -7.0, 7.0),
    )
    azimuth = between(3, 0.0, 2 * np.pi)
    elevation = np.radians(between(4, 10.0, 55.0))
    light = np.stack(
        [
            np.sin(elevation) * np.cos(azimuth),
            np.sin(elevation) * np.sin(azimuth),
            np.cos(elevation),
        ],
        axis=-1,
    )
    warmth = between(5, -0.05, 0.08)
    second_angle = between(7, 0.0, 2 * np.pi)
    second_offset = between(8, 0.1, 0.3)
    return {
        "roll": roll,
        "scale": between(9, 0.92, 1.08),
        "shift": np.stack([between(10, -0.04, 0.04), between(11, -0.04, 0.04)], axis=-1),
        "light": light,
        "intensity": between(12, 0.7, 1.1),
        "ambient": between(13, 0.3, 0.5),
        "tint": np.stack([1 + warmth, np.ones(n), 1 - warmth], axis=-1),
        "glint": between(14, 0.6, 1.0),
        "glint_size": between(15, 0.016, 0.028),
        "glint2": np.where(draw[:, 6] < 0.4, between(16, 0.3, 0.8), 0.0),
        "glint2_offset": np.stack(
            [second_offset * np.cos(second_angle), second_offset * np.sin(second_angle)], axis=-1
        ),
        "pupil_scale": between(17, 0.85, 1.15),
        "blur": between(18, 1.0, 1.7),
        "noise": between(19, 0.004, 0.02),
    }


def nuisance_for_seeds(seeds: np.ndarray) -> dict[str, np.ndarray]:
    unique, inverse = np.unique(seeds, return_inverse=True)
    rows = [draw_nuisance(np.random.default_rng([NUISANCE_SALT, int(s)]), 1) for s in unique]
    return {key: np.concatenate([row[key] for row in rows])[inverse] for key in rows[0]}


def vary_identities(identity: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, np.ndarray]:
    """The "varied" appearance of each identity: a pure function of the integer id.

    Widens what real photos show and the default renderer does not: narrow and wide openings,
    larger irises, greyer or redder sclerae, light to heavy lashes and eye make-up, deeper
    creases and dark circles, skin tones beyond the four anchors; and puts the iris higher in
    the opening, as real eyes have it.
    """
    rows_by_id = {}
    for value in np.unique(ids):
        uniform = np.random.default_rng([VARIED_SALT, 0, int(value)]).uniform
        rows_by_id[int(value)] = {
            "upper_height": uniform(0.15, 0.31),
            "lower_height": uniform(0.08, 0.16),
            "iris_radius": uniform(0.18, 0.25),
            "sclera_scale": uniform(0.75, 1.0),
            "redness": uniform(0.05, 0.5),
            "lash_length": uniform(0.02, 0.15),
            "lash_darkness": uniform(0.3, 1.0),
            "crease_depth": uniform(0.0, 0.4),
            "dark_circle": uniform(0.0, 0.35),
            "skin_gain": uniform(0.75, 1.15) * uniform(0.95, 1.05, 3),
            "lid_shadow": uniform(0.55, 1.0) if uniform() < 0.3 else 1.0,
            # The eyeball 0.04-0.09 eye widths above the corner line (v grows downwards), not
            # 0-0.05: a real eye's iris sits high in its opening, under the upper lid
            # (benchmarks/gaze_gain.py prints both eyes' landmark geometry).
            "ball_v": uniform(-0.09, -0.04),
        }
    unique, inverse = np.unique(ids, return_inverse=True)
    rows = [rows_by_id[int(value)] for value in unique]
    out = dict(identity)
    for key in ("upper_height", "lower_height", "iris_radius", "redness", "lash_length",
                "lash_darkness", "crease_depth", "dark_circle", "ball_v"):  # fmt: skip
        out[key] = np.array([row[key] for row in rows])[inverse]
    sclera = np.array([row["sclera_scale"] for row in rows])[inverse]
    out["sclera"] = identity["sclera"] * sclera[:, None]
    skin = identity["skin"] * np.stack([row["skin_gain"] for row in rows])[inverse]
    out["skin"] = np.clip(skin, 0.04, 1.0)
    shadow = np.array([row["lid_shadow"] for row in rows])[inverse]
    out["lid_tint"] = identity["lid_tint"] * shadow[:, None]
    return out


def _draw_varied(draw: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample "varied" nuisance and camera from uniform draws (n, 14): lighting, glints,
    defocus, and the camera's blur, contrast, gamma, saturation, white balance and noise."""

    def between(column: int, low: float, high: float) -> np.ndarray:
        return low + (high - low) * draw[:, column]

    return {
        "intensity": between(0, 0.5, 1.2),
        "ambient": between(1, 0.25, 0.7),
        "glint": np.where(draw[:, 2] < 0.2, 0.0, between(3, 0.3, 1.0)),
        "blur": between(4, 1.0, 2.5),
        "camera_blur": between(5, 0.0, 1.2) ** 1.5,
        "contrast": between(6, 0.7, 1.1),
        "gamma": between(7, 0.8, 1.25),
        "saturation": between(8, 0.6, 1.15),
        "white_balance": np.stack(
            [between(9, 0.9, 1.1), np.ones(len(draw)), between(10, 0.9, 1.1)], axis=-1
        ),
        "brightness": between(11, -0.06, 0.06),
        "noise": between(12, 0.004, 0.025),
        "greyscale": (draw[:, 13] < 0.1).astype(np.float64),
    }


def varied_nuisance(
    nuisance: dict[str, np.ndarray], draw: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(renderer nuisance with the varied lighting, camera parameters for `apply_camera`)."""
    varied = _draw_varied(draw)
    renderer = dict(nuisance)
    for key in ("intensity", "ambient", "glint", "blur"):
        renderer[key] = varied.pop(key)
    renderer["glint2"] = nuisance["glint2"] * (renderer["glint"] > 0)
    return renderer, varied


def apply_camera(
    images: np.ndarray, camera: dict[str, np.ndarray], noise: np.random.Generator
) -> np.ndarray:
    """The "varied" camera on rendered images (B, h, w, 3): blur (sigma in output pixels),
    contrast about mid-grey, gamma, saturation, white balance, brightness, optional greyscale,
    then zero-mean uniform sensor noise; clipped to [0, 1]."""
    from scipy import ndimage

    out = np.empty_like(images)
    for i, image in enumerate(images):
        sigma = float(camera["camera_blur"][i])
        if sigma > 0.05:
            image = ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="nearest")
        image = np.clip(image, 0, 1) ** np.float32(camera["gamma"][i])
        grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
        image = grey[..., None] + np.float32(camera["saturation"][i]) * (image - grey[..., None])
        if camera["greyscale"][i]:
            image = np.repeat(grey[..., None], 3, axis=-1)
        image = 0.5 + np.float32(camera["contrast"][i]) * (image - 0.5)
        image = image * camera["white_balance"][i].astype(np.float32)
        out[i] = image + np.float32(camera["brightness"][i])
    grain = noise.random(out.shape, np.float32) - 0.5
    out += grain * (camera["noise"] * 12**0.5).astype(np.float32)[:, None, None, None]
    return np.clip(out, 0, 1, out=out)
