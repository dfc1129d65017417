"""How far a gaze redirection moves the iris, against how far a real eye's iris moves.

Asked to turn the gaze up by theta degrees, a model should move the iris as far as a real eye
rotated by theta would. In a frontal photo the iris centre turns on a circle of radius r about
the eye's centre of rotation, so turning the eye from pitch p to p + theta moves it r (sin(p +
theta) - sin p) across the image; divided by the eye's opening width W (the distance between
its corners) this is a fraction of the eye's width that does not depend on the photo's
resolution. `REAL_EYE` is the geometry used here: the iris a camera sees is the entrance pupil,
about 3 mm behind the corneal apex, and the eye turns about a centre about 13.5 mm behind the
apex, so r = 10.5 mm; W = 30 mm (an adult's palpebral fissure, 27-30 mm). 15 degrees is then
0.091 eye widths and 25 degrees 0.148. `EYEBALL_SURFACE` is the cruder model that puts the iris
on a 12 mm eyeball's surface (r = 12 mm: 0.104 and 0.169); its gains are 0.875 of these.

`iris_shift` measures the shift between two images of one eye, with nothing but the pixels and
the first image's landmarks: both images are resampled in the eye's own frame (the corner line
horizontal, 128 samples per eye width), the part of a disc around the first image's iris centre
that lies inside the eye's opening (between the lids, `LID_MARGIN` in from each) is the
template, and the best normalised cross-correlation over shifts in the second image, refined to
a fraction of a sample by a parabola, is the shift. Keeping the template off the lids matters on
real eyes, whose upper lid covers the top of the iris: a plain disc follows the lids as well,
and finds an iris that slides 0.06 eye widths up under still lids only 0.81 as far (0.99 with
the opening; `move_iris(lids_still=True)` on the benchmark's real eyes). Its error on the
renderer's eyes, whose true iris positions are known, is checked in the tests (a few
thousandths of an eye width).

`redirection_gain` runs a `GazeRedirector` on eyes in images (real photos with MediaPipe's
landmarks, or the renderer's eyes with their own) at several angles and returns the iris
shifts in eye widths; the gain is the shift divided by `REAL_EYE.shift(angle)`.
`benchmarks/gaze_gain.py` reports it for real photos and for the renderer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

SAMPLES_PER_WIDTH = 128
"""Resolution of the eye frame in which shifts are measured (samples per eye width)."""
TEMPLATE_RADIUS = 0.14
"""Radius of the template disc around the iris centre, in eye widths (an iris is about 0.2)."""
SEARCH = (0.1, 0.25)
"""Largest horizontal and vertical shift searched, in eye widths."""
GLINT_QUANTILE = 0.8
"""Values of the template brighter than this quantile (glints, sclera) are clipped to it."""
MIN_SCORE = 0.8
"""Matches below this correlation (an iris mostly under the lids, no texture) are not counted."""
LID_MARGIN = 0.08
"""The template keeps to the eye's opening shrunk by this much (eye widths): no lid margin, no
lashes. In real eyes the upper lid covers the top of the iris (MediaPipe's lid landmarks sit
0.08-0.16 eye widths above the iris centre on the benchmark's photos), so a plain disc would
follow the lids as well as the iris. Of 0.02, 0.04, 0.06 and 0.08, the margin that best finds
irises moved +-0.03 and +-0.06 eye widths under still lids on the benchmark's real eyes (all at
least 0.97 of the shift, 19 of 20 eyes measured)."""
MIN_TEMPLATE = 0.25
"""An eye whose opening leaves less than this share of the template disc is not measured."""


@dataclasses.dataclass(frozen=True)
class EyeGeometry:
    """A frontal eye: the iris centre's distance from the centre of rotation, and the opening.

    Attributes:
      rotation_radius_mm: distance of the iris centre from the eye's centre of rotation.
      eye_width_mm: distance between the eye's corners.
    """

    rotation_radius_mm: float = 10.5
    eye_width_mm: float = 30.0

    def shift(self, angle: float | np.ndarray, start: float | np.ndarray = 0.0) -> np.ndarray:
        """Iris shift (eye widths, positive up) when the pitch goes from `start` to `start +
        angle` degrees."""
        start = np.radians(np.asarray(start, np.float64))
        end = start + np.radians(np.asarray(angle, np.float64))
        return self.rotation_radius_mm / self.eye_width_mm * (np.sin(end) - np.sin(start))


REAL_EYE = EyeGeometry()
"""An adult eye: 10.5 mm from the centre of rotation to the (apparent) iris, 30 mm wide."""
EYEBALL_SURFACE = EyeGeometry(rotation_radius_mm=12.0)
"""The iris on the surface of a 12 mm eyeball (overstates the travel by 14%)."""


def eye_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Origin (the corners' midpoint), unit axes along the corner line and towards image-up,
    and the eye width W in image pixels, for one eye's 7 landmarks (`LANDMARK_NAMES` order)."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (7, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"landmarks must be 7 finite (x, y) points, got shape {points.shape}")
    outer, inner = points[0], points[3]
    width = float(np.linalg.norm(outer - inner))
    if width < 4:
        raise ValueError(f"the eye is {width:.1f} pixels wide; shifts need at least 4")
    along = (outer - inner) / width
    if along[0] < 0:
        along = -along  # left to right on screen, whichever eye
    up = np.array([along[1], -along[0]])  # image y grows downwards
    return 0.5 * (outer + inner), along, up, width


def eye_opening(landmarks: np.ndarray, u: np.ndarray, v: np.ndarray, margin: float = 0.0):
    """Whether eye-frame points (u along, v up; eye widths from the corners' midpoint, arrays of
    one shape) lie between the lids: below the upper lid's curve and above the lower lid's by
    `margin`. Each lid is the cubic through its 4 landmarks (the corners and the lid points at
    1/3 and 2/3 of the way)."""
    origin, along, up, width = eye_frame(landmarks)
    local = (np.asarray(landmarks, np.float64) - origin) / width
    frame_u, frame_v = local @ along, local @ up
    corners_u = frame_u[[0, 3]]
    inside = (u > corners_u.min()) & (u < corners_u.max())
    lids = []
    for lid in ((0, 1, 2, 3), (0, 5, 4, 3)):
        coefficients = np.polyfit(frame_u[list(lid)], frame_v[list(lid)], 3)
        lids.append(np.polyval(coefficients, u))
    upper, lower = lids if frame_v[[1, 2]].sum() >= frame_v[[4, 5]].sum() else lids[::-1]
    return inside & (v < upper - margin) & (v > lower + margin)


def _luma(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.ndim == 3:
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114])
    if image.ndim != 2:
        raise ValueError(f"images must be (H, W) or (H, W, 3), got {image.shape}")
    return image


def _sample(
    image: np.ndarray, origin, along, up, width, us: np.ndarray, vs: np.ndarray
) -> np.ndarray:
    """The image at eye-frame points (u along, v up; eye widths), bilinear."""
    u, v = np.meshgrid(us, vs)
    x = origin[0] + width * (u * along[0] + v * up[0])
    y = origin[1] + width * (u * along[1] + v * up[1])
    return ndimage.map_coordinates(image, [y, x], order=1, mode="nearest")


def _peak(scores: np.ndarray, index: int) -> float:
    """Sub-sample position of a maximum by a parabola through it and its neighbours."""
    if index == 0 or index == len(scores) - 1:
        return float(index)
    left, mid, right = scores[index - 1], scores[index], scores[index + 1]
    curve = left - 2 * mid + right
    return float(index) if curve >= 0 else index + 0.5 * (left - right) / curve


class IrisShift(NamedTuple):
    """An iris's shift in eye widths: along the corner line (towards larger x) and perpendicular
    to it (positive = up on screen), and the match's normalised cross-correlation (1 = exact)."""

    along: float
    up: float
    score: float


def iris_shift(before: np.ndarray, after: np.ndarray, landmarks: np.ndarray) -> IrisShift:
    """How far the iris moved from `before` to `after`, in eye widths.

    The template is the disc of `TEMPLATE_RADIUS` around the iris centre inside the eye's
    opening (`eye_opening`, `LID_MARGIN`): what moves is the iris, not the lids.

    Args:
      before, after: (H, W, 3) or (H, W) images of the same eye (any scale of values).
      landmarks: (7, 2) the eye's landmarks in `before` (image pixels, `LANDMARK_NAMES` order;
        the iris centre last).

    Returns:
      IrisShift (NaN shifts and score 0 where the opening leaves less than `MIN_TEMPLATE` of
      the disc: an eye nearly closed); on 240 of the renderer's eyes (60 identities turned by
      -20, -10, 10 and 25 degrees), the 202 whose score is at least `MIN_SCORE` were at most
      0.021 eye widths off the truth, median 0.0015 (tests/deepwarp/test_gain.py checks 12 at
      +-15).
    """
    origin, along, up, width = eye_frame(landmarks)
    before, after = _luma(before), _luma(after)
    step = 1.0 / SAMPLES_PER_WIDTH
    iris = np.asarray(landmarks, np.float64)[6] - origin
    centre = np.array([iris @ along, iris @ up]) / width
    reach = round(TEMPLATE_RADIUS / step)
    offsets = np.arange(-reach, reach + 1) * step
    disc = np.hypot(*np.meshgrid(offsets, offsets)) <= TEMPLATE_RADIUS
    grid_u, grid_v = np.meshgrid(centre[0] + offsets, centre[1] + offsets)
    full = disc.sum()
    disc &= eye_opening(landmarks, grid_u, grid_v, LID_MARGIN)
    if disc.sum() < MIN_TEMPLATE * full:
        return IrisShift(math.nan, math.nan, 0.0)
    template = _sample(before, origin, along, up, width, centre[0] + offsets, centre[1] + offsets)
    # Corneal glints stay where the light puts them while the iris moves: clip them away.
    ceiling = np.quantile(template[disc], GLINT_QUANTILE)
    template = np.minimum(template, ceiling)
    t = template[disc] - template[disc].mean()
    norm_t = np.linalg.norm(t)
    if norm_t < 1e-9:
        raise ValueError("the iris region of `before` is flat: no texture to follow")
    search_u, search_v = (round(s / step) for s in SEARCH)
    big_u = centre[0] + np.arange(-reach - search_u, reach + search_u + 1) * step
    big_v = centre[1] + np.arange(-reach - search_v, reach + search_v + 1) * step
    window = np.minimum(_sample(after, origin, along, up, width, big_u, big_v), ceiling)
    patches = np.lib.stride_tricks.sliding_window_view(window, disc.shape)[..., disc]
    patches = patches - patches.mean(axis=-1, keepdims=True)
    scores = patches @ t / (np.linalg.norm(patches, axis=-1) * norm_t + 1e-12)
    row, col = np.unravel_index(np.argmax(scores), scores.shape)
    shift = np.array([col - search_u, row - search_v], np.float64) * step

    def score(offset: np.ndarray) -> float:
        grid = _sample(after, origin, along, up, width, *(centre + offset)[:, None] + offsets)
        patch = np.minimum(grid, ceiling)[disc]
        patch = patch - patch.mean()
        return float(patch @ t / (np.linalg.norm(patch) * norm_t + 1e-12))

    # Refine each axis on a grid 8x finer than the search's, then by a parabola.
    fine = np.arange(-8, 9) * (step / 8)
    for axis in (1, 0):
        unit = np.eye(2)[axis]
        values = np.array([score(shift + d * unit) for d in fine])
        best = int(np.argmax(values))
        shift = shift + unit * (fine[0] + _peak(values, best) * (step / 8))
    return IrisShift(float(shift[0]), float(shift[1]), score(shift))


def move_iris(
    image: np.ndarray, landmarks: np.ndarray, up: float, lids_still: bool = False
) -> np.ndarray:
    """`image` with one eye's iris moved `up` eye widths (perpendicular to the corner line).

    A known shift to check a measurement with on real photos: pixels within 0.2 eye widths of
    the iris centre (the iris) move rigidly, the displacement falls smoothly to 0 at 0.4 eye
    widths. With `lids_still`, only the eye's opening (`eye_opening`) takes the moved pixels:
    the iris slides under lids that stay where they were. Returns float64 in the input's value
    range.
    """
    image = np.asarray(image, np.float64)
    origin, along, axis, width = eye_frame(landmarks)
    centre = np.asarray(landmarks, np.float64)[6]
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float64)
    beyond = np.clip((np.hypot(xs - centre[0], ys - centre[1]) - 0.2 * width) / (0.2 * width), 0, 1)
    weight = (1 - beyond**2) ** 2
    # out(p) = in(p - shift * weight(p)): the content moves by `up` along the eye's up axis.
    sample_y = ys - up * width * axis[1] * weight
    sample_x = xs - up * width * axis[0] * weight
    channels = image[..., None] if image.ndim == 2 else image
    moved = np.stack(
        [ndimage.map_coordinates(channels[..., c], [sample_y, sample_x], order=1, mode="nearest")
         for c in range(channels.shape[-1])], axis=-1,
    )  # fmt: skip
    if lids_still:
        u = ((xs - origin[0]) * along[0] + (ys - origin[1]) * along[1]) / width
        v = ((xs - origin[0]) * axis[0] + (ys - origin[1]) * axis[1]) / width
        moved = np.where(eye_opening(landmarks, u, v)[..., None], moved, channels)
    return moved[..., 0] if image.ndim == 2 else moved


@dataclasses.dataclass(frozen=True)
class GainResult:
    """Iris shifts of E eyes redirected by each of A angles.

    Attributes:
      angles: (A,) degrees asked (positive = up).
      shifts: (A, E) vertical iris shift, eye widths (positive = up).
      scores: (A, E) the matches' correlation (`IrisShift.score`).
      widths: (E,) eye widths in image pixels.
    """

    angles: np.ndarray
    shifts: np.ndarray
    scores: np.ndarray
    widths: np.ndarray

    def gains(self, geometry: EyeGeometry = REAL_EYE, min_score: float = MIN_SCORE) -> np.ndarray:
        """(A, E) shift / the geometric shift of a real eye turned from straight ahead; NaN
        where the match scored below `min_score`."""
        gains = self.shifts / geometry.shift(self.angles)[:, None]
        return np.where(self.scores >= min_score, gains, np.nan)


def redirection_gain(
    redirector,
    images: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray],
    mirrored: Sequence[np.ndarray],
    angles: Sequence[float],
) -> GainResult:
    """Redirects every eye of every image by each angle and measures its iris shift.

    Args:
      redirector: a `thesis_jax.deepwarp.gaze.GazeRedirector`.
      images: RGB images (uint8 or float in [0, 1]).
      landmarks: per image, (E_i, 7, 2) eye landmarks (image pixels).
      mirrored: per image, (E_i,) bool (the subject's right eyes, as `gaze.mesh_to_eyes` says).
      angles: vertical redirections in degrees.
    """
    angles = np.asarray(angles, np.float64)
    found, widths = [], []
    for image, points, flips in zip(images, landmarks, mirrored, strict=True):
        points = np.asarray(points, np.float64)
        widths += [eye_frame(p)[3] for p in points]
        per_angle = []
        for angle in angles:
            out = redirector.redirect(image, points, np.asarray(flips, bool), float(angle))
            found_here = [iris_shift(image, out, p) for p in points]
            per_angle.append([(shift.up, shift.score) for shift in found_here])
        found.append(np.asarray(per_angle).reshape(len(angles), len(points), 2))
    both = np.concatenate(found, axis=1) if found else np.zeros((len(angles), 0, 2))
    return GainResult(angles, both[..., 0], both[..., 1], np.asarray(widths))


def rendered_eyes(
    identities: Sequence[int], *, pitch: float = 0.0, size: tuple[int, int] = (192, 160),
    appearance: str = "varied", angles: Sequence[float] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The renderer's eyes (upright, clean) looking at `pitch`, with their landmarks, and how
    far their irises truly move when the same eyes turn by each of `angles`.

    Returns:
      images (N, H, W, 3), landmarks (N, 7, 2), and true shifts (A, N) in eye widths: the
      iris-centre landmark's displacement, perpendicular to the corner line.
    """
    from thesis_jax.data import eyes

    ids = np.asarray(identities)
    kwargs = dict(nuisance=ids, roll=0.0, size=size, appearance=appearance)
    images, points = eyes.render_eye(ids, pitch, **kwargs)
    frames = [eye_frame(p) for p in points]
    ups = np.stack([frame[2] for frame in frames])
    widths = np.array([frame[3] for frame in frames])
    truths = []
    for angle in angles:
        _, turned = eyes.render_eye(ids, pitch + angle, **kwargs)
        moved = turned[:, 6] - points[:, 6]  # the renderer's own iris centre
        truths.append(np.sum(moved * ups, axis=-1) / widths)
    return images, points, np.asarray(truths, np.float64).reshape(len(angles), len(ids))


SELECTION_IDENTITIES = range(2_000_000, 2_000_040)
"""Rendered identities that training, the held-out pairs and the benchmark never use: where the
checkpoints of a run are compared (`renderer_agreement`)."""
SELECTION_ANGLES = (-20.0, -15.0, -10.0, 10.0, 15.0, 20.0)


def renderer_agreement(
    redirectors: Iterable, identities: Sequence[int] = SELECTION_IDENTITIES,
    angles: Sequence[float] = SELECTION_ANGLES,
) -> np.ndarray:  # fmt: skip
    """(R, A): per redirector and angle, the median over the renderer's eyes (`identities`,
    looking ahead) of the model's iris shift over the renderer's own when the eye turns by the
    angle; 1 is a model that moves rendered eyes exactly as far as the renderer turns them.
    Reliable matches only (score >= `MIN_SCORE`); the eyes are rendered once, the redirectors
    taken one at a time (a generator of checkpoints loads each in turn)."""
    images, points, truth = rendered_eyes(identities, angles=angles)
    rows = []
    for redirector in redirectors:
        result = redirection_gain(
            redirector, list(images), [p[None] for p in points],
            [np.zeros(1, bool)] * len(points), angles,
        )  # fmt: skip
        ratios = np.where(result.scores >= MIN_SCORE, result.shifts / truth, np.nan)
        rows.append(np.nanmedian(ratios, axis=1))
    return np.asarray(rows, np.float64).reshape(len(rows), len(angles))


def summarise(gains: np.ndarray) -> dict[str, float]:
    """Median and quartiles of gains (ignores NaN)."""
    values = np.asarray(gains, np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"median": math.nan, "q25": math.nan, "q75": math.nan}
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}
