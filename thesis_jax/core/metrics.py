"""Metrics, pictures and progress for every training run.

Scalars go to the console (absl logging), to `metrics.jsonl` in the workdir (one JSON object per
line, `{"step": ..., name: value, ...}`) and to TensorBoard when `tensorboardX` is installed.
Image grids are written as PNG. Only process 0 writes; other processes get a silent writer.
Every file is written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging as absl_logging
from PIL import Image
from tqdm.auto import tqdm


def is_main_process() -> bool:
    return jax.process_index() == 0


def write_atomic(path: str | os.PathLike, data: bytes | str) -> str:
    """Writes `data` to `path` through a temporary file in the same directory and a rename.

    The file gets the permissions a plain `open(path, "w")` would give (0666 minus the umask),
    not mkstemp's owner-only 0600.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8) -> uint8, clipping out-of-range values."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_grid(
    images: np.ndarray | Sequence[np.ndarray], ncols: int | None = None, pad: int = 2
) -> np.ndarray:
    """Tiles (N, H, W[, C]) images, floats in [0, 1] or uint8, into one uint8 RGB picture."""
    images = [to_uint8(im) for im in images]
    if not images:
        raise ValueError("image_grid needs at least one image")
    images = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in images]
    images = [np.repeat(im, 3, -1) if im.shape[-1] == 1 else im[..., :3] for im in images]
    height = max(im.shape[0] for im in images)
    width = max(im.shape[1] for im in images)
    ncols = ncols or math.ceil(math.sqrt(len(images)))
    nrows = math.ceil(len(images) / ncols)
    grid = np.full(
        (nrows * (height + pad) + pad, ncols * (width + pad) + pad, 3), 255, dtype=np.uint8
    )
    for i, im in enumerate(images):
        row, col = divmod(i, ncols)
        top, left = pad + row * (height + pad), pad + col * (width + pad)
        grid[top : top + im.shape[0], left : left + im.shape[1]] = im
    return grid


def save_png(path: str | os.PathLike, image: np.ndarray, scale: int = 1) -> str:
    """Saves an HxW[xC] image (float in [0, 1] or uint8) as PNG, optionally upscaled."""
    import io

    picture = Image.fromarray(to_uint8(image))
    if scale > 1:
        picture = picture.resize(
            (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
        )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())


def save_figure(figure: Any, path: str | os.PathLike, dpi: float | None = None) -> str:
    """Saves a matplotlib figure atomically (format from the suffix, PNG by default).

    A figure made through pyplot is closed afterwards; a bare `Figure` needs no closing.
    """
    import io
    import sys

    suffix = os.path.splitext(os.fspath(path))[1][1:] or "png"
    buffer = io.BytesIO()
    figure.savefig(buffer, format=suffix, dpi=dpi)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)
    return write_atomic(path, buffer.getvalue())


def save_gif(
    path: str | os.PathLike,
    frames: Sequence[np.ndarray],
    scale: int = 1,
    frame_ms: int = 200,
    last_frame_ms: int = 1500,
) -> str:
    """Saves HxW[xC] frames (float in [0, 1] or uint8) as a looping GIF, optionally upscaled.

    The last frame is held for `last_frame_ms`, so the finished picture can be seen.
    """
    import io

    if len(frames) == 0:
        raise ValueError("save_gif needs at least one frame")
    pictures = []
    for frame in frames:
        frame = to_uint8(np.asarray(frame))
        if frame.ndim == 3 and frame.shape[-1] == 1:
            frame = frame[..., 0]
        picture = Image.fromarray(frame)
        if scale > 1:
            picture = picture.resize(
                (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
            )
        pictures.append(picture.convert("RGB") if picture.mode not in ("L", "RGB") else picture)
    durations = [frame_ms] * (len(pictures) - 1) + [last_frame_ms]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=durations,
        loop=0,
    )
    return write_atomic(path, buffer.getvalue())


def _as_float(value: Any) -> float:
    return float(np.asarray(value).mean())


class MetricWriter:
    """Writes scalars and image grids of one run into `workdir` (process 0 only)."""

    def __init__(
        self, workdir: str | os.PathLike, *, enabled: bool | None = None, tensorboard: bool = True
    ) -> None:
        self.workdir = os.fspath(workdir)
        self.enabled = is_main_process() if enabled is None else enabled
        self.jsonl_path = os.path.join(self.workdir, "metrics.jsonl")
        self._tb = None
        if not self.enabled:
            return
        os.makedirs(self.workdir, exist_ok=True)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(self.workdir, "tensorboard"))
            except ImportError:
                self._tb = None

    def truncate_after(self, step: int) -> None:
        """Drops records of steps > `step` (written after the checkpoint a run resumes from)."""
        if not self.enabled or not os.path.exists(self.jsonl_path):
            return
        with open(self.jsonl_path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        write_atomic(self.jsonl_path, "".join(kept))

    def scalars(self, step: int, metrics: Mapping[str, Any], *, echo: bool = True) -> None:
        if not self.enabled:
            return
        values = {name: _as_float(value) for name, value in metrics.items()}
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps({"step": int(step), **values}) + "\n")
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, int(step))
        if echo:
            text = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            absl_logging.info("[%d] %s", step, text)

    def images(
        self, step: int, name: str, images: np.ndarray, *, ncols: int | None = None, scale: int = 1
    ) -> str | None:
        """Writes a grid of `images` to `workdir/images/<name>_<step>.png`; returns the path."""
        if not self.enabled:
            return None
        grid = image_grid(images, ncols)
        path = os.path.join(self.workdir, "images", f"{name}_{int(step):07d}.png")
        save_png(path, grid, scale=scale)
        if self._tb is not None:
            self._tb.add_image(name, grid, int(step), dataformats="HWC")
        return path

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, float]]:
    """The records of `workdir/metrics.jsonl`, in order."""
    path = os.path.join(os.fspath(workdir), "metrics.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def progress_bar(
    total: int, *, initial: int = 0, desc: str | None = None, unit: str = "step"
) -> tqdm:
    """A progress bar with rate and ETA in `unit`s (steps, images, ...), shown on process 0 only.

    On a terminal it redraws often; into a log file (no TTY) it writes a line every 30 s.
    """
    import sys

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        disable=not is_main_process(),
        dynamic_ncols=True,
        unit=unit,
        smoothing=0.1,
        mininterval=0.2 if interactive else 30.0,
        maxinterval=10.0 if interactive else 60.0,
    )
