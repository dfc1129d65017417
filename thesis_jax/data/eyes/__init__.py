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

Modules: `geometry` (crop boxes, crops, `EyePairs`), `appearance` (who a person is, per-pair
nuisance, the "varied" camera), `shading` (the eye-frame scene and its analytic shading),
`renderer` (`render_eye`, `generate_eye_pairs`) and `folder` (`load_eye_folder`, real captures).
Every public name is importable from `thesis_jax.data.eyes`.
"""

from thesis_jax.data.eyes.appearance import APPEARANCES
from thesis_jax.data.eyes.folder import load_eye_folder
from thesis_jax.data.eyes.geometry import (
    DEFAULT_CROP_SIZE,
    HARD_TILT,
    LANDMARK_NAMES,
    NUM_LANDMARKS,
    EyePairs,
    crop_landmarks,
    cut_eye_crop,
    enlarge_box,
    eye_crop_box,
    landmark_tilt,
    uncrop_landmarks,
)
from thesis_jax.data.eyes.renderer import (
    PITCH_LIMIT,
    RENDER_SIZE,
    YAW_LIMIT,
    YAW_SPREAD,
    generate_eye_pairs,
    render_eye,
)

__all__ = [
    "APPEARANCES",
    "DEFAULT_CROP_SIZE",
    "HARD_TILT",
    "LANDMARK_NAMES",
    "NUM_LANDMARKS",
    "PITCH_LIMIT",
    "RENDER_SIZE",
    "YAW_LIMIT",
    "YAW_SPREAD",
    "EyePairs",
    "crop_landmarks",
    "cut_eye_crop",
    "enlarge_box",
    "eye_crop_box",
    "generate_eye_pairs",
    "landmark_tilt",
    "load_eye_folder",
    "render_eye",
    "uncrop_landmarks",
]
