"""Patch geometry shared by training, targets and dense inference (thesis sec. 3.3.1).

An M x M patch "centred at pixel (y, x)" (eq. 3.3.1) covers rows y - M//2 .. y + M - 1 - M//2,
and likewise columns: for M = 34 rows y-17 .. y+16, for the N = 16 annotation patch rows
y-8 .. y+7; both even-sized patches share the centre point (y - 1/2, x - 1/2). Pixels outside
the image are mirrored (`numpy.pad(mode="reflect")`, the edge pixel is not repeated), at
training and at test time alike, so a patch centred on the border sees the same pixels in
`sample_patches` and in the dense network.

Arbitrary rotations (the augmentation of sec. 3.3.3) sample the image bilinearly and the
annotations at the nearest pixel, so binary boundary maps and segment labels stay binary /
integer; a rotation by a multiple of 90 degrees (or none) lands on integer coordinates and
copies pixels exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def patch_offsets(size: int) -> np.ndarray:
    """Row (or column) offsets of a `size`-wide patch from its centre pixel: -size//2 .. ."""
    return np.arange(size) - size // 2


def pad_widths(size: int) -> tuple[int, int]:
    """(before, after) padding so that a `size` patch fits around every pixel."""
    before = size // 2
    return before, size - 1 - before


def reflect_pad(array: np.ndarray, before: int, after: int | None = None) -> np.ndarray:
    """Mirrors the first two axes (H, W) of `array` by `before` / `after` pixels."""
    after = before if after is None else after
    widths = [(before, after), (before, after)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="reflect")


def as_annotator_stack(annotation: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """One image's annotations as an (A, H, W) array: a (H, W) map, a list of them or (A, H, W)."""
    if isinstance(annotation, np.ndarray) and annotation.ndim == 2:
        return annotation[None]
    if isinstance(annotation, np.ndarray) and annotation.ndim == 3:
        return annotation
    maps = [np.asarray(a) for a in annotation]
    if not maps or any(m.ndim != 2 for m in maps):
        raise ValueError("an image's annotations must be a (H, W) map, (A, H, W) or a list of maps")
    return np.stack(maps)


def sampling_grid(
    centers: np.ndarray,
    size: int,
    angles: np.ndarray | None = None,
    flips: np.ndarray | None = None,
    pivot_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates, (K, size, size) each, of patches centred at `centers`.

    Args:
      centers: (K, 2) pixel (row, col) of each patch centre.
      size: the patch side.
      angles: (K,) rotation in radians (counter-clockwise on the displayed image), or None.
      flips: (K,) bool, mirror the patch left-right (before rotating), or None.
      pivot_size: the patch whose centre point the transform turns about (default `size`), so
        that an input patch and its annotation patch turn together.
    """
    centers = np.asarray(centers, np.float64)
    offsets = patch_offsets(size).astype(np.float64)
    pivot = patch_offsets(pivot_size or size).mean()
    rel_rows = np.broadcast_to(offsets[:, None] - pivot, (size, size))[None]
    rel_cols = np.broadcast_to(offsets[None, :] - pivot, (size, size))[None]
    if flips is not None:
        rel_cols = np.where(np.asarray(flips)[:, None, None], -rel_cols, rel_cols)
    if angles is not None:
        cos = np.cos(angles)[:, None, None]
        sin = np.sin(angles)[:, None, None]
        rel_rows, rel_cols = cos * rel_rows - sin * rel_cols, sin * rel_rows + cos * rel_cols
        rel_rows, rel_cols = np.round(rel_rows, 9), np.round(rel_cols, 9)
    rows = centers[:, 0, None, None] + pivot + rel_rows
    cols = centers[:, 1, None, None] + pivot + rel_cols
    shape = (centers.shape[0], size, size)
    return np.broadcast_to(rows, shape), np.broadcast_to(cols, shape)


def gather_bilinear(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of `padded` (Hp, Wp, ...) at float coordinates (already offset)."""
    top = np.clip(np.floor(rows).astype(np.int64), 0, padded.shape[0] - 2)
    left = np.clip(np.floor(cols).astype(np.int64), 0, padded.shape[1] - 2)
    wy = (rows - top).astype(np.float32)
    wx = (cols - left).astype(np.float32)
    extra = (slice(None),) * 3 + (None,) * (padded.ndim - 2)
    wy, wx = wy[extra], wx[extra]
    out = (1 - wy) * (1 - wx) * padded[top, left] + (1 - wy) * wx * padded[top, left + 1]
    out += wy * (1 - wx) * padded[top + 1, left] + wy * wx * padded[top + 1, left + 1]
    return out


def gather_nearest(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Nearest-pixel samples of `padded` (Hp, Wp, ...) at float coordinates (already offset)."""
    r = np.clip(np.rint(rows).astype(np.int64), 0, padded.shape[0] - 1)
    c = np.clip(np.rint(cols).astype(np.int64), 0, padded.shape[1] - 1)
    return padded[r, c]


def rotation_margin(size: int) -> int:
    """Padding that holds a `size` patch turned by any angle around any pixel."""
    return int(np.ceil(size / np.sqrt(2.0))) + 2
