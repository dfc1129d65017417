"""`spiral.strokes`: an episode read as strokes, written as SVG / JSON / pictures, and a user's
drawing fitted to the agent's canvas."""

import functools
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import ndimage

from thesis_jax.spiral import strokes
from thesis_jax.spiral.envs import jax_paint, spec

CONFIG = spec.PaintConfig(canvas_size=32, grid_size=16, episode_length=6, grayscale=True)


def _episode(seed=0):
    """Random actions of one grayscale episode and JaxPaint's canvas of them."""
    rng = np.random.default_rng(seed)
    action_spec = spec.paint_action_spec(CONFIG)
    actions = np.stack(
        [rng.integers(0, n, CONFIG.episode_length) for n in action_spec.values()], -1
    )
    actions[:, list(action_spec).index("flag")] = [1, 0, 1, 1, 0, 1]  # two jumps
    env = jax_paint.JaxPaint(CONFIG, batch_size=1)
    env.reset()
    for action in actions:
        observation = env.step(action[None])
    return actions, np.asarray(observation.canvas[0, ..., 0])


def test_strokes_start_where_the_brush_was_and_render_as_jax_paint_painted():
    actions, canvas = _episode()
    parsed = strokes.episode_strokes(actions, CONFIG)
    assert len(parsed) == 4  # jumps are not strokes
    assert parsed[0].start == (0.0, 0.0)  # the brush starts in the upper-left corner
    end_of_jump = np.asarray(spec.grid_to_canvas(actions[1, 1], CONFIG)) / 32
    np.testing.assert_allclose(parsed[1].start, end_of_jump)  # after the jump, from its end
    np.testing.assert_allclose(parsed[2].start, parsed[1].end)
    assert all(s.color == (0.0, 0.0, 0.0) for s in parsed)
    again = strokes.render(parsed, 32).mean(-1)
    np.testing.assert_allclose(again, canvas, atol=1e-5)
    coloured = strokes.episode_strokes(actions, CONFIG, colors=True)
    assert [s.color for s in coloured] == list(strokes.PALETTE[:4])
    frames = strokes.render_frames(coloured, 64)
    assert len(frames) == 4 and frames[-1].shape == (64, 64, 3)
    assert np.array_equal(strokes.render([], 16), np.ones((16, 16, 3), np.float32))


def _rasterise_svg(text, size):
    """A small rasteriser for the SVG's paths: discs of the stroke's width along each Bezier."""
    root = ET.fromstring(text)
    canvas = np.ones((size, size))
    yy, xx = np.mgrid[:size, :size] + 0.5
    for path in root.iter("{http://www.w3.org/2000/svg}path"):
        _, x0, y0, _, x1, y1, x2, y2 = path.get("d").split()
        p0, p1, p2 = (np.asarray([float(a), float(b)]) for a, b in ((x0, y0), (x1, y1), (x2, y2)))
        half = float(path.get("stroke-width")) / 2
        opacity = float(path.get("stroke-opacity"))
        covered = np.zeros((size, size), bool)
        for t in np.linspace(0, 1, 64):
            x, y = spec.bezier(p0, p1, p2, t)
            covered |= (xx - x) ** 2 + (yy - y) ** 2 <= half**2
        canvas = np.where(covered, canvas * (1 - opacity), canvas)
    return canvas


def test_the_svg_parses_and_redraws_the_episode():
    actions, canvas = _episode(1)
    parsed = strokes.episode_strokes(actions, CONFIG)
    text = strokes.to_svg(parsed, 128)
    root = ET.fromstring(text)
    assert root.get("width") == "128"
    assert len(root.findall("{http://www.w3.org/2000/svg}path")) == len(parsed)
    redrawn = _rasterise_svg(text, 128)
    ink = canvas.repeat(4, 0).repeat(4, 1) < 0.5
    drawn = redrawn < 0.5
    assert (ink & drawn).sum() / (ink | drawn).sum() > 0.6  # the same marks, at 4x the size
    data = json.loads(strokes.to_json(parsed, l2=1.5))
    assert data["l2"] == 1.5 and len(data["strokes"]) == len(parsed)
    assert data["strokes"][0]["start"] == [0.0, 0.0]


def _seven(height, width, pen, top_left=(0, 0), ground=245, ink=20):
    from PIL import Image, ImageDraw

    picture = Image.new("L", (width, height), ground)
    draw = ImageDraw.Draw(picture)
    y, x = top_left
    points = [(x + 0.3 * width, y + 0.2 * height), (x + 0.7 * width, y + 0.2 * height),
              (x + 0.45 * width, y + 0.8 * height)]  # fmt: skip
    draw.line(points, fill=ink, width=pen)
    return np.asarray(picture)


def test_a_drawing_is_framed_like_mnist_whatever_its_size_place_and_pen():
    small = strokes.fit_drawing(_seven(120, 100, 6), 32)
    assert small.shape == (32, 32, 1) and small.dtype == np.float32
    assert small.min() < 0.1 and small.max() == 1.0  # dark ink on white paper
    rows = np.nonzero((small[..., 0] < 0.5).any(1))[0]
    assert 20 <= rows.max() - rows.min() + 1 <= 25  # the ink's box: 20/28 of 32 is 22.9
    big_thin = strokes.fit_drawing(_seven(600, 500, 4), 32)  # large, hairline: thickened
    inverted = strokes.fit_drawing(255 - _seven(120, 100, 6), 32)  # light lines on dark
    np.testing.assert_array_equal(inverted, small)
    # the same digit at 5x the size with a hairline pen lands on the same place, up to a pixel
    blur = functools.partial(ndimage.gaussian_filter, sigma=1.0)
    similarity = np.corrcoef(blur(1 - big_thin[..., 0]).ravel(), blur(1 - small[..., 0]).ravel())
    assert similarity[0, 1] > 0.8
    assert abs((big_thin < 0.5).sum() / (small < 0.5).sum() - 1) < 0.3  # thickened to MNIST's
    with pytest.raises(strokes.DrawingError, match="no drawing found"):
        strokes.fit_drawing(np.full((50, 50), 200, np.uint8), 32)
    import skimage.data

    with pytest.raises(strokes.DrawingError, match="looks like a photograph"):
        strokes.fit_drawing(skimage.data.camera(), 32)
