"""Eye-crop geometry (thesis sec. 4.3.1, 4.4.6) and the pairs DeepWarp trains on.

The crop box of sec. 4.3.1 around an eye's 7 landmarks, cutting and resizing crops (with the
registration margin of sec. 4.4.6), moving points between image and crop pixels, and the tilt
of sec. 4.4.2. Used on rendered eyes and on real photos alike; conventions in
`thesis_jax.data.eyes`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_CROP_SIZE = (51, 41)
"""Output crops W x H (sec. 4.3.1)."""
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
HARD_TILT = 8.0
"""Sec. 4.4.2: a sample is "hard" when its tilt is at least this (degrees)."""


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
    width, height = check_size(size)
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
    width, height = check_size(size)
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
    width, height = check_size(size)
    x = (points[..., 0] - box[..., 0]) * width / (box[..., 2] - box[..., 0]) - 0.5
    y = (points[..., 1] - box[..., 1]) * height / (box[..., 3] - box[..., 1]) - 0.5
    return np.stack([x, y], axis=-1)


def uncrop_landmarks(
    points: ArrayLike, box: ArrayLike, size: tuple[int, int] = DEFAULT_CROP_SIZE
) -> np.ndarray:
    """Inverse of `crop_landmarks`: crop pixels (..., N, 2) -> image pixels."""
    points = np.asarray(points, np.float64)
    box = np.asarray(box, np.float64)[..., None, :]
    width, height = check_size(size)
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
    width, height = check_size(size)
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


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(value) for value in size)
    if width < 2 or height < 2:
        raise ValueError(f"size must be (W, H) with W, H >= 2, got {size}")
    return width, height
