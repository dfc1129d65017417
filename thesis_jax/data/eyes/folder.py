"""Real eye captures as DeepWarp training pairs (thesis sec. 4.4.1).

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
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image

from thesis_jax.data.errors import DatasetNotFoundError
from thesis_jax.data.eyes.geometry import (
    DEFAULT_CROP_SIZE,
    NUM_LANDMARKS,
    EyePairs,
    check_size,
    crop_landmarks,
    cut_eye_crop,
    enlarge_box,
    eye_crop_box,
    landmark_tilt,
)

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
    width, height = check_size(size)
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
