"""Gaze-redirection pairs for DeepWarp (thesis ch. 4): procedural eye renders and a folder reader.

No public dataset has eyes photographed at continuously varying, known gaze (sec. 4.4.1), so
`generate_eye_pairs` renders them. A training example (sec. 4.3.1) is two images of the same
person, head pose, lighting and nuisance at gaze g0 (input) and g1 = g0 + alpha (target), cut
with the same box: the tight box of the input's 7 landmarks enlarged to 1.0R wide and
0.8R high (R = distance between the eye corners; exactly R * H / W, so pixels stay square) and
resized to W x H = 51 x 41. For the registration loss of sec. 4.4.6 the target box is enlarged
by `margin` output pixels on every side, so targets are (H + 2 margin) x (W + 2 margin) and their
centre is the aligned target.

Conventions (all images, landmarks and boxes):
  - Pixel (row i, column j) has its centre at (x, y) = (j, i); a box (x0, y0, x1, y1) spans the
    continuous rectangle whose output pixel (r, c) is centred at
    (x0 + (c + 0.5) (x1 - x0) / W, y0 + (r + 0.5) (y1 - y0) / H).
  - Gaze (pitch, yaw) in degrees. Positive pitch = looking up (the pupil moves to smaller y),
    positive yaw = the pupil moves to larger x (the subject's left in an unmirrored photo).
    A redirection angle is target gaze minus input gaze, stored as (vertical, horizontal), so a
    positive vertical angle redirects the gaze upwards (the thesis's "15 degrees upwards").
  - Eyes are left eyes (sec. 4.3.1; mirror right eyes): the inner corner (towards the nose) has
    the smaller x, the outer corner the larger x.
  - The 7 landmarks, `LANDMARK_NAMES`, go once around the lid edge and end with the pupil:
    0 outer corner, 1 upper lid at 2/3 of the way from the inner to the outer corner,
    2 upper lid at 1/3, 3 inner corner, 4 lower lid at 1/3, 5 lower lid at 2/3, 6 pupil centre.
    Landmarks 1, 2, 4, 5 lie exactly on the drawn lid edges at those fractions of the
    corner-to-corner line.
  - Head roll is the in-plane rotation of the eye (counter-clockwise on screen is positive);
    `tilt` is |angle| between the horizontal and the segment joining the two most distant
    landmarks (sec. 4.4.2, "hard" when >= 8 degrees).

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

`load_eye_folder` reads real captures laid out as (one folder per person, one per sequence; a
sequence shares head pose and lighting, sec. 4.4.1):

    path/<person>/<sequence>/frames.csv
    path/<person>/<sequence>/<image files listed in frames.csv>

frames.csv has a header and the columns `file,pitch,yaw,x0,y0,x1,y1,...,x6,y6`: the image file
(relative to the sequence folder), the gaze in degrees (conventions above) and the left eye's 7
landmarks in image pixels, in the order above. Pairs are formed within a sequence between frames
whose gaze differs by at most `max_angle` in pitch and in yaw; identity = index of the person
folder in sorted order.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image
from scipy import special

from thesis_jax.data.errors import DatasetNotFoundError

DEFAULT_CROP_SIZE = (51, 41)
"""Output crops W x H (sec. 4.3.1)."""
RENDER_SIZE = (96, 80)
"""W x H of `render_eye` images; the corner distance R is about half the width."""
NUM_LANDMARKS = 7
LANDMARK_NAMES = (
    "outer_corner",
    "upper_lid_outer",
    "upper_lid_inner",
    "inner_corner",
    "lower_lid_inner",
    "lower_lid_outer",
    "pupil",
)
PITCH_LIMIT = 30.0
"""|pitch| of every rendered gaze stays within this (degrees)."""
YAW_LIMIT = 30.0
"""|yaw| stays within this when horizontal redirection is on (`two_d=True`)."""
YAW_SPREAD = 10.0
"""For vertical-only pairs, the shared yaw is uniform in [-YAW_SPREAD, YAW_SPREAD]."""
HARD_TILT = 8.0
"""Sec. 4.4.2: a sample is "hard" when its tilt is at least this (degrees)."""
APPEARANCES = ("default", "varied")
"""`appearance` of the renderer: "default" (the recorded results) or "varied" (for real photos)."""

_IDENTITY_SALT = 0x3E7E5
_NUISANCE_SALT = 0x9A2E
_VARIED_SALT = 0x7A41
_CHUNK = 32
_LANDMARK_FRACTIONS = (1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0, 1.0 / 3.0, 2.0 / 3.0)
_UPPER = (False, True, True, False, False, False)
_UPPER_SHAPE = ("skew_upper", "fullness_upper", "norm_upper")
_LOWER_SHAPE = ("skew_lower", "fullness_lower", "norm_lower")
_LOWER = (False, False, False, False, True, True)

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
_IRIS_HARMONICS = 6
_SKIN_WAVES = 4

_EYES_HOW_TO = (
    "Capture sequences of one person tracking a point on a screen (sec. 4.4.1) and lay them out\n"
    "as\n"
    "  <path>/<person>/<sequence>/frames.csv\n"
    "  <path>/<person>/<sequence>/<images listed in frames.csv>\n"
    "frames.csv: header `file,pitch,yaw,x0,y0,x1,y1,...,x6,y6`; one row per image: the file\n"
    "name (relative to the sequence folder), the gaze in degrees (pitch > 0 looks up, yaw > 0\n"
    "moves the pupil to larger x) and the left eye's 7 landmarks in image pixels (outer corner,\n"
    "upper lid near the outer corner, upper lid near the inner corner, inner corner, lower lid\n"
    "near the inner corner, lower lid near the outer corner, pupil centre).\n"
    "No captures? Use generate_eye_pairs (procedural, offline)."
)


@dataclasses.dataclass(frozen=True, eq=False)
class EyePairs:
    """Training pairs for gaze redirection (sec. 4.3.1), with registration margin (sec. 4.4.6).

    Attributes:
      inputs: (N, H, W, 3) float32 in [0, 1], the input crops (default H x W = 41 x 51).
      targets: (N, H + 2 margin, W + 2 margin, 3) float32, the target cut from the input's box
        enlarged by `margin` output pixels on every side.
      landmarks: (N, 7, 2) float32, (x, y) of the input's landmarks in input-crop pixels
        (`LANDMARK_NAMES` order: 6 lid points, then the pupil).
      angles: (N, 2) float32 degrees, redirection (vertical, horizontal) = target gaze - input gaze.
      tilt: (N,) float32 degrees, |angle| of the segment between the input's two most distant
        landmarks (sec. 4.4.2).
      identity: (N,) int32 person id.
      margin: the registration margin k of sec. 4.4.6.
    """

    inputs: np.ndarray
    targets: np.ndarray
    landmarks: np.ndarray
    angles: np.ndarray
    tilt: np.ndarray
    identity: np.ndarray
    margin: int

    def __post_init__(self) -> None:
        n, h, w, _ = self.inputs.shape
        expected = {
            "targets": (n, h + 2 * self.margin, w + 2 * self.margin, 3),
            "landmarks": (n, NUM_LANDMARKS, 2),
            "angles": (n, 2),
            "tilt": (n,),
            "identity": (n,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def aligned_targets(self) -> np.ndarray:
        """The centre (N, H, W, 3) of the targets: the target cut with the input's exact box."""
        m = self.margin
        h, w = self.inputs.shape[1:3]
        return self.targets[:, m : m + h, m : m + w]

    def subset(self, index: ArrayLike | slice) -> EyePairs:
        """The pairs at `index` (integer indices, a boolean mask or a slice), in that order."""
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.ndim == 0:
                index = index[None]
        return EyePairs(
            inputs=self.inputs[index],
            targets=self.targets[index],
            landmarks=self.landmarks[index],
            angles=self.angles[index],
            tilt=self.tilt[index],
            identity=self.identity[index],
            margin=self.margin,
        )


# ---------------------------------------------------------------------------------------------
# Crop geometry (sec. 4.3.1, 4.4.6); also used on real photos.


def eye_crop_box(landmarks: ArrayLike, size: tuple[int, int] = DEFAULT_CROP_SIZE) -> np.ndarray:
    """The crop box B of sec. 4.3.1 for one eye's 7 landmarks: (x0, y0, x1, y1).

    The tight box of the landmarks is enlarged around its centre to R wide and R * H / W high
    (0.8R x 1.0R for W x H = 51 x 41), R = distance between the corners (landmarks 0 and 3).

    Args:
      landmarks: (..., 7, 2) (x, y) image pixels in `LANDMARK_NAMES` order.
      size: the output (W, H) the box will be resized to.

    Returns:
      (..., 4) float64 boxes.
    """
    points = np.asarray(landmarks, np.float64)
    if points.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks must be (..., {NUM_LANDMARKS}, 2), got {points.shape}")
    width, height = _check_size(size)
    lo, hi = points.min(axis=-2), points.max(axis=-2)
    centre = 0.5 * (lo + hi)
    corner_distance = np.linalg.norm(points[..., 0, :] - points[..., 3, :], axis=-1)
    half = np.stack([0.5 * corner_distance, 0.5 * corner_distance * height / width], axis=-1)
    return np.concatenate([centre - half, centre + half], axis=-1)


def enlarge_box(
    box: ArrayLike, margin: int, size: tuple[int, int] = DEFAULT_CROP_SIZE
) -> np.ndarray:
    """`box` grown by `margin` output pixels (of a W x H resize) on every side (sec. 4.4.6)."""
    box = np.asarray(box, np.float64)
    width, height = _check_size(size)
    step = np.stack(
        [(box[..., 2] - box[..., 0]) / width, (box[..., 3] - box[..., 1]) / height], axis=-1
    )
    return np.concatenate([box[..., :2] - margin * step, box[..., 2:] + margin * step], axis=-1)


def crop_landmarks(
    landmarks: ArrayLike, box: ArrayLike, size: tuple[int, int] = DEFAULT_CROP_SIZE
) -> np.ndarray:
    """Image-pixel points (..., N, 2) -> pixels of the W x H crop cut with `box` (..., 4)."""
    points = np.asarray(landmarks, np.float64)
    box = np.asarray(box, np.float64)[..., None, :]
    width, height = _check_size(size)
    x = (points[..., 0] - box[..., 0]) * width / (box[..., 2] - box[..., 0]) - 0.5
    y = (points[..., 1] - box[..., 1]) * height / (box[..., 3] - box[..., 1]) - 0.5
    return np.stack([x, y], axis=-1)


def uncrop_landmarks(
    points: ArrayLike, box: ArrayLike, size: tuple[int, int] = DEFAULT_CROP_SIZE
) -> np.ndarray:
    """Inverse of `crop_landmarks`: crop pixels (..., N, 2) -> image pixels."""
    points = np.asarray(points, np.float64)
    box = np.asarray(box, np.float64)[..., None, :]
    width, height = _check_size(size)
    x = box[..., 0] + (points[..., 0] + 0.5) * (box[..., 2] - box[..., 0]) / width
    y = box[..., 1] + (points[..., 1] + 0.5) * (box[..., 3] - box[..., 1]) / height
    return np.stack([x, y], axis=-1)


def cut_eye_crop(
    image: ArrayLike,
    box: ArrayLike,
    size: tuple[int, int] = DEFAULT_CROP_SIZE,
    margin: int = 0,
) -> np.ndarray:
    """Cuts `box` from `image` and resizes it to W x H (+ 2 margin) by bilinear sampling.

    Output pixel (r, c) of the margin-0 crop is the image at
    (x0 + (c + 0.5) (x1 - x0) / W, y0 + (r + 0.5) (y1 - y0) / H), pixel centres at integers;
    positions outside the image take the nearest border pixel. When the box is more than one
    image pixel per output pixel, each output pixel averages ceil(scale)^2 bilinear samples
    spread over its footprint, so shrinking does not alias. With `margin` k the box is first
    enlarged by k output pixels on every side (sec. 4.4.6), so the centre H x W equals the
    margin-0 crop.

    Args:
      image: (height, width) or (height, width, C) array; integers are returned as float32 in
        their own units (divide uint8 by 255 yourself), floats keep their values.
      box: (x0, y0, x1, y1) image pixels, e.g. from `eye_crop_box`.
      size: (W, H) of the crop without margin.
      margin: extra output pixels on every side.

    Returns:
      float32 (H + 2 margin, W + 2 margin) + the image's channel dims.
    """
    pixels = np.asarray(image)
    if pixels.ndim not in (2, 3) or min(pixels.shape[:2]) < 1:
        raise ValueError(f"image must be (height, width[, C]), got shape {pixels.shape}")
    pixels = pixels.astype(np.float32, copy=False)
    box = np.asarray(box, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box must be finite (x0, y0, x1, y1) with x1 > x0, y1 > y0, got {box}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    width, height = _check_size(size)
    step_x = (box[2] - box[0]) / width
    step_y = (box[3] - box[1]) / height
    taps_x = max(1, math.ceil(step_x - 1e-9))
    taps_y = max(1, math.ceil(step_y - 1e-9))
    sub_x = ((np.arange(taps_x) + 0.5) / taps_x - 0.5) * step_x
    sub_y = ((np.arange(taps_y) + 0.5) / taps_y - 0.5) * step_y
    cols = box[0] + (np.arange(-margin, width + margin) + 0.5) * step_x
    rows = box[1] + (np.arange(-margin, height + margin) + 0.5) * step_y
    xs = (cols[:, None] + sub_x[None, :]).ravel()
    ys = (rows[:, None] + sub_y[None, :]).ravel()
    sampled = _bilinear(pixels, ys, xs)
    out_h, out_w = len(rows), len(cols)
    sampled = sampled.reshape(out_h, taps_y, out_w, taps_x, *pixels.shape[2:])
    return sampled.mean(axis=(1, 3), dtype=np.float32)


def _bilinear(pixels: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """pixels sampled on the grid ys x xs (clamped at the borders): (len(ys), len(xs), ...)."""
    h, w = pixels.shape[:2]
    ys = np.clip(ys, 0.0, h - 1.0)
    xs = np.clip(xs, 0.0, w - 1.0)
    y0 = np.minimum(np.floor(ys).astype(np.int64), max(h - 2, 0))
    x0 = np.minimum(np.floor(xs).astype(np.int64), max(w - 2, 0))
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    extra = (1,) * (pixels.ndim - 2)
    fy = (ys - y0).astype(np.float32).reshape(-1, 1, *extra)
    fx = (xs - x0).astype(np.float32).reshape(1, -1, *extra)
    top = pixels[y0][:, x0] * (1 - fx) + pixels[y0][:, x1] * fx
    bottom = pixels[y1][:, x0] * (1 - fx) + pixels[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def landmark_tilt(landmarks: ArrayLike) -> np.ndarray:
    """|angle| in degrees (0-90) between the horizontal and the segment joining the two most
    distant of the landmarks (..., N, 2): the tilt of sec. 4.4.2."""
    points = np.asarray(landmarks, np.float64)
    diff = points[..., :, None, :] - points[..., None, :, :]
    dist = np.sum(diff**2, axis=-1)
    n = points.shape[-2]
    flat = dist.reshape(*dist.shape[:-2], n * n).argmax(axis=-1)
    i, j = np.unravel_index(flat, (n, n))
    delta = np.take_along_axis(
        diff.reshape(*diff.shape[:-3], n * n, 2), (i * n + j)[..., None, None], axis=-2
    )[..., 0, :]
    return np.degrees(np.arctan2(np.abs(delta[..., 1]), np.abs(delta[..., 0])))


def _check_appearance(appearance: str) -> None:
    if appearance not in APPEARANCES:
        raise ValueError(f"unknown appearance {appearance!r}; choose one of {APPEARANCES}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(value) for value in size)
    if width < 2 or height < 2:
        raise ValueError(f"size must be (W, H) with W, H >= 2, got {size}")
    return width, height


# ---------------------------------------------------------------------------------------------
# Renderer.


def _identity_params(identities: np.ndarray) -> dict[str, np.ndarray]:
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
    rng = np.random.default_rng([_IDENTITY_SALT, identity])
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
    harmonics = rng.integers(5, 32, _IRIS_HARMONICS).astype(np.float64)
    wave_angle = uniform(0, np.pi, _SKIN_WAVES)
    wave_cycles = np.exp(uniform(np.log(2.5), np.log(12.0), _SKIN_WAVES))
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
        "harmonic_amp": uniform(0.03, 0.09, _IRIS_HARMONICS) / np.sqrt(_IRIS_HARMONICS / 3),
        "harmonic_phase": uniform(0, 2 * np.pi, _IRIS_HARMONICS),
        "harmonic_twist": uniform(-6.0, 6.0, _IRIS_HARMONICS),
        "wave_u": wave_freq * np.cos(wave_angle),
        "wave_v": wave_freq * np.sin(wave_angle),
        "wave_phase": uniform(0, 2 * np.pi, _SKIN_WAVES),
        "wave_amp": uniform(0.02, 0.06, _SKIN_WAVES) / wave_cycles,
    }


def _draw_nuisance(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
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


def _nuisance_for_seeds(seeds: np.ndarray) -> dict[str, np.ndarray]:
    unique, inverse = np.unique(seeds, return_inverse=True)
    rows = [_draw_nuisance(np.random.default_rng([_NUISANCE_SALT, int(s)]), 1) for s in unique]
    return {key: np.concatenate([row[key] for row in rows])[inverse] for key in rows[0]}


def _scene(
    identity: dict[str, np.ndarray],
    nuisance: dict[str, np.ndarray],
    pitch: np.ndarray,
    yaw: np.ndarray,
    image_size: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Geometry of each sample: identity + nuisance + gaze -> eye-frame quantities (units of R)."""
    width, height = image_size
    pitch_rad, yaw_rad = np.radians(pitch), np.radians(yaw)
    gaze = np.stack(
        [
            np.sin(yaw_rad) * np.cos(pitch_rad),
            -np.sin(pitch_rad),
            np.cos(yaw_rad) * np.cos(pitch_rad),
        ],
        axis=-1,
    )
    rise = np.sin(pitch_rad) * identity["ball_radius"]
    scene = dict(identity)
    scene.update(nuisance)
    scene["gaze"] = gaze
    scene["scale_px"] = 0.5 * width * identity["eye_size"] * nuisance["scale"]
    scene["centre"] = (
        np.array([(width - 1) / 2, (height - 1) / 2])
        + nuisance["shift"] * scene["scale_px"][:, None]
    )
    iris_depth = np.sqrt(identity["ball_radius"] ** 2 - identity["iris_radius"] ** 2)
    iris_u = identity["ball_u"] + iris_depth * gaze[:, 0]
    iris_v = identity["ball_v"] + iris_depth * gaze[:, 1]
    scene["iris_centre"] = np.stack([iris_u, iris_v], axis=-1)
    pupil = np.clip(
        identity["iris_radius"]
        * identity["pupil_fraction"]
        * nuisance["pupil_scale"]
        * (1.3 - 0.35 * nuisance["intensity"]),
        0.04,
        0.6 * identity["iris_radius"],
    )
    scene["pupil_radius"] = pupil
    # The lids follow the pitch and never cover the pupil centre (they rest on the eyeball).
    below_line = iris_v + identity["canthal"] * iris_u
    b_up, _ = _lid_profile(iris_u, *(identity[k] for k in _UPPER_SHAPE), False)
    b_lo, _ = _lid_profile(iris_u, *(identity[k] for k in _LOWER_SHAPE), False)
    upper = np.maximum(identity["upper_height"] + identity["upper_follow"] * rise, 0.06)
    lower = np.maximum(
        identity["lower_height"]
        - identity["lower_follow_up"] * np.maximum(rise, 0)
        - identity["lower_follow_down"] * np.minimum(rise, 0),
        0.06,
    )
    scene["upper"] = np.maximum(upper, (pupil - below_line) / np.maximum(b_up, 0.2))
    scene["lower"] = np.maximum(lower, (pupil + below_line) / np.maximum(b_lo, 0.2))
    scene["crease"] = (
        identity["upper_height"]
        + identity["crease_gap"]
        + 0.5 * (scene["upper"] - identity["upper_height"])
    )
    return scene


def _lid_profile(u, skew, fullness, norm, derivative: bool = True):
    """Lid height b (1 at its peak, 0 at the corners u = +-1/2, negative beyond) and db/du.

    b(t) = norm * t (1 - t) (1 + skew (2t - 1)) (1 + fullness t (1 - t)), t = u + 1/2, with u
    clamped to +-0.62 (beyond it, both lids stay on the far side of the corner line).
    """
    u = np.clip(u, -0.62, 0.62)
    p = 0.25 - u * u
    q = 1 + (2 * skew) * u
    r = 1 + fullness * p
    pq = p * q
    b = norm * pq * r
    if not derivative:
        return b, None
    dp = -2 * u
    db = norm * (dp * q * r + (2 * skew) * p * r + fullness * dp * pq)
    return b, db


def _eye_to_image(scene: dict[str, np.ndarray], uv: np.ndarray) -> np.ndarray:
    """Eye-frame points (B, N, 2) in units of R -> image pixels (B, N, 2)."""
    roll = np.radians(scene["roll"])[:, None]
    cos, sin = np.cos(roll), np.sin(roll)
    s = scene["scale_px"][:, None]
    u, v = uv[..., 0], uv[..., 1]
    x = scene["centre"][:, None, 0] + s * (cos * u + sin * v)
    y = scene["centre"][:, None, 1] + s * (-sin * u + cos * v)
    return np.stack([x, y], axis=-1)


def _landmarks(scene: dict[str, np.ndarray]) -> np.ndarray:
    """The 7 landmarks (B, 7, 2) in image pixels (`LANDMARK_NAMES` order)."""
    u = np.array(_LANDMARK_FRACTIONS)[None, :] - 0.5
    line = -scene["canthal"][:, None] * u
    b_up, _ = _lid_profile(
        u, *(scene[k][:, None] for k in ("skew_upper", "fullness_upper", "norm_upper")), False
    )
    b_lo, _ = _lid_profile(
        u, *(scene[k][:, None] for k in ("skew_lower", "fullness_lower", "norm_lower")), False
    )
    v = (
        line
        - np.array(_UPPER)[None, :] * scene["upper"][:, None] * b_up
        + np.array(_LOWER)[None, :] * scene["lower"][:, None] * b_lo
    )
    lids = np.stack([np.broadcast_to(u, v.shape), v], axis=-1)
    uv = np.concatenate([lids, scene["iris_centre"][:, None, :]], axis=1)
    return _eye_to_image(scene, uv)


def _bump(x, width):
    """Smooth bump (1 - (x / width)^2)^2 on |x| < width, 0 elsewhere (a cheap Gaussian)."""
    y = np.maximum(1 - (x * (1 / width)) ** 2, 0)
    return y * y


def _ramp(x, width):
    """Antialiased step: 0 for x <= -width / 2, 1 for x >= width / 2, linear between."""
    return np.clip(x * (1 / width) + 0.5, 0, 1)


_EYE_PARAMS = (
    "ball_u", "ball_v", "ball_radius", "light", "ambient", "redness", "sclera", "iris_centre",
    "gaze", "iris_radius", "pupil_radius", "canthal", "glint", "glint_size", "glint2",
    "glint2_offset", "brightness", "aa",
)  # fmt: skip
_IRIS_PARAMS = (
    "iris", "iris_inner", "collarette", "limbal", "harmonic", "harmonic_amp", "harmonic_phase",
    "harmonic_twist", "iris_radius",
)  # fmt: skip


def _per_pixel(scene: dict[str, np.ndarray], names, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample parameters repeated for each selected pixel: name -> (m,) or (k, m)."""
    columns = [np.asarray(scene[name], np.float32).reshape(len(counts), -1) for name in names]
    table = np.repeat(np.concatenate(columns, axis=1).T, counts, axis=1)
    out, start = {}, 0
    for name, column in zip(names, columns, strict=True):
        width = column.shape[1]
        out[name] = table[start] if width == 1 else table[start : start + width]
        start += width
    return out


def _eye_colour(scene, u, v, below_upper, above_lower, sample):
    """Colour (3, m) of the eyeball seen between the lids at m eye-frame points (u, v)."""
    f32 = np.float32
    counts = np.bincount(sample, minlength=len(scene["roll"]))
    p = _per_pixel(scene, _EYE_PARAMS, counts)
    aa = p["aa"]
    lu, lv, lz = p["light"]
    radius = p["ball_radius"]
    du = u - p["ball_u"]
    dv = v - p["ball_v"]
    depth = np.sqrt(np.maximum(radius * radius - du * du - dv * dv, 0)) / radius
    lambert = np.maximum((du * lu + dv * lv) / radius + depth * lz, 0)
    ambient = p["ambient"]
    shade = (ambient + (1 - ambient) * lambert) * (f32(0.55) + f32(0.45) * np.sqrt(depth))
    redness = p["redness"] * (1 - depth)
    eye = p["sclera"] + redness * (np.array([0.42, 0.27, 0.25], f32)[:, None] - p["sclera"])

    # Iris and pupil: a disc on the rotated eyeball, foreshortened along the gaze.
    gu, gv, gz = p["gaze"]
    planar = np.sqrt(gu * gu + gv * gv)
    tiny = planar < 1e-6
    safe = np.where(tiny, f32(1), planar)
    eu = np.where(tiny, f32(1), gu / safe)
    ev = np.where(tiny, f32(0), gv / safe)
    iu = u - p["iris_centre"][0]
    iv = v - p["iris_centre"][1]
    along = (iu * eu + iv * ev) / gz
    across = iv * eu - iu * ev
    rho = np.sqrt(along * along + across * across)
    in_iris = np.flatnonzero(rho < p["iris_radius"] + aa)
    if len(in_iris):
        a_i, c_i, eu_i, ev_i, rho_i = (x[in_iris] for x in (along, across, eu, ev, rho))
        iris = _iris_colour(scene, rho_i, a_i * eu_i - c_i * ev_i, a_i * ev_i + c_i * eu_i,
                            sample[in_iris])  # fmt: skip
        width = aa[in_iris]
        cover = _ramp(p["iris_radius"][in_iris] - rho_i, width)
        pupil = _ramp(p["pupil_radius"][in_iris] - rho_i, width)
        iris += pupil * (np.array([0.03, 0.03, 0.035], f32)[:, None] - iris)
        eye_i = eye[:, in_iris]
        eye[:, in_iris] = eye_i + cover * (iris - eye_i)

    line = -p["canthal"] * u
    caruncle = f32(0.7) * np.exp(((u + f32(0.47)) ** 2 + 2 * (v - line) ** 2) * f32(-250))
    shadow_width = f32(0.05) + f32(0.06) * np.maximum(-lv, 0)
    shadow = 1 - f32(0.55) * np.exp(-np.maximum(below_upper, 0) / shadow_width)
    shadow *= 1 - f32(0.2) * np.exp(np.maximum(above_lower, 0) * f32(-1 / 0.03))
    light_shade = ambient + (1 - ambient) * lz
    eye *= shade
    eye += caruncle * (np.array([0.78, 0.45, 0.42], f32)[:, None] * light_shade - eye)
    eye *= shadow * p["brightness"]

    # Corneal glints: fixed by the light direction, not by the gaze.
    glint_u = p["ball_u"] + f32(0.5) * radius * lu
    glint_v = p["ball_v"] + f32(0.5) * radius * lv
    sigma2 = np.maximum(p["glint_size"], aa * f32(0.45)) ** 2
    glint = p["glint"] * np.exp(((u - glint_u) ** 2 + (v - glint_v) ** 2) / (-2 * sigma2))
    g2u = glint_u + p["glint2_offset"][0] * radius
    g2v = glint_v + p["glint2_offset"][1] * radius
    glint += p["glint2"] * np.exp(((u - g2u) ** 2 + (v - g2v) ** 2) / (f32(-0.6) * sigma2))
    eye += np.minimum(glint, 1) * (1 - eye)
    return eye


def _iris_colour(scene, rho, wu, wv, sample):
    """Iris colour (3, k) at distance rho from its centre and unforeshortened offset (wu, wv)."""
    f32 = np.float32
    counts = np.bincount(sample, minlength=len(scene["roll"]))
    p = _per_pixel(scene, _IRIS_PARAMS, counts)
    rel = rho / p["iris_radius"]
    phi = np.arctan2(wv, wu)
    fibres = np.ones_like(rho)
    for k in range(_IRIS_HARMONICS):
        fibres += p["harmonic_amp"][k] * np.sin(
            p["harmonic"][k] * phi + p["harmonic_twist"][k] * rel + p["harmonic_phase"][k]
        )
    collarette = 1 + p["collarette"] * np.exp(((rel - f32(0.55)) * f32(1 / 0.12)) ** 2 * -1)
    limbal = 1 - p["limbal"] * np.clip((rel - f32(0.72)) * f32(1 / 0.28), 0, 1) ** 2
    inner = np.exp(((rel - f32(0.45)) * f32(1 / 0.18)) ** 2 * -1)
    iris = p["iris"] + inner * (p["iris_inner"] - p["iris"])
    return iris * (fibres * limbal * collarette)


def _shade(
    scene: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray, footprint: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Colours (3, B, h, w) and eye-opening coverage (B, h, w) at image points xs, ys.

    xs: (B, 1, w) and ys: (B, h, 1) image pixels of the sampling grid; footprint: (B,) image
    pixels per output pixel (sets the antialiasing width).
    """
    f32 = np.float32
    n, h, w = len(footprint), ys.shape[1], xs.shape[2]

    def col(name):
        return np.asarray(scene[name], f32).reshape(n, 1, 1)

    def rgb(values):
        return np.asarray(values, f32).T.reshape(3, n, 1, 1)

    roll = np.radians(scene["roll"])
    cos = (np.cos(roll) / scene["scale_px"]).astype(f32).reshape(n, 1, 1)
    sin = (np.sin(roll) / scene["scale_px"]).astype(f32).reshape(n, 1, 1)
    dx = xs - scene["centre"][:, 0].astype(f32).reshape(n, 1, 1)
    dy = ys - scene["centre"][:, 1].astype(f32).reshape(n, 1, 1)
    ux, uy, vx, vy = cos * dx, -sin * dy, sin * dx, cos * dy
    u = ux + uy
    v = vx + vy
    aa_flat = (footprint * scene["blur"] / scene["scale_px"]).astype(f32)
    aa = aa_flat.reshape(n, 1, 1)

    # Lids: upper edge v_up(u), lower edge v_lo(u) around the corner line (u = -1/2 inner corner).
    canthal = col("canthal")
    line = -canthal * u
    upper, lower = col("upper"), col("lower")
    b_up, db_up = _lid_profile(u, col("skew_upper"), col("fullness_upper"), col("norm_upper"))
    b_lo, db_lo = _lid_profile(u, col("skew_lower"), col("fullness_lower"), col("norm_lower"))
    v_line = v - line
    below_upper = (v_line + upper * b_up) / np.sqrt(1 + (canthal + upper * db_up) ** 2)
    above_lower = (lower * b_lo - v_line) / np.sqrt(1 + (lower * db_lo - canthal) ** 2)
    opening = _ramp(np.minimum(below_upper, above_lower), aa)
    inside = np.clip((f32(0.53) - np.abs(u)) * f32(1 / 0.06), 0, 1)

    # Skin: tone x texture x shading (socket, lid bulge, under-eye), crease, dark circles.
    lu, lv, lz = (np.asarray(scene["light"][:, k], f32).reshape(n, 1, 1) for k in range(3))
    ambient = col("ambient")
    texture = np.ones((n, h, w), f32)
    wave_u, wave_v = scene["wave_u"].astype(f32), scene["wave_v"].astype(f32)
    phase, amp = scene["wave_phase"].astype(f32), scene["wave_amp"].astype(f32)
    for k in range(_SKIN_WAVES):
        a, b = wave_u[:, k].reshape(n, 1, 1), wave_v[:, k].reshape(n, 1, 1)
        along_x = a * ux + b * vx + phase[:, k].reshape(n, 1, 1)
        texture += amp[:, k].reshape(n, 1, 1) * np.sin(along_x + (a * uy + b * vy))
    socket = f32(0.12) * np.maximum(1 - u * u * f32(1 / 0.81) - (v - f32(0.05)) ** 2 * f32(2), 0)
    grad_u = socket * u * f32(4 / 0.81)
    grad_v = socket * (v - f32(0.05)) * f32(8)
    b_cr, _ = _lid_profile(
        u * f32(1 / 1.24), col("skew_upper"), col("fullness_upper"), col("norm_upper"), False
    )
    crease_height = col("crease") * b_cr
    crease_line = v_line + crease_height
    lid_span = np.maximum(crease_height - upper * b_up, f32(0.02))
    lid_s = crease_line / lid_span
    crease_window = np.clip((f32(0.62) - np.abs(u)) * f32(1 / 0.12), 0, 1)
    bulge = (lid_s > 0) & (lid_s < 1)
    grad_v += (col("lid_bulge") * f32(4)) * (1 - 2 * lid_s) / lid_span * (crease_window * bulge)
    below_lower = -above_lower
    puff_v = below_lower - f32(0.08)
    grad_v -= (
        f32(0.03 * 4 / 0.12**2)
        * np.maximum(1 - (puff_v * f32(1 / 0.12)) ** 2, 0)
        * (puff_v * inside)
    )
    skin_shade = np.maximum(
        (lz - grad_u * lu - grad_v * lv) / np.sqrt(1 + grad_u * grad_u + grad_v * grad_v), 0
    )
    skin_shade = ambient + (1 - ambient) * skin_shade
    skin_shade *= 1 - col("crease_depth") * _bump(crease_line, f32(0.05)) * crease_window
    skin_shade *= 1 - col("dark_circle") * _bump(below_lower - f32(0.14), f32(0.18)) * np.clip(
        (f32(0.55) - np.abs(u)) * 3, 0, 1
    )
    near_eye = np.maximum(1 - u * u * f32(1 / 0.7) - v * v * f32(1 / 0.3), 0)
    waterline = f32(0.6) * _ramp(below_lower, aa) * _ramp(f32(0.022) - below_lower, aa) * inside
    brightness = (scene["intensity"][:, None] * scene["tint"]).astype(f32)
    skin_rgb = rgb(scene["skin"] * brightness)
    lid_rgb = rgb(scene["skin"] * scene["lid_tint"] * brightness)
    water_rgb = rgb(np.array([0.82, 0.56, 0.52]) * brightness)
    image = np.empty((3, n, h, w), f32)
    np.multiply(near_eye, lid_rgb - skin_rgb, out=image)
    image += skin_rgb
    image += waterline * (water_rgb - image)
    image *= texture * skin_shade

    # Eyeball, composited where the lids leave it visible.
    picked = np.flatnonzero(opening.reshape(-1) > 0)
    if len(picked):
        eye = _eye_colour(
            {**scene, "brightness": brightness, "aa": aa_flat},
            u.reshape(-1)[picked],
            v.reshape(-1)[picked],
            below_upper.reshape(-1)[picked],
            above_lower.reshape(-1)[picked],
            picked // (h * w),
        )
        flat = image.reshape(3, -1)
        skin = flat[:, picked]
        flat[:, picked] = skin + opening.reshape(-1)[picked] * (eye - skin)

    # Lash line, upper lashes (longer towards the outer corner) and sparse lower lashes.
    above_upper = -below_upper
    t = u + f32(0.5)
    lash_len = col("lash_length") * (f32(0.35) + f32(0.65) * np.clip(t, 0, 1))
    lash_line = _ramp(above_upper + f32(0.012), aa) * _ramp(f32(0.018) - above_upper, aa)
    strands = f32(0.5) + f32(0.5) * np.cos(
        f32(2 * np.pi) * (col("lash_count") * t + f32(3.0) * above_upper * (t - f32(0.3)))
    )
    strands *= strands
    lashes = np.clip(1 - above_upper / lash_len, 0, 1) * (above_upper > 0) * strands
    lower_lashes = np.clip(1 - np.abs(below_lower - f32(0.035)) * f32(1 / 0.02), 0, 1) * (
        f32(0.18) * strands * np.clip(t * 1.5, 0, 1)
    )
    lash = np.maximum(np.maximum(lash_line, lashes), lower_lashes) * (inside * col("lash_darkness"))
    image += lash * (rgb(np.array([0.05, 0.04, 0.035]) * brightness) - image)
    np.clip(image, 0, 1, out=image)
    return image, opening


def _vary_identities(identity: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, np.ndarray]:
    """The "varied" appearance of each identity: a pure function of the integer id.

    Widens what real photos show and the default renderer does not: narrow and wide openings,
    larger irises, greyer or redder sclerae, light to heavy lashes and eye make-up, deeper
    creases and dark circles, skin tones beyond the four anchors.
    """
    rows_by_id = {}
    for value in np.unique(ids):
        uniform = np.random.default_rng([_VARIED_SALT, 0, int(value)]).uniform
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
        }
    unique, inverse = np.unique(ids, return_inverse=True)
    rows = [rows_by_id[int(value)] for value in unique]
    out = dict(identity)
    for key in ("upper_height", "lower_height", "iris_radius", "redness", "lash_length",
                "lash_darkness", "crease_depth", "dark_circle"):  # fmt: skip
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


def _varied_nuisance(
    nuisance: dict[str, np.ndarray], draw: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(renderer nuisance with the varied lighting, camera parameters for `_camera`)."""
    varied = _draw_varied(draw)
    renderer = dict(nuisance)
    for key in ("intensity", "ambient", "glint", "blur"):
        renderer[key] = varied.pop(key)
    renderer["glint2"] = nuisance["glint2"] * (renderer["glint"] > 0)
    return renderer, varied


def _camera(
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


def _render_grid(
    scene: dict[str, np.ndarray],
    xs: np.ndarray,
    ys: np.ndarray,
    footprint: np.ndarray,
    noise: np.random.Generator | None = None,
    with_masks: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """`_shade` over the batch in chunks: images (B, h, w, 3) and, optionally, masks (B, h, w).

    xs (B, 1, w), ys (B, h, 1). With `noise`, adds zero-mean uniform sensor noise of standard
    deviation scene["noise"], drawn sample after sample (sample i's noise does not depend on B).
    """
    n = len(footprint)
    h, w = ys.shape[1], xs.shape[2]
    images = np.empty((n, h, w, 3), np.float32)
    masks = np.empty((n, h, w), np.float32) if with_masks else None
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        chunk = {key: value[part] for key, value in scene.items()}
        colours, opening = _shade(chunk, xs[part], ys[part], footprint[part])
        if noise is not None:
            count = colours.shape[1]
            grain = noise.random((count, 3, h, w), np.float32).transpose(1, 0, 2, 3) - 0.5
            colours += grain * (chunk["noise"] * 12**0.5).astype(np.float32).reshape(count, 1, 1)
            np.clip(colours, 0, 1, out=colours)
        for channel in range(3):
            images[part, ..., channel] = colours[channel]
        if masks is not None:
            masks[part] = opening
    return images, masks


def _box_grid(box: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Sample points (B, 1, w), (B, h, 1) and footprint (B,) of W x H crops of boxes (B, 4)."""
    step_x = (box[:, 2] - box[:, 0]) / width
    step_y = (box[:, 3] - box[:, 1]) / height
    xs = box[:, 0, None] + (np.arange(width) + 0.5)[None, :] * step_x[:, None]
    ys = box[:, 1, None] + (np.arange(height) + 0.5)[None, :] * step_y[:, None]
    footprint = np.sqrt(step_x * step_y)
    return xs[:, None, :].astype(np.float32), ys[:, :, None].astype(np.float32), footprint


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
    width, height = _check_size(size)
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
    _check_appearance(appearance)
    nuisance_params = _nuisance_for_seeds(seeds)
    looks = _identity_params(ids)
    camera = None
    if appearance == "varied":
        looks = _vary_identities(looks, ids)
        draws = np.concatenate(
            [np.random.default_rng([_VARIED_SALT, 1, int(s)]).random((1, 14)) for s in seeds]
        )
        nuisance_params, camera = _varied_nuisance(nuisance_params, draws)
    if roll is not None:
        nuisance_params["roll"] = roll_flat
    scene = _scene(looks, nuisance_params, pitch_flat, yaw_flat, (width, height))
    landmarks = _landmarks(scene)
    n = len(ids)
    xs = np.broadcast_to(np.arange(width, dtype=np.float32)[None, None, :], (n, 1, width))
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[None, :, None], (n, height, 1))
    noise = None if noise_seed is None else np.random.default_rng([_NUISANCE_SALT, 1, noise_seed])
    images, masks = _render_grid(
        scene, xs, ys, np.ones(n), None if camera else noise, with_masks=return_mask
    )
    if camera is not None:
        if noise is None:
            camera["noise"] = np.zeros(n)
        images = _camera(images, camera, noise or np.random.default_rng(0))
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
        tones; per pair, wider lighting, glints that may vanish, stronger defocus and a camera
        (Gaussian blur, contrast, gamma, saturation, white balance, brightness, 10% greyscale,
        noise up to 0.025), shared by input and target (the noise itself drawn per image). Meant
        for models that must transfer to real photos (`thesis_jax.deepwarp.gaze`).

    Returns:
      EyePairs; angles are (vertical, horizontal) = target gaze - input gaze, positive
      vertical = upwards.
    """
    width, height = _check_size(size)
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
        return np.random.default_rng([_IDENTITY_SALT, seed, index])

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
    _check_appearance(appearance)
    looks = _identity_params(chosen) if num_pairs else {}
    nuisance = _draw_nuisance(stream(5), num_pairs)
    if num_pairs == 0:
        return _empty_pairs(width, height, margin)
    camera = None
    if appearance == "varied":
        looks = _vary_identities(looks, chosen)
        nuisance, camera = _varied_nuisance(nuisance, stream(8).random((num_pairs, 14)))
    scene_in = _scene(looks, nuisance, pitch_in, yaw_in, RENDER_SIZE)
    scene_out = _scene(looks, nuisance, pitch_out, yaw_out, RENDER_SIZE)
    image_landmarks = _landmarks(scene_in)
    box = eye_crop_box(image_landmarks, (width, height))
    big = enlarge_box(box, margin, (width, height))
    big_grid = _box_grid(big, width + 2 * margin, height + 2 * margin)
    if camera is None:
        inputs, _ = _render_grid(scene_in, *_box_grid(box, width, height), stream(6))
        targets, _ = _render_grid(scene_out, *big_grid, stream(7))
    else:
        inputs, _ = _render_grid(scene_in, *_box_grid(box, width, height))
        inputs = _camera(inputs, camera, stream(6))
        targets, _ = _render_grid(scene_out, *big_grid)
        targets = _camera(targets, camera, stream(7))
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


# ---------------------------------------------------------------------------------------------
# Real captures.

_CSV_COLUMNS = (
    "file",
    "pitch",
    "yaw",
    *(f"{axis}{k}" for k in range(NUM_LANDMARKS) for axis in "xy"),
)


@dataclasses.dataclass(frozen=True)
class _Frame:
    path: Path
    line: int
    pitch: float
    yaw: float
    landmarks: np.ndarray


def _read_frames(csv_path: Path) -> list[_Frame]:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{csv_path}: cannot read it as UTF-8 text ({error})") from error
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise ValueError(
            f"{csv_path} line 1: empty file; expected the header {','.join(_CSV_COLUMNS)}"
        )
    header = [name.strip() for name in header]
    missing = [name for name in _CSV_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"{csv_path} line 1: header lacks {', '.join(missing)}; "
            f"expected {','.join(_CSV_COLUMNS)}"
        )
    column = {name: header.index(name) for name in _CSV_COLUMNS}
    frames = []
    for row in reader:
        line = reader.line_num
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{csv_path} line {line}: {len(row)} fields, the header has {len(header)}"
            )
        name = row[column["file"]].strip()
        if not name:
            raise ValueError(f"{csv_path} line {line}: empty file name")
        try:
            values = np.array([float(row[column[key]]) for key in _CSV_COLUMNS[1:]], np.float64)
        except ValueError as error:
            raise ValueError(f"{csv_path} line {line}: {error}") from error
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{csv_path} line {line}: non-finite gaze or landmark value")
        frames.append(
            _Frame(
                path=csv_path.parent / name,
                line=line,
                pitch=float(values[0]),
                yaw=float(values[1]),
                landmarks=values[2:].reshape(NUM_LANDMARKS, 2),
            )
        )
    return frames


def _read_image(frame: _Frame, csv_path: Path) -> np.ndarray:
    if not frame.path.is_file():
        raise DatasetNotFoundError(
            f"image {frame.path.name} (listed in {csv_path} line {frame.line})",
            [frame.path],
            _EYES_HOW_TO,
        )
    try:
        with Image.open(frame.path) as image:
            image.load()
            return np.asarray(image.convert("RGB"), np.float32) / np.float32(255)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"{frame.path} (listed in {csv_path} line {frame.line}) is not a readable image: "
            f"{error}"
        ) from error


def load_eye_folder(
    path: str | PathLike[str],
    *,
    max_angle: float = 30.0,
    margin: int = 3,
    size: tuple[int, int] = DEFAULT_CROP_SIZE,
    pairs_per_sequence: int | None = 200,
    seed: int = 0,
) -> EyePairs:
    """Training pairs from real captures (sec. 4.4.1) in the layout of the module docstring.

    Within each sequence every ordered pair of distinct frames whose pitch and yaw both differ
    by at most `max_angle` is a candidate; crops follow sec. 4.3.1 (box from the input frame's
    landmarks, the same box for the target, enlarged by `margin` for sec. 4.4.6). Angles are
    (target pitch - input pitch, target yaw - input yaw): keep near-vertical redirections with
    e.g. `pairs.subset(np.abs(pairs.angles[:, 1]) < 2)`.

    Args:
      path: the root folder (holding one folder per person).
      max_angle: largest |gaze difference| of a pair, per component, in degrees.
      margin: registration margin k of sec. 4.4.6.
      size: output (W, H).
      pairs_per_sequence: keep this many candidates per sequence (drawn without replacement
        from `seed`, kept in frame order); None keeps all (about frames^2 per sequence).
      seed: seeds the choice of pairs.

    Raises:
      DatasetNotFoundError: `path` is not a folder, holds no sequence, or lacks a listed image.
      ValueError: a malformed frames.csv row or an unreadable image (the message names the file
        and the CSV line).
    """
    width, height = _check_size(size)
    if int(margin) != margin or margin < 0:
        raise ValueError(f"margin must be a non-negative integer, got {margin}")
    margin = int(margin)
    if pairs_per_sequence is not None and pairs_per_sequence < 1:
        raise ValueError(f"pairs_per_sequence must be None or >= 1, got {pairs_per_sequence}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError("Eye captures folder", [root], _EYES_HOW_TO)
    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    sequences = [
        (person_index, sequence / "frames.csv")
        for person_index, person in enumerate(people)
        for sequence in sorted(person.iterdir())
        if (sequence / "frames.csv").is_file()
    ]
    if not sequences:
        raise DatasetNotFoundError(
            "Eye capture sequences (<person>/<sequence>/frames.csv)",
            [root / "<person>" / "<sequence>" / "frames.csv"],
            _EYES_HOW_TO,
        )
    parts = []
    for sequence_index, (person_index, csv_path) in enumerate(sequences):
        frames = _read_frames(csv_path)
        gaze = np.array([[f.pitch, f.yaw] for f in frames], np.float64).reshape(-1, 2)
        close = np.all(np.abs(gaze[None, :, :] - gaze[:, None, :]) <= max_angle, axis=-1)
        np.fill_diagonal(close, False)
        source, target = np.nonzero(close)
        if pairs_per_sequence is not None and len(source) > pairs_per_sequence:
            rng = np.random.default_rng([seed, sequence_index])
            keep = np.sort(rng.choice(len(source), pairs_per_sequence, replace=False))
            source, target = source[keep], target[keep]
        if len(source) == 0:
            continue
        landmarks = np.stack([f.landmarks for f in frames])
        boxes = eye_crop_box(landmarks, (width, height))
        big = enlarge_box(boxes, margin, (width, height))
        inputs = np.empty((len(source), height, width, 3), np.float32)
        targets = np.empty((len(source), height + 2 * margin, width + 2 * margin, 3), np.float32)
        for index in np.union1d(source, target):
            image = _read_image(frames[index], csv_path)
            if np.any(source == index):
                inputs[source == index] = cut_eye_crop(image, boxes[index], (width, height))
            for k in np.flatnonzero(target == index):
                targets[k] = cut_eye_crop(image, big[source[k]], (width, height), margin)
        parts.append(
            EyePairs(
                inputs=inputs,
                targets=targets,
                landmarks=crop_landmarks(landmarks[source], boxes[source], (width, height)).astype(
                    np.float32
                ),
                angles=(gaze[target] - gaze[source]).astype(np.float32),
                tilt=landmark_tilt(landmarks[source]).astype(np.float32),
                identity=np.full(len(source), person_index, np.int32),
                margin=margin,
            )
        )
    if not parts:
        raise ValueError(
            f"{root}: no pair of frames within a sequence has gaze within {max_angle} degrees"
        )
    return EyePairs(
        **{
            field: np.concatenate([getattr(part, field) for part in parts])
            for field in ("inputs", "targets", "landmarks", "angles", "tilt", "identity")
        },
        margin=margin,
    )


# ---------------------------------------------------------------------------------------------
# A picture to look at.


def eye_contact_sheet(
    path: str | PathLike[str],
    *,
    identities: Sequence[int] = tuple(range(8)),
    pitches: Sequence[float] = (-25.0, -12.5, 0.0, 12.5, 25.0),
    num_pairs: int = 12,
    zoom: int = 3,
) -> Path:
    """Writes a PNG to look at: one row per identity rendered at `pitches` (nuisance =
    identity), then `num_pairs` generated pairs (input with its landmarks, green lids and red
    pupil | aligned target, with the redirection angle), all enlarged `zoom` times."""
    from PIL import ImageDraw

    ids = np.asarray(list(identities))[:, None]
    images, landmarks = render_eye(ids, np.asarray(pitches)[None, :], nuisance=ids)
    rows, cols, h, w = images.shape[:4]
    pairs = generate_eye_pairs(num_pairs, identities=list(identities), seed=0)
    ph, pw = pairs.inputs.shape[1:3]
    pair_w = 2 * (pw * zoom + 4) + 8
    sheet_w = max(cols * (w * zoom + 4), pair_w)
    per_row = sheet_w // pair_w
    pair_h = ph * zoom + 16
    height = rows * (h * zoom + 4) + 8 + math.ceil(num_pairs / per_row) * pair_h
    sheet = Image.new("RGB", (sheet_w, height))
    draw = ImageDraw.Draw(sheet)

    def paste(image, points, left, top):
        tile = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
        tile = tile.resize((tile.width * zoom, tile.height * zoom), Image.Resampling.NEAREST)
        sheet.paste(tile, (left, top))
        for k, (x, y) in enumerate(points if points is not None else []):
            cx, cy = left + (x + 0.5) * zoom, top + (y + 0.5) * zoom
            colour = (255, 40, 40) if k == NUM_LANDMARKS - 1 else (40, 255, 80)
            draw.ellipse([cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5], fill=colour)

    for r in range(rows):
        for c in range(cols):
            paste(images[r, c], landmarks[r, c], c * (w * zoom + 4), r * (h * zoom + 4))
    top0 = rows * (h * zoom + 4) + 8
    aligned = pairs.aligned_targets()
    for k in range(num_pairs):
        left = (k % per_row) * pair_w
        top = top0 + (k // per_row) * pair_h
        paste(pairs.inputs[k], pairs.landmarks[k], left, top)
        paste(aligned[k], None, left + pw * zoom + 4, top)
        label = f"{pairs.angles[k, 0]:+.1f} deg, tilt {pairs.tilt[k]:.1f}"
        draw.text((left, top + ph * zoom + 2), label, fill=(220, 220, 220))
    out = Path(path)
    sheet.save(out)
    return out
