"""Structured-Edge non-maximum suppression: blurred lines thin to one pixel at the right place."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from thesis_jax.edges import convolve_triangle, edge_nms, edge_orientation


def _blurred(kind: str, size: int = 41, sigma: float = 2.0) -> np.ndarray:
    line = np.zeros((size, size))
    index = np.arange(size)
    if kind == "horizontal":
        line[20, :] = 1
    elif kind == "vertical":
        line[:, 17] = 1
    elif kind == "diagonal":
        line[index, index] = 1
    else:
        line[index, size - 1 - index] = 1
    blurred = gaussian_filter(line, sigma)
    return blurred / blurred.max()


@pytest.mark.parametrize(
    "kind, on_line, orientation",
    [
        ("horizontal", lambda y, x: y == 20, np.pi / 2),
        ("vertical", lambda y, x: x == 17, 0.0),
        ("diagonal", lambda y, x: y == x, 3 * np.pi / 4),
        ("anti-diagonal", lambda y, x: y + x == 40, np.pi / 4),
    ],
)
def test_blurred_line_thins_to_one_pixel_on_the_line(kind, on_line, orientation):
    edges = _blurred(kind)
    thinned = edge_nms(edges)
    inner = np.zeros_like(thinned, dtype=bool)
    inner[8:-8, 8:-8] = True
    ys, xs = np.nonzero((thinned > 0) & inner)
    assert ys.size == 25  # one pixel per row (and per column) of the 25x25 inner window
    assert on_line(ys, xs).all()
    np.testing.assert_allclose(thinned[ys, xs], edges[ys, xs])
    assert edge_orientation(edges)[20, 20] == pytest.approx(orientation, abs=0.01)


def test_border_fades_linearly():
    edges = np.ones((30, 40))
    thinned = edge_nms(edges, border=5, orientation=np.zeros_like(edges))
    # A plateau survives (multiplier 1.01); the outer 5 pixels ramp 0, 1/5, ..., 4/5 per side.
    np.testing.assert_allclose(thinned[15, :6], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(thinned[15, -6:], [1.0, 0.8, 0.6, 0.4, 0.2, 0])
    np.testing.assert_allclose(thinned[:6, 20], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(thinned[2, 2], 0.4 * 0.4)
    assert edge_nms(edges, border=0, orientation=np.zeros_like(edges)).min() == 1.0


def test_weaker_parallel_ridge_is_suppressed_and_radius_widens_it():
    edges = np.zeros((21, 21))
    edges[:, 10] = 1.0
    edges[:, 9] = edges[:, 11] = 0.6
    thinned = edge_nms(edges, border=0, orientation=np.zeros_like(edges))
    assert (thinned[:, 10] == 1).all() and not thinned[:, [9, 11]].any()
    edges[:, 12] = 0.9  # a second ridge 2 px away survives r = 1 but not r = 2
    assert edge_nms(edges, border=0, orientation=np.zeros_like(edges))[:, 12].all()
    assert not edge_nms(edges, radius=2, border=0, orientation=np.zeros_like(edges))[:, 12].any()


def test_triangle_filter_keeps_constants_and_mass():
    np.testing.assert_allclose(convolve_triangle(np.full((12, 9), 3.0), 4), 3.0)
    impulse = np.zeros((31, 31))
    impulse[15, 15] = 1.0
    smoothed = convolve_triangle(impulse, 4)
    assert smoothed.sum() == pytest.approx(1.0)
    assert smoothed[15, 15] == pytest.approx((5 / 25) ** 2)
    assert smoothed[15, 11] == pytest.approx((5 / 25) * (1 / 25))
    assert smoothed[15, 10] == 0


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        edge_nms(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError):
        edge_nms(np.zeros((5, 5)), orientation=np.zeros((4, 5)))
