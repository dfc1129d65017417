r"""Gaze correction of a photo or a video with DeepWarp (thesis sec. 4.1, 4.5).

    python -m experiments.gaze --input=photo.jpg --angle=10 --output=out.jpg
    python -m experiments.gaze --input=call.mp4 --angle=10 --output=call_fixed.mp4
    python -m experiments.gaze --input=group.jpg --faces=all --checkpoint=runs/deepwarp/eyes_varied

Finds faces with MediaPipe's face mesh (`pip install 'thesis_jax[gaze]'` and
`pip install --no-deps mediapipe==0.10.21`), cuts both eyes with the crop rule of sec. 4.3.1,
redirects them by `--angle` degrees (positive = upwards: a person looking at the screen below
the camera then looks into it) with a trained DeepWarp and pastes them back with a feathered
seam; nothing outside the eye boxes changes. Images in, an image out (PNG, JPEG, ...); a video in
(MP4, AVI, MOV, MKV), a video out with the same frame count, size and frame rate (MP4/MOV/M4V
written as MPEG-4 part 2, AVI as MJPEG). The default model is the float16 CFW + LCM export
shipped in `thesis_jax/deepwarp/assets/` (`python -m experiments.deepwarp --config=eyes_varied`
makes it); `--checkpoint` takes an export file or a workdir of `experiments.deepwarp`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}

_INPUT = flags.DEFINE_string("input", None, "Photo or video file to correct.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the result (default: <input>_gaze<suffix>)."
)
_ANGLE = flags.DEFINE_float(
    "angle", 10.0, "Vertical redirection in degrees; positive looks up (towards a camera above)."
)
_HORIZONTAL = flags.DEFINE_float(
    "horizontal_angle", 0.0, "Horizontal redirection in degrees (models trained with eyes_2d)."
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    None,
    "DeepWarp export (.msgpack) or experiments.deepwarp workdir; default: the shipped model.",
)
_FACES = flags.DEFINE_enum(
    "faces", "largest", ["largest", "all"], "Which faces to correct when there are several."
)
_MAX_FACES = flags.DEFINE_integer("max_faces", 8, "At most this many faces are looked for.")


class GazeError(Exception):
    """A problem with the user's input; the message is shown as is."""


def read_image(path: Path) -> np.ndarray | None:
    """RGB uint8 pixels, or None if PIL cannot decode the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def open_video(path: Path):
    """An OpenCV capture that yields at least one frame, or None."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return None
    ok, _ = capture.read()
    if not ok:
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return capture


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}_gaze{path.suffix}")


def correct_frame(redirector, mesh, frame: np.ndarray, faces: str) -> tuple[np.ndarray, int]:
    """(corrected RGB frame, number of faces found)."""
    from thesis_jax.deepwarp import gaze

    meshes = mesh(frame)
    if len(meshes) == 0:
        return frame, 0
    chosen = gaze.choose_faces(meshes, faces)
    return redirector.redirect_faces(frame, chosen, _ANGLE.value, _HORIZONTAL.value), len(meshes)


def correct_photo(redirector, image: np.ndarray, source: Path, output: Path) -> None:
    from PIL import Image

    from thesis_jax.deepwarp.landmarks import FaceMesh

    with FaceMesh(max_faces=_MAX_FACES.value) as mesh:
        result, found = correct_frame(redirector, mesh, image, _FACES.value)
    if found == 0:
        raise GazeError(f"no face found in {source}")
    if found > 1 and _FACES.value == "largest":
        print(f"{found} faces in {source}: corrected the largest (--faces=all corrects every one)")
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    Image.fromarray(result).save(partial)
    os.replace(partial, output)
    corrected = found if _FACES.value == "all" else 1
    print(f"wrote {output} ({corrected} face(s) redirected by {_ANGLE.value:+g} degrees)")


def correct_video(redirector, capture, source: Path, output: Path) -> None:
    import cv2

    from thesis_jax.core.metrics import progress_bar
    from thesis_jax.deepwarp.landmarks import FaceMesh

    codec = VIDEO_CODECS.get(output.suffix.lower())
    if codec is None:
        raise GazeError(f"--output {output}: a video needs one of {', '.join(VIDEO_CODECS)}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise GazeError(f"OpenCV cannot write {output.suffix} video ({codec}) to {output}")
    frames = with_faces = several = 0
    start = time.perf_counter()
    try:
        with FaceMesh(max_faces=_MAX_FACES.value, video=True) as mesh:
            bar = progress_bar(max(total, 0), desc="gaze")
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                rgb, found = correct_frame(redirector, mesh, bgr[..., ::-1].copy(), _FACES.value)
                writer.write(np.ascontiguousarray(rgb[..., ::-1]))
                frames += 1
                with_faces += found > 0
                several += found > 1
                bar.update(1)
            bar.close()
    finally:
        writer.release()
        capture.release()
    seconds = time.perf_counter() - start
    if with_faces == 0:
        partial.unlink(missing_ok=True)
        raise GazeError(f"no face found in any of the {frames} frames of {source}")
    os.replace(partial, output)
    if several and _FACES.value == "largest":
        print(f"{several} frames had several faces: corrected the largest (--faces=all: every one)")
    print(
        f"wrote {output}: {frames} frames ({width}x{height}, {fps:g} fps), a face in "
        f"{with_faces}, {frames / max(seconds, 1e-9):.1f} frames/s"
    )


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
    if not _INPUT.value:
        raise GazeError("--input is required: a photo or a video file")
    source = Path(_INPUT.value).expanduser()
    if not source.is_file():
        raise GazeError(f"--input {source}: no such file")
    output = Path(_OUTPUT.value).expanduser() if _OUTPUT.value else default_output(source)

    from thesis_jax.deepwarp import gaze
    from thesis_jax.deepwarp.landmarks import import_mediapipe

    import_mediapipe()  # fails early, naming the install, before the model loads
    checkpoint = _CHECKPOINT.value
    if checkpoint is None and not gaze.DEFAULT_MODEL.is_file():
        raise GazeError(
            f"the shipped model {gaze.DEFAULT_MODEL} is missing; pass --checkpoint (train one "
            "with `python -m experiments.deepwarp --config=eyes_varied`)"
        )
    try:
        redirector = gaze.GazeRedirector.load(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise GazeError(f"--checkpoint: {e}") from None
    try:
        redirector.check_angle(_ANGLE.value, _HORIZONTAL.value)
    except ValueError as e:
        raise GazeError(f"--angle: {e}") from None

    image = read_image(source) if source.suffix.lower() not in VIDEO_CODECS else None
    if image is not None:
        if output.suffix.lower() not in IMAGE_SUFFIXES:
            raise GazeError(f"--output {output}: an image needs one of {', '.join(IMAGE_SUFFIXES)}")
        correct_photo(redirector, image, source, output)
        return
    capture = open_video(source)
    if capture is None:
        raise GazeError(f"cannot read {source}: neither an image (PIL) nor a video (OpenCV)")
    correct_video(redirector, capture, source, output)


def main(argv: list[str]) -> None:
    from thesis_jax.deepwarp.landmarks import MissingMediaPipeError

    try:
        run(argv)
    except (GazeError, MissingMediaPipeError) as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
