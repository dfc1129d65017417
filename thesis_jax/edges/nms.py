"""Edge thinning by non-maximum suppression, as in the Structured Edge detector.

Thesis ch. 3, sec. 3.4: "test edges must be thinned to one pixel width before running the
benchmark code. We use the non-maximum suppression algorithm from (Dollár and Zitnick, 2013)".
This is that algorithm (`edgesDetect.m` + `edgesNmsMex.cpp` of the Structured Edge toolbox):

- orientation from second derivatives of the edge map smoothed by a triangle filter of radius 4
  (`convTri`): `O = mod(atan(Oyy * sign(-Oxy) / (Oxx + 1e-5)), pi)`, where `[Ox, Oy]` is the
  gradient of the smoothed map and `Oxx, Oxy, Oyy` the gradients of `Ox` and `Oy`;
- a pixel is zeroed when `multiplier * E` is below the bilinearly interpolated edge strength at
  any distance d = ±1..±radius along the direction (cos O, sin O);
- within `border` pixels of the image edge the result fades linearly to 0.

Vectorised numpy in float64 (the toolbox computes in float32). One deviation: where Oxy is
exactly 0 the toolbox's `sign(-Oxy)` is 0, which sets O = 0 (a horizontal normal) on any
perfectly row-constant structure such as a synthetic horizontal line; here the sign is taken as
+1 there, so such a line gets its vertical normal. Real edge maps almost never hit Oxy == 0.
"""

from __future__ import annotations

import numpy as np


def convolve_triangle(image: np.ndarray, radius: int) -> np.ndarray:
    """`convTri(I, r)` for integer r >= 1: separable [1..r+1..1] / (r+1)^2, symmetric padding."""
    image = np.asarray(image, dtype=np.float64)
    if radius < 1:
        return image.copy()
    kernel = (
        np.concatenate([np.arange(1, radius + 2), np.arange(radius, 0, -1)]) / (radius + 1) ** 2
    )
    padded = np.pad(image, radius, mode="symmetric")
    size = kernel.size
    rows = sum(kernel[k] * padded[k : k + padded.shape[0] - size + 1] for k in range(size))
    return sum(kernel[k] * rows[:, k : k + rows.shape[1] - size + 1] for k in range(size))


def edge_orientation(edges: np.ndarray, smoothing: int = 4) -> np.ndarray:
    """Edge normal orientation in [0, pi) from second derivatives of the smoothed edge map."""
    smoothed = convolve_triangle(edges, smoothing)
    oy, ox = np.gradient(smoothed)
    _, oxx = np.gradient(ox)
    oyy, oxy = np.gradient(oy)
    sign = np.where(oxy > 0, -1.0, 1.0)  # sign(-Oxy), with +1 where Oxy == 0
    return np.mod(np.arctan(oyy * sign / (oxx + 1e-5)), np.pi)


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`interp` of edgesNmsMex: bilinear look-up with coordinates clamped inside the image."""
    h, w = image.shape
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    dx, dy = x - x0, y - y0
    return (
        image[y0, x0] * (1 - dx) * (1 - dy)
        + image[y0, x0 + 1] * dx * (1 - dy)
        + image[y0 + 1, x0] * (1 - dx) * dy
        + image[y0 + 1, x0 + 1] * dx * dy
    )


def edge_nms(
    edges: np.ndarray,
    radius: int = 1,
    border: int = 5,
    multiplier: float = 1.01,
    orientation: np.ndarray | None = None,
) -> np.ndarray:
    """Thins an edge-strength map to one-pixel-wide ridges (`edgesNmsMex(E, O, r, s, m)`).

    Args:
      edges: (H, W) non-negative edge strength.
      radius: suppression radius r along the edge normal.
      border: width s of the band along the image border where edges fade out linearly.
      multiplier: m, a pixel survives when m * E >= the interpolated neighbours (1.01 keeps
        plateaus from vanishing).
      orientation: (H, W) normal orientation in radians; default `edge_orientation(edges)`.

    Returns:
      (H, W) float64: `edges` where it is a ridge along its normal, else 0.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 2:
        raise ValueError(f"edges must be a 2-D map, got shape {edges.shape}")
    if orientation is None:
        orientation = edge_orientation(edges)
    elif np.shape(orientation) != edges.shape:
        raise ValueError(f"orientation {np.shape(orientation)} must match edges {edges.shape}")
    h, w = edges.shape
    out = edges.copy()
    ys, xs = np.nonzero(edges)
    if ys.size and h > 1 and w > 1:
        theta = np.asarray(orientation, dtype=np.float64)[ys, xs]
        cos, sin = np.cos(theta), np.sin(theta)
        strength = edges[ys, xs] * multiplier
        suppressed = np.zeros(ys.size, dtype=bool)
        for d in range(-radius, radius + 1):
            if d:
                neighbour = _bilinear(edges, xs + d * cos, ys + d * sin)
                suppressed |= strength < neighbour
        out[ys[suppressed], xs[suppressed]] = 0.0
    s = min(border, w // 2, h // 2)
    if s > 0:
        ramp = np.arange(s) / s
        out[:, :s] *= ramp[None, :]
        out[:, w - s :] *= ramp[None, ::-1]
        out[:s, :] *= ramp[:, None]
        out[h - s :, :] *= ramp[::-1, None]
    return out
