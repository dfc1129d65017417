"""Frames per second of gaze correction on a 640 x 480 video (thesis sec. 4.5: up to 20 fps on a
2014 laptop GPU).

What is measured, per frame of a 640 x 480 video of skimage's astronaut drifting across the frame
(`--frames` frames, written once as MJPEG and decoded with OpenCV):

- landmarks: MediaPipe's face mesh with irises in video (tracking) mode;
- crops: the 478 -> 7 landmark mapping and both eyes' 51 x 41 crops (sec. 4.3.1);
- model: DeepWarp CFW + LCM on both eyes in one jitted call, until the flow is in host memory;
- paste-back: the flow and mask applied at the image's resolution with the feathered seam;
- total: decode + all of the above + encode (MJPEG) of the corrected frame, i.e. the CLI's loop.

Each stage runs on `--warmup` frames untimed first (compilation, MediaPipe's detection), then
is timed with `time.perf_counter` over the remaining frames; the table gives the median
milliseconds per frame and the frames per second it allows, and the header the JAX device and
the 1-min load average (other processes on the same CPUs make the numbers noisy).

    .venv/bin/python benchmarks/gaze.py
    .venv/bin/python benchmarks/gaze.py --frames=200 --checkpoint=runs/deepwarp/eyes_varied
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from experiments import startup


def make_video(path: str, frames: int) -> None:
    """640 x 480 MJPEG frames of the astronaut's head drifting left to right."""
    import cv2
    import skimage.data

    image = skimage.data.astronaut()[:400, 60:420]  # her head and shoulders, 360 x 400
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for k in range(frames):
        canvas = np.full((480, 640, 3), 60, np.uint8)
        left = 20 + (k * 3) % 240
        canvas[40:440, left : left + 360] = image
        writer.write(np.ascontiguousarray(canvas[..., ::-1]))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    args = parser.parse_args()
    if args.frames <= args.warmup:
        parser.error("--frames must exceed --warmup")

    import cv2
    import jax

    from thesis_jax.deepwarp import gaze
    from thesis_jax.deepwarp.landmarks import FaceMesh

    redirector = gaze.GazeRedirector.load(args.checkpoint)
    times: dict[str, list[float]] = {
        k: [] for k in ("landmarks", "crops", "model", "paste-back", "total")
    }
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "in.avi")
        make_video(source, args.frames)
        capture = cv2.VideoCapture(source)
        writer = cv2.VideoWriter(
            os.path.join(folder, "out.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480)
        )
        with FaceMesh(max_faces=1, video=True) as mesh:
            for k in range(args.frames):
                t0 = time.perf_counter()
                ok, bgr = capture.read()
                if not ok:
                    raise RuntimeError(f"could not decode frame {k}")
                frame = bgr[..., ::-1].copy()
                t1 = time.perf_counter()
                meshes = mesh(frame)
                t2 = time.perf_counter()
                points, mirrored = gaze.mesh_to_eyes(meshes[:1])
                crops = gaze.cut_eyes(frame, points, mirrored)
                t3 = time.perf_counter()
                flows, masks = redirector.predict(crops, 10.0)
                t4 = time.perf_counter()
                source_pixels = frame.astype(np.float32) / 255.0
                result = source_pixels.copy()
                for e in range(len(flows)):
                    gaze.paste_eye(result, source_pixels, crops.boxes[e], flows[e], masks[e],
                                   mirrored=bool(crops.mirrored[e]))  # fmt: skip
                out = (np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8)
                t5 = time.perf_counter()
                writer.write(np.ascontiguousarray(out[..., ::-1]))
                t6 = time.perf_counter()
                if k >= args.warmup:
                    for name, value in zip(
                        times, (t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t0), strict=True
                    ):
                        times[name].append(value)
        writer.release()
    found = len(times["total"])
    print(
        f"# Gaze correction, 640x480 video, {found} timed frames (+{args.warmup} warm-up); "
        f"JAX device: {jax.devices()[0].device_kind}; load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| stage | ms / frame (median) | frames / s |")
    print("|---|---|---|")
    for name, values in times.items():
        ms = 1000 * statistics.median(values)
        print(f"| {name} | {ms:.1f} | {1000 / ms:.1f} |")


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    main()
