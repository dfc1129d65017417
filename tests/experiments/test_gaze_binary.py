"""`python -m experiments.gaze` on a photo and a tiny video, and its error messages.

Two runs go through `python -m` (the photo, a missing input); the others call the binary's
`main` in this process with the same flags, so MediaPipe, the model and its compiled function
load once instead of once per run.
"""

import av
import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.experiments.binaries import run_module


def face_frames(count: int) -> list[np.ndarray]:
    """320 x 240 RGB frames around the astronaut's face, drifting 2 pixels per frame."""
    image = skimage.data.astronaut()
    return [image[10 + 2 * k : 250 + 2 * k, 70 + 2 * k : 390 + 2 * k] for k in range(count)]


@pytest.fixture
def gaze_main(capsys):
    """`gaze_main(*flags) -> (exit code, stdout, stderr)`: experiments.gaze's `main` in-process."""
    from absl import flags

    from experiments import gaze

    def run(*args: str) -> tuple[int, str, str]:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["gaze", *args])
        try:
            gaze.main(["gaze"])
            code = 0
        except SystemExit as e:
            code = e.code
        finally:
            flags.FLAGS.unparse_flags()
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("gaze") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return str(path)


def test_gaze_binary_corrects_a_video_keeping_frame_count_and_size(tmp_path, gaze_main):
    source, output = tmp_path / "call.avi", tmp_path / "fixed.mp4"
    frames = face_frames(6)
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    code, stdout, stderr = gaze_main(f"--input={source}", f"--output={output}", "--angle=12")
    assert code == 0, stderr[-3000:]
    assert "6 frames" in stdout and "a face in 6" in stdout
    capture = cv2.VideoCapture(str(output))
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    assert int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 240
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    decoded = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame[..., ::-1])
    assert len(decoded) == 6
    # Lossy codecs: the frames come back close to the inputs away from the eyes.
    assert np.abs(decoded[0][150:].astype(float) - frames[0][150:]).mean() < 8
    assert not list(tmp_path.glob(".*partial*"))


def write_clip_with_tone(path, frames, fps=10, tone=440.0, rate=16000, audio="aac"):
    """A video of `frames` (MPEG-4) with a mono sine of `tone` Hz as long as the frames."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = out.add_stream(audio, rate=rate)
        sound.layout = "mono"
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode(None))
        count = int(len(frames) / fps * rate)
        wave = 0.5 * np.sin(2 * np.pi * tone * np.arange(count) / rate)
        layout = sound.codec_context.format.name
        chunk = sound.codec_context.frame_size or 1024
        for start in range(0, count, chunk):
            block = wave[start : start + chunk]
            block = (block * 32767).astype(np.int16) if layout == "s16" else block.astype("f4")
            piece = av.AudioFrame.from_ndarray(block[None], format=layout, layout="mono")
            piece.sample_rate, piece.pts = rate, start
            out.mux(sound.encode(piece))
        out.mux(sound.encode(None))


def read_sound(path) -> tuple[np.ndarray, int, list[str]]:
    """(samples of the first audio stream, its rate, the codecs of every stream)."""
    with av.open(str(path)) as container:
        codecs = [f"{s.type}:{s.codec_context.name}" for s in container.streams]
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        return samples.astype(np.float64), stream.sample_rate, codecs


def peak_hz(samples: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples))


def test_gaze_binary_keeps_the_sound_of_a_video(tmp_path, gaze_main):
    source, output = tmp_path / "call.mp4", tmp_path / "fixed.mp4"
    write_clip_with_tone(source, face_frames(6))
    code, stdout, stderr = gaze_main(f"--input={source}", f"--output={output}", "--angle=12")
    assert code == 0, stderr[-3000:]
    assert "6 frames" in stdout and "with 1 audio stream" in stdout
    samples, rate, codecs = read_sound(output)
    assert codecs == ["video:mpeg4", "audio:aac"]
    assert peak_hz(samples, rate) == pytest.approx(440.0, abs=2)
    assert len(samples) / rate == pytest.approx(0.6, abs=0.1)  # 6 frames at 10 fps
    assert not list(tmp_path.glob(".*"))  # no partial files left


def test_sound_the_output_container_cannot_hold_as_is_is_reencoded(tmp_path):
    """The fallback of `carry_other_streams`: AAC again (or PCM in AVI), the same tone."""
    from experiments.gaze import _mux

    source, frames_only = tmp_path / "in.mkv", tmp_path / "frames.mkv"
    frames = [np.full((48, 64, 3), 30 * k, np.uint8) for k in range(8)]
    write_clip_with_tone(source, frames, audio="pcm_s16le")
    write_clip_with_tone(frames_only, frames)
    for name, codec in (("out.mp4", "aac"), ("out.avi", "pcm_s16le")):
        with av.open(str(source)) as original:
            _mux(
                original, list(original.streams.audio), frames_only, tmp_path / name, reencode=True
            )
        samples, rate, codecs = read_sound(tmp_path / name)
        assert codecs == ["video:mpeg4", f"audio:{codec}"]
        assert peak_hz(samples, rate) == pytest.approx(440.0, abs=2)
        assert len(samples) / rate == pytest.approx(0.8, abs=0.1)


def test_gaze_binary_never_overwrites_the_input_or_an_output_unasked(tmp_path, photo, gaze_main):
    original = tmp_path / "mine.png"
    original.write_bytes(open(photo, "rb").read())
    before = original.read_bytes()
    code, _, stderr = gaze_main(f"--input={original}", f"--output={tmp_path}/./mine.png")
    assert code == 1 and "Traceback" not in stderr
    assert stderr.strip() == (
        f"error: --output {tmp_path}/mine.png is the input: gaze correction never replaces the "
        "original (choose another --output)"
    )
    assert original.read_bytes() == before
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"someone's picture")
    code, _, stderr = gaze_main(f"--input={original}", f"--output={taken}")
    assert code == 1 and "exists; pass --overwrite" in stderr and "Traceback" not in stderr
    assert taken.read_bytes() == b"someone's picture"
    code, _, stderr = gaze_main(f"--input={original}", f"--output={taken}", "--overwrite")
    assert code == 0, stderr[-3000:]
    assert Image.open(taken).size == Image.open(original).size
    # a folder that does not exist yet is made
    nested = tmp_path / "new" / "folder" / "out.png"
    code, stdout, stderr = gaze_main(f"--input={original}", f"--output={nested}")
    assert code == 0, stderr[-3000:]
    assert nested.is_file() and f"wrote {nested}" in stdout
    assert not list(nested.parent.glob(".*"))


@pytest.mark.e2e
def test_gaze_binary_corrects_a_photo_only_around_the_eyes(tmp_path, photo):
    output = tmp_path / "out.png"
    run = run_module("experiments.gaze", f"--input={photo}", f"--output={output}",
                     "--angle=10", timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    before = np.asarray(Image.open(photo))
    after = np.asarray(Image.open(output))
    assert after.shape == before.shape
    rows, cols = np.nonzero(np.any(after != before, axis=-1))
    assert len(rows) > 50  # the eyes moved
    # Only inside the two eye boxes (astronaut's eyes: x 190-260, y 90-112).
    assert rows.min() >= 88 and rows.max() <= 114 and cols.min() >= 188 and cols.max() <= 262


def test_gaze_binary_several_faces_largest_by_default_or_all(tmp_path, gaze_main):
    image = skimage.data.astronaut()[0:260, 100:360]
    small = np.asarray(Image.fromarray(image).resize((200, 200)))
    canvas = np.full((300, 520, 3), 128, np.uint8)
    canvas[20:280, 0:260] = image
    canvas[50:250, 300:500] = small
    source = tmp_path / "two.png"
    Image.fromarray(canvas).save(source)
    changed, said = {}, {}
    for faces in ("largest", "all"):
        output = tmp_path / f"{faces}.png"
        code, stdout, stderr = gaze_main(
            f"--input={source}", f"--output={output}", f"--faces={faces}"
        )
        assert code == 0, stderr[-3000:]
        diff = np.any(np.asarray(Image.open(output)) != canvas, axis=-1)
        changed[faces] = (diff[:, :280].any(), diff[:, 280:].any())
        said[faces] = stdout
    assert "2 faces" in said["largest"] and "--faces=all" in said["largest"]
    assert changed["largest"] == (True, False)
    assert changed["all"] == (True, True)


def test_gaze_binary_errors_are_clear(tmp_path, photo, gaze_main):
    missing = f"--input={tmp_path / 'missing.jpg'}"
    run = run_module("experiments.gaze", missing, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "no such file" in run.stderr and "Traceback" not in run.stderr
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"not an image at all" * 10)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(blank)
    cases = [
        ([f"--input={garbage}"], "cannot read"),
        ([missing], "no such file"),
        ([f"--input={blank}", f"--output={tmp_path / 'b.png'}"], "no face found"),
        ([f"--input={photo}", "--angle=45"], "--angle"),
        ([f"--input={photo}", f"--checkpoint={tmp_path / 'nope'}"], "no DeepWarp model"),
        ([f"--input={photo}", f"--output={tmp_path / 'out.mp4'}"], "an image needs"),
    ]
    for args, message in cases:
        code, _, stderr = gaze_main(*args)
        assert code == 1, (args, stderr[-2000:])
        assert message in stderr, (args, stderr[-2000:])
        assert "Traceback" not in stderr
