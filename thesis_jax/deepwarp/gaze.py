"""Gaze correction of real photos and video frames with a trained DeepWarp (thesis sec. 4.1, 4.5).

The pipeline of sec. 4.5 ("a person in a video call looks at the camera"):

1. Face landmarks (`thesis_jax.deepwarp.landmarks`, MediaPipe's 478-point mesh with irises)
   -> the 7 landmarks per eye of sec. 4.3.1 (`mesh_to_eyes`): the two eye corners, the upper
   and lower lid at 1/3 and 2/3 of the way from the inner to the outer corner (interpolated
   along MediaPipe's lid contours, as the procedural renderer defines them) and the iris centre.
2. Eye crops with the thesis's rule (`thesis_jax.data.eyes.eye_crop_box`: the landmarks' box
   enlarged to R x 0.8R, R the corner distance, resampled to 51 x 41). The model works on left
   eyes (inner corner on the left of the crop); right eyes are mirrored (`mirrored=True`).
3. DeepWarp on both eyes (all faces) in one jitted call: a flow field and, for CFW + LCM, the
   lightness mask (sec. 4.3.2-4.3.4).
4. Paste-back at the image's own resolution (`paste_eye`): the crop's flow and mask are
   resampled onto the image pixels inside the crop box, the original pixels are warped with
   them (eq. 4.3.4, 4.3.6 on the full-resolution image, so a large eye stays sharp) and blended
   in with a feathered seam; pixels outside the eye boxes are left bit-identical.

    redirector = GazeRedirector.load()                 # the shipped model, or a run's export
    with FaceMesh(max_faces=1) as mesh:
        out = redirector.redirect_faces(image, mesh(image), angle=10.0)   # look 10 deg up
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from thesis_jax.data import eyes
from thesis_jax.deepwarp.export import Architecture, load_export
from thesis_jax.deepwarp.landmarks import NUM_MESH_POINTS
from thesis_jax.deepwarp.train import init, predict

DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "gaze_cfw_lcm.msgpack"
"""CFW + LCM trained on the renderer's "varied" eyes (`experiments.deepwarp --config=eyes_varied`),
the checkpoint `experiments.deepwarp_export --select` picks, stored in float16."""
FEATHER = 0.2
"""Width of the blending ramp at each side of the crop box, as a fraction of the box's size."""

# MediaPipe face-mesh indices of each eye. "left" is the subject's left eye (image right in an
# unmirrored photo); lids run from the inner to the outer corner.
MESH_EYES = {
    "right": {
        "upper": (133, 173, 157, 158, 159, 160, 161, 246, 33),
        "lower": (133, 155, 154, 153, 145, 144, 163, 7, 33),
        "iris": 468,
    },
    "left": {
        "upper": (362, 398, 384, 385, 386, 387, 388, 466, 263),
        "lower": (362, 382, 381, 380, 374, 373, 390, 249, 263),
        "iris": 473,
    },
}


def _lid_point(contour: np.ndarray, inner: np.ndarray, outer: np.ndarray, fraction: float):
    """The point of a lid polyline (inner -> outer corner) whose projection on the corner line
    lies at `fraction` of the way from the inner corner (sec. 4.3.1's lid landmarks)."""
    axis = outer - inner
    along = (contour - inner) @ axis / max(float(axis @ axis), 1e-12)
    along = np.maximum.accumulate(along)  # a lid crosses each position once
    return np.array([np.interp(fraction, along, contour[:, k]) for k in range(2)])


def eye_landmarks(mesh: np.ndarray, side: str) -> np.ndarray:
    """The 7 landmarks (7, 2) of one eye from a face's 478 mesh points (image pixels).

    Order of `thesis_jax.data.eyes.LANDMARK_NAMES`: outer corner, upper lid at 2/3 and 1/3 of
    the way from the inner to the outer corner, inner corner, lower lid at 1/3 and 2/3, pupil
    (the iris centre). `side` is the subject's "left" or "right" eye.
    """
    mesh = np.asarray(mesh, np.float64)
    if mesh.shape != (NUM_MESH_POINTS, 2):
        raise ValueError(f"mesh must be ({NUM_MESH_POINTS}, 2) points, got {mesh.shape}")
    if side not in MESH_EYES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    indices = MESH_EYES[side]
    upper = mesh[list(indices["upper"])]
    lower = mesh[list(indices["lower"])]
    inner, outer = upper[0], upper[-1]
    return np.stack(
        [
            outer,
            _lid_point(upper, inner, outer, 2 / 3),
            _lid_point(upper, inner, outer, 1 / 3),
            inner,
            _lid_point(lower, inner, outer, 1 / 3),
            _lid_point(lower, inner, outer, 2 / 3),
            mesh[indices["iris"]],
        ]
    )


def mesh_to_eyes(meshes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces (F, 478, 2) -> eyes (2F, 7, 2) image pixels and `mirrored` (2F,) bool.

    Per face the subject's right eye (mirrored into a left eye for the model), then the left.
    """
    meshes = np.asarray(meshes, np.float64).reshape(-1, NUM_MESH_POINTS, 2)
    points = [eye_landmarks(m, side) for m in meshes for side in ("right", "left")]
    landmarks = np.stack(points) if points else np.zeros((0, eyes.NUM_LANDMARKS, 2))
    return landmarks, np.tile([True, False], len(meshes))


@dataclasses.dataclass(frozen=True)
class EyeCrops:
    """Model inputs for E eyes, in the model's left-eye frame (mirrored eyes flipped).

    Attributes:
      images: (E, H, W, 3) float32 in [0, 1].
      landmarks: (E, 7, 2) float32 crop pixels.
      boxes: (E, 4) float64 crop boxes (x0, y0, x1, y1) in image pixels.
      mirrored: (E,) bool, True where the crop was flipped left-right.
    """

    images: np.ndarray
    landmarks: np.ndarray
    boxes: np.ndarray
    mirrored: np.ndarray


def cut_eyes(
    image: np.ndarray,
    landmarks: np.ndarray,
    mirrored: np.ndarray,
    size: tuple[int, int] = eyes.DEFAULT_CROP_SIZE,
) -> EyeCrops:
    """Crops E eyes (sec. 4.3.1) from an RGB image (H, W, 3) (uint8 or float in [0, 1]).

    landmarks: (E, 7, 2) image pixels; mirrored: (E,) which eyes to flip into left eyes.
    """
    pixels = _as_float(image)
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, eyes.NUM_LANDMARKS, 2)
    mirrored = np.asarray(mirrored, bool).reshape(-1)
    if len(mirrored) != len(landmarks):
        raise ValueError(f"{len(landmarks)} eyes but {len(mirrored)} mirrored flags")
    width, _ = size
    boxes = eyes.eye_crop_box(landmarks, size)
    crops, points = [], []
    for box, eye, flip in zip(boxes, landmarks, mirrored, strict=True):
        crop = eyes.cut_eye_crop(pixels, box, size)
        local = eyes.crop_landmarks(eye, box, size)
        if flip:
            crop = crop[:, ::-1]
            local = np.stack([width - 1 - local[:, 0], local[:, 1]], axis=-1)
        crops.append(crop)
        points.append(local)
    h, w = size[1], size[0]
    return EyeCrops(
        images=np.stack(crops) if crops else np.zeros((0, h, w, 3), np.float32),
        landmarks=np.asarray(points, np.float32).reshape(-1, eyes.NUM_LANDMARKS, 2),
        boxes=boxes.reshape(-1, 4),
        mirrored=mirrored,
    )


def _as_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def box_pixels(box: np.ndarray, height: int, width: int) -> tuple[slice, slice]:
    """The image rows and columns whose pixel centres lie inside `box` (clipped to the image)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cols = slice(max(math.ceil(x0), 0), min(math.floor(x1), width - 1) + 1)
    rows = slice(max(math.ceil(y0), 0), min(math.floor(y1), height - 1) + 1)
    return rows, cols


def _feather(position: np.ndarray, length: int, feather: float) -> np.ndarray:
    """Blend weight along one axis of the crop: 0 at the box edge, 1 beyond `feather` of it,
    smooth in between. position: crop pixel coordinates (pixel centres at 0..length-1)."""
    edge = np.minimum(position + 0.5, length - 0.5 - position) / max(feather * length, 1e-6)
    ramp = np.clip(edge, 0.0, 1.0)
    return ramp * ramp * (3 - 2 * ramp)


def paste_eye(
    image: np.ndarray,
    source: np.ndarray,
    box: np.ndarray,
    flow: np.ndarray,
    mask: np.ndarray | None,
    *,
    mirrored: bool,
    feather: float = FEATHER,
) -> None:
    """Applies one eye's crop-sized flow (and lightness mask) to `image` in place.

    For each image pixel p inside `box`: the crop position c(p); the flow there, in image
    pixels, D(p); the warped value S(source, D)(p) = source(p + D(p)) (eq. 4.3.4); the lightness
    correction O (1 - M) + M (eq. 4.3.6); then image(p) += w(p) (that - image(p)), with w
    falling smoothly to 0 at the box's edges (the feathered seam). Pixels outside the box are
    not touched.

    Args:
      image: (H, W, 3) float array to modify.
      source: (H, W, 3) float, the unmodified frame the warp samples from.
      box: (x0, y0, x1, y1) crop box in image pixels.
      flow: (h, w, 2) the model's flow in crop pixels (model frame: flipped if `mirrored`).
      mask: (h, w, 1) the LCM mask in [0, 1], or None.
      mirrored: the crop was flipped left-right before the model saw it.
      feather: the blending ramp's width as a fraction of the box's width and height.
    """
    h, w = flow.shape[:2]
    if mirrored:
        flow = flow[:, ::-1] * np.array([-1.0, 1.0], np.float32)
        mask = None if mask is None else mask[:, ::-1]
    rows, cols = box_pixels(box, image.shape[0], image.shape[1])
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return
    x0, y0, x1, y1 = (float(v) for v in box)
    step_x, step_y = (x1 - x0) / w, (y1 - y0) / h
    ys = np.arange(rows.start, rows.stop, dtype=np.float64)
    xs = np.arange(cols.start, cols.stop, dtype=np.float64)
    cy = (ys - y0) / step_y - 0.5
    cx = (xs - x0) / step_x - 0.5
    grid_y, grid_x = np.meshgrid(cy, cx, indexing="ij")

    def at_crop(field: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(field, [grid_y, grid_x], order=1, mode="nearest")

    dx = at_crop(flow[..., 0]) * step_x
    dy = at_crop(flow[..., 1]) * step_y
    sample_y = ys[:, None] + dy
    sample_x = xs[None, :] + dx
    warped = np.stack(
        [
            ndimage.map_coordinates(source[..., k], [sample_y, sample_x], order=1, mode="nearest")
            for k in range(3)
        ],
        axis=-1,
    )
    if mask is not None:
        m = at_crop(mask[..., 0])[..., None]
        warped = warped * (1 - m) + m  # eq. 4.3.6
    weight = (_feather(cy, h, feather)[:, None] * _feather(cx, w, feather)[None, :])[..., None]
    region = image[rows, cols]
    image[rows, cols] = np.where(weight > 0, region + weight * (warped - region), region)


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _flow_and_mask(
    params: Any, model_state: Any, batch: dict[str, jax.Array], *, apply_fn: Any
) -> tuple[jax.Array, jax.Array]:
    """DeepWarp's flow (B, H, W, 2) and lightness mask (B, H, W, 1; zeros without an LCM)."""
    out = predict(params, batch, apply_fn=apply_fn, model_state=model_state)
    mask = out.get("mask", jnp.zeros((*out["flow"].shape[:-1], 1), out["flow"].dtype))
    return out["flow"], mask


class GazeRedirector:
    """A trained DeepWarp model applied to eyes in real images (owns the weights and the jit).

    Args:
      params, model_state: the network's parameters and BatchNorm statistics.
      arch: the architecture, crop size and angle dimensions (`thesis_jax.deepwarp.export`).
      feather: width of the blending ramp as a fraction of the eye box.
    """

    def __init__(
        self, params: Any, model_state: Any, arch: Architecture, *, feather: float = FEATHER
    ):
        self.arch = arch
        self.feather = feather
        self._params, self._model_state = jax.device_put((params, model_state))
        self._apply = arch.model().apply

    @classmethod
    def load(
        cls, path: str | os.PathLike | None = None, step: int | None = None, **kwargs: Any
    ) -> GazeRedirector:
        """From an export file, a variant folder or a workdir of `experiments.deepwarp`
        (its `cfw_lcm` variant, else the last trained one; `step`: one of its kept
        checkpoints); None: the shipped model."""
        return cls(*load_model(DEFAULT_MODEL if path is None else path, step), **kwargs)

    def check_angle(self, vertical: float, horizontal: float = 0.0) -> np.ndarray:
        """The model's angle vector (A,) for a redirection; ValueError if out of its range."""
        limit = self.arch.max_angle
        for name, value in (("angle", vertical), ("horizontal angle", horizontal)):
            if not math.isfinite(value) or abs(value) > limit:
                raise ValueError(
                    f"{name} must be a number of degrees in [-{limit:g}, {limit:g}] (the range "
                    f"the model was trained on), got {value}"
                )
        if horizontal and self.arch.angle_dims < 2:
            raise ValueError("this model redirects vertically only; train eyes_2d for horizontal")
        return np.array([vertical, horizontal][: self.arch.angle_dims], np.float32)

    def predict(
        self, crops: EyeCrops, vertical: float, horizontal: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flows (E, h, w, 2) and masks (E, h, w, 1) for E eye crops, in one jitted call.

        The batch is padded to a power of two (at least 2: one face's eyes), so a video with a
        changing number of faces compiles a handful of shapes. A mirrored eye's horizontal
        redirection is negated (its pupil moves the other way in the flipped crop).
        """
        angle = self.check_angle(vertical, horizontal)
        count = len(crops.images)
        if count == 0:
            h, w = self.arch.crop_size[1], self.arch.crop_size[0]
            return np.zeros((0, h, w, 2), np.float32), np.zeros((0, h, w, 1), np.float32)
        if crops.images.shape[1:3] != (self.arch.crop_size[1], self.arch.crop_size[0]):
            raise ValueError(f"crops must be {self.arch.crop_size} (W, H), got "
                             f"{crops.images.shape[1:3][::-1]}")  # fmt: skip
        angles = np.tile(angle, (count, 1))
        if self.arch.angle_dims > 1:
            angles[crops.mirrored, 1] *= -1
        padded = max(2, 1 << (count - 1).bit_length())
        pad = [(0, padded - count)]

        def grow(x: np.ndarray) -> np.ndarray:
            return np.pad(x, pad + [(0, 0)] * (x.ndim - 1))

        batch = {
            "image": grow(crops.images),
            "landmarks": grow(crops.landmarks),
            "angle": grow(angles),
        }
        flow, mask = _flow_and_mask(self._params, self._model_state, batch, apply_fn=self._apply)
        return np.asarray(flow)[:count], np.asarray(mask)[:count]

    def redirect(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        mirrored: np.ndarray,
        vertical: float,
        horizontal: float = 0.0,
    ) -> np.ndarray:
        """Redirects the gaze of E eyes (landmarks (E, 7, 2) image pixels) in an RGB image.

        Returns a new image of the input's dtype (uint8 or float); pixels outside the eyes'
        crop boxes are bit-identical to the input.
        """
        self.check_angle(vertical, horizontal)
        crops = cut_eyes(image, landmarks, mirrored, tuple(self.arch.crop_size))
        flows, masks = self.predict(crops, vertical, horizontal)
        source = _as_float(image)
        result = source.copy()
        for k in range(len(flows)):
            mask = masks[k] if self.arch.variant == "cfw_lcm" else None
            paste_eye(result, source, crops.boxes[k], flows[k], mask,
                      mirrored=bool(crops.mirrored[k]), feather=self.feather)  # fmt: skip
        return _like(result, source, image)

    def redirect_faces(
        self, image: np.ndarray, meshes: np.ndarray, vertical: float, horizontal: float = 0.0
    ) -> np.ndarray:
        """`redirect` for every face in `meshes` (F, 478, 2) (MediaPipe face-mesh points)."""
        landmarks, mirrored = mesh_to_eyes(meshes)
        return self.redirect(image, landmarks, mirrored, vertical, horizontal)


def _like(result: np.ndarray, source: np.ndarray, image: np.ndarray) -> np.ndarray:
    """`image` with the pixels where `result` differs from `source` (its float32 copy) replaced,
    in `image`'s dtype (uint8 rounded); every other pixel stays bit-identical."""
    image = np.asarray(image)
    out = image.copy()
    changed = np.any(result != source, axis=-1)
    values = result[changed]
    if image.dtype == np.uint8:
        values = np.clip(values, 0.0, 1.0) * 255.0 + 0.5
    out[changed] = values.astype(image.dtype)
    return out


def load_model(
    path: str | os.PathLike, step: int | None = None
) -> tuple[Any, dict[str, Any], Architecture]:
    """(params, model_state, arch) from an export file or an `experiments.deepwarp` folder.

    A folder may be a variant folder (`<workdir>/<variant>`, with `export.msgpack` or orbax
    `checkpoints/`) or a workdir (its `cfw_lcm` variant, else the last variant of its config).
    `step` picks one of the folder's kept checkpoints (`checkpoint_steps`) instead of its
    export or newest checkpoint.
    """
    path = Path(path)
    if path.is_file():
        if step is not None:
            raise ValueError(f"{path} is an export file; `step` picks a checkpoint of a run")
        return load_export(path)
    folder, workdir = _variant_folder(path)
    if step is None and (folder / "export.msgpack").is_file():
        return load_export(folder / "export.msgpack")
    return _restore_variant(folder, workdir, step)


def checkpoint_steps(path: str | os.PathLike) -> list[int]:
    """The steps of the checkpoints a run's folder keeps (see `load_model`), oldest first."""
    from thesis_jax.core import Checkpointer

    folder, _ = _variant_folder(Path(path))
    if not (folder / "checkpoints").is_dir():
        return []
    with Checkpointer(folder / "checkpoints", save_every=1) as checkpointer:
        return sorted(checkpointer.all_steps())


def _variant_folder(path: Path) -> tuple[Path, Path]:
    if not path.is_dir():
        raise FileNotFoundError(
            f"no DeepWarp model at {path}: pass an export.msgpack or a workdir of "
            "`python -m experiments.deepwarp --config=eyes_varied`"
        )
    config_file = path / "config.json"
    if config_file.is_file():  # a workdir: pick its variant
        variants = json.loads(config_file.read_text()).get("variants", [])
        chosen = "cfw_lcm" if "cfw_lcm" in variants else (variants[-1] if variants else "")
        return path / chosen, path
    return path, path.parent


def _restore_variant(
    folder: Path, workdir: Path, step: int | None
) -> tuple[Any, dict[str, Any], Architecture]:
    config_file = workdir / "config.json"
    if not (folder / "checkpoints").is_dir() or not config_file.is_file():
        raise FileNotFoundError(
            f"{folder} holds no DeepWarp model (export.msgpack, or checkpoints/ with "
            f"{config_file}); train one with `python -m experiments.deepwarp`"
        )
    import ml_collections

    from thesis_jax.core import Checkpointer

    config = ml_collections.ConfigDict(json.loads(config_file.read_text()))
    config.model.variant = folder.name
    for key in ("crop_size", "model.widths", "model.kernels", "model.lcm_widths"):
        parent, _, leaf = key.rpartition(".")
        holder = config.model if parent else config
        holder[leaf] = tuple(holder[leaf])
    template = init(jax.random.PRNGKey(0), config)
    with Checkpointer(folder / "checkpoints", save_every=1) as checkpointer:
        if step is not None and step not in checkpointer.all_steps():
            raise FileNotFoundError(
                f"{folder / 'checkpoints'} keeps no checkpoint of step {step}; it keeps "
                f"{sorted(checkpointer.all_steps())}"
            )
        state = checkpointer.restore(template, step)
    if state is None:
        raise FileNotFoundError(f"{folder / 'checkpoints'} holds no checkpoint yet")
    params = jax.tree.map(np.asarray, state.params)
    model_state = jax.tree.map(np.asarray, state.model_state)
    return params, model_state, Architecture.from_config(config)


def eye_boxes(landmarks: np.ndarray, size: Sequence[int] = eyes.DEFAULT_CROP_SIZE) -> np.ndarray:
    """The crop boxes (E, 4) of eyes (E, 7, 2): the only pixels `redirect` may change."""
    return eyes.eye_crop_box(np.asarray(landmarks).reshape(-1, eyes.NUM_LANDMARKS, 2), size)


FACE_MODES = ("largest", "all")


def choose_faces(meshes: np.ndarray, faces: str) -> np.ndarray:
    """The faces to redirect among MediaPipe's (F, 478, 2): the largest one, or all."""
    if faces not in FACE_MODES:
        raise ValueError(f"faces must be one of {FACE_MODES}, got {faces!r}")
    meshes = np.asarray(meshes).reshape(-1, NUM_MESH_POINTS, 2)
    if faces == "all" or len(meshes) <= 1:
        return meshes
    from thesis_jax.deepwarp.landmarks import face_areas

    return meshes[[int(np.argmax(face_areas(meshes)))]]
