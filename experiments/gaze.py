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
written as MPEG-4 part 2, AVI as MJPEG) and the input's audio and subtitle streams. The input is
never replaced, an existing output only with `--overwrite`. The default model is the float16
CFW + LCM export shipped in `thesis_jax/deepwarp/assets/` (`python -m experiments.deepwarp
--config=eyes_varied` makes it); `--checkpoint` takes an export file or a workdir of
`experiments.deepwarp`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from thesis_jax.core.errors import UserError, one_line_errors

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
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace --output if it exists (the input is never replaced)."
)


class GazeError(UserError):
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


def check_output(source: Path, output: Path, overwrite: bool) -> None:
    """The input is never replaced; an existing output only with `overwrite`; a missing
    folder for the output is created."""
    if output.exists() and output.resolve() == source.resolve():
        raise GazeError(
            f"--output {output} is the input: gaze correction never replaces the original "
            "(choose another --output)"
        )
    if output.is_dir():
        raise GazeError(f"--output {output} is a folder; name a file in it")
    if output.exists() and not overwrite:
        raise GazeError(f"--output {output} exists; pass --overwrite to replace it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GazeError(f"--output {output}: cannot create its folder ({e.strerror})") from None


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
    kept = carry_other_streams(source, partial, output)
    partial.unlink(missing_ok=True)
    if several and _FACES.value == "largest":
        print(f"{several} frames had several faces: corrected the largest (--faces=all: every one)")
    print(
        f"wrote {output}: {frames} frames ({width}x{height}, {fps:g} fps){kept}, a face in "
        f"{with_faces}, {frames / max(seconds, 1e-9):.1f} frames/s"
    )


def require_av():
    """PyAV, or one line naming the install (checked before a video's frames are processed)."""
    try:
        import av
    except ImportError:
        raise GazeError(
            "videos need PyAV to keep their sound: pip install 'thesis_jax[gaze]' (or av)"
        ) from None
    return av


def carry_other_streams(source: Path, frames_file: Path, output: Path) -> str:
    """Writes `output`: the corrected video stream of `frames_file` with every audio and
    subtitle stream of `source`, packets copied unchanged (PyAV, which ships its own FFmpeg);
    audio the output's container cannot hold as it is is re-encoded (AAC, or PCM in AVI).
    Returns what was kept, for the summary line (", with 1 audio stream").
    """
    av = require_av()

    partial = output.with_name(f".{output.stem}.muxed{output.suffix}")
    with av.open(str(source)) as original:
        streams = [s for s in original.streams if s.type in ("audio", "subtitle")]
        kinds = [s.type for s in streams]
        if not streams:
            os.replace(frames_file, output)
            return ""
        try:
            _mux(original, streams, frames_file, partial, reencode=False)
        except (av.FFmpegError, ValueError):
            original.seek(0)
            _mux(original, streams, frames_file, partial, reencode=True)
    os.replace(partial, output)
    return ", with " + " and ".join(
        f"{kinds.count(kind)} {kind} stream{'s' if kinds.count(kind) > 1 else ''}"
        for kind in ("audio", "subtitle")
        if kind in kinds
    )


def _mux(original, streams, frames_file: Path, output: Path, *, reencode: bool) -> None:
    """Interleaves the video packets of `frames_file` with `streams` of `original` by time."""
    import heapq

    import av

    with av.open(str(frames_file)) as frames, av.open(str(output), "w") as out:
        video = frames.streams.video[0]
        targets = {("video", video.index): out.add_stream_from_template(video)}
        encoders = {}
        for stream in streams:
            if reencode and stream.type == "audio":
                codec = "pcm_s16le" if output.suffix.lower() == ".avi" else "aac"
                target = out.add_stream(codec, rate=stream.codec_context.sample_rate)
                channels = stream.codec_context.layout.nb_channels  # AVI's PCM: no order
                target.layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
                encoders[stream.index] = (target, av.AudioResampler(
                    format=target.codec_context.format, layout=target.layout, rate=target.rate
                ))  # fmt: skip
            else:
                target = out.add_stream_from_template(stream)
            targets[("other", stream.index)] = target

        def packets(container, chosen, tag):
            for packet in container.demux(*chosen):
                if packet.dts is not None or (tag == "other" and packet.stream.index in encoders):
                    seconds = float((packet.dts or 0) * packet.time_base)
                    yield seconds, tag, packet

        merged = heapq.merge(
            packets(frames, [video], "video"),
            packets(original, streams, "other"),
            key=lambda item: item[0],
        )
        for _, tag, packet in merged:
            if tag == "other" and packet.stream.index in encoders:
                target, resampler = encoders[packet.stream.index]
                for frame in packet.decode():  # an empty packet at the end flushes the decoder
                    for resampled in resampler.resample(frame):
                        out.mux(target.encode(resampled))
                continue
            packet.stream = targets[(tag, packet.stream.index)]
            out.mux(packet)
        for target, resampler in encoders.values():
            for resampled in resampler.resample(None):
                out.mux(target.encode(resampled))
            out.mux(target.encode(None))


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
    if not _INPUT.value:
        raise GazeError("--input is required: a photo or a video file")
    source = Path(_INPUT.value).expanduser()
    if not source.is_file():
        raise GazeError(f"--input {source}: no such file")
    output = Path(_OUTPUT.value).expanduser() if _OUTPUT.value else default_output(source)
    check_output(source, output, _OVERWRITE.value)

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
    require_av()
    correct_video(redirector, capture, source, output)


def main(argv: list[str]) -> None:
    from thesis_jax.deepwarp.landmarks import MissingMediaPipeError

    with one_line_errors():
        try:
            run(argv)
        except MissingMediaPipeError as e:
            raise GazeError(str(e)) from None


if __name__ == "__main__":
    app.run(main)
