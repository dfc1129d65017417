"""A painted episode as strokes: a user's drawing parsed by a SPIRAL agent (thesis fig. 6.6).

`fit_drawing` turns a drawing (dark lines on light paper, any size) into a target the agent knows
(framed as its training data: for MNIST the ink's box scaled into the middle 20/28 of the canvas,
centred by its mass; `FRAMING` for others);
a `Painter` runs the agent on it and keeps the best of several episodes by l2; `episode_strokes`
reads the episode's actions as strokes (each a quadratic Bezier of eq. 6.4.1 from the brush's
position through a control point to an end point, with its brush radius and pressure; jumps
are not strokes). Written out, at any size:

- `to_svg`: one `<path d="M .. Q .. ..">` per stroke, round caps, its width and opacity those of
  JaxPaint's dry brush at that pressure and radius (`stroke_look`);
- `to_json`: the strokes in canvas fractions ([0, 1], x right, y down), with the episode's l2;
- `render` / `render_frames`: the strokes painted by JaxPaint's stroke model at `size` pixels
  (a PNG, or a GIF of the strokes one by one); `write` picks one of the four by extension.

Each stroke may get its own colour (`PALETTE`, as fig. 6.6 shows a parse); otherwise black ink.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thesis_jax.core.errors import UserError
from thesis_jax.spiral.envs import jax_paint, spec

PALETTE = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
)  # fmt: skip
"""Stroke colours for a parse, in stroke order (matplotlib's tab10)."""

MNIST_BOX = 20 / 28
"""MNIST's digits fill a 20 x 20 box of the 28 x 28 canvas."""

FRAMING = {"omniglot_small": (0.66, 0.06)}
"""(box, thinnest line) of `fit_drawing` for an agent's training data, where not MNIST's
(MNIST_BOX, 0.1): Omniglot's held-out characters fill a median 0.66 of the 32-pixel canvas
(MNIST's 0.72) with lines a median 0.09 of their box wide (MNIST's 0.15)."""


class Stroke(NamedTuple):
    """One painted stroke, coordinates in canvas fractions (x right, y down, [0, 1])."""

    start: tuple[float, float]
    control: tuple[float, float]
    end: tuple[float, float]
    radius: float  # the brush radius, a fraction of the canvas side
    pressure: float  # in (0, 1]
    color: tuple[float, float, float]  # RGB in [0, 1]; black for grayscale agents


class DrawingError(UserError):
    """A picture the agent cannot parse; the message says why."""


def fit_drawing(
    gray: np.ndarray, size: int, *, box: float = MNIST_BOX, min_line: float = 0.1
) -> np.ndarray:
    """A drawing as the agent's target: float32 (size, size, 1), dark ink on white.

    `gray`: (H, W) uint8 or float in [0, 1], dark lines on light paper (a light drawing on dark
    paper is turned over). The paper's level is read from the border, the ink is rescaled to
    0-1, and its bounding box is scaled into `box` of the canvas and centred by its mass. Lines
    thinner than `min_line` of the box are thickened first. Raises `DrawingError` for
    a blank page or a photograph (less than 70% of it bare paper).
    """
    from scipy import ndimage
    from skimage.transform import resize

    image = np.asarray(gray, np.float32)
    if image.dtype == np.uint8 or image.max() > 1.0:
        image = image / 255.0
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    paper = float(np.median(border))
    if paper < 0.5:  # light lines on a dark ground: turn it over
        image, paper = 1.0 - image, 1.0 - paper
    darkest = float(np.percentile(image, 0.5))
    if paper - darkest < 0.2:
        raise DrawingError("no drawing found: the picture is (nearly) one shade")
    ink = np.clip((paper - image) / (paper - darkest), 0.0, 1.0)
    marked = ink > 0.5
    blank = float((ink < 0.1).mean())  # paper: a drawing is mostly bare paper, a photo is not
    if blank < 0.7:  # digits scanned or drawn: 73-99%; photographs: 53-67% (skimage's)
        raise DrawingError(
            f"this looks like a photograph, not a line drawing (only {blank:.0%} of it is bare "
            "paper): the agent parses drawings such as digits and characters, dark lines on "
            "light paper"
        )
    rows, cols = np.nonzero(marked)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    ink = ink[top:bottom, left:right]
    side = max(ink.shape)
    scale = box * size / side  # output pixels per input pixel
    width = _line_width(ink > 0.5)
    wanted = min_line * side
    if width < wanted:
        grow = round((wanted - width) / 2)
        if grow:
            ink = ndimage.grey_dilation(ink, size=(2 * grow + 1, 2 * grow + 1))
    height, breadth = (max(1, round(n * scale)) for n in ink.shape)
    small = np.clip(resize(ink, (height, breadth), order=1, anti_aliasing=True), 0.0, 1.0)
    canvas = np.zeros((size, size), np.float32)
    cy, cx = ndimage.center_of_mass(small) if small.sum() > 0 else (height / 2, breadth / 2)
    top = int(np.clip(round(size / 2 - cy), 0, size - height))
    left = int(np.clip(round(size / 2 - cx), 0, size - breadth))
    canvas[top : top + height, left : left + breadth] = small
    return (1.0 - canvas)[..., None]


def _line_width(marked: np.ndarray) -> float:
    """The mean width of the lines in a binary picture: their area over their skeleton's length."""
    from skimage.morphology import skeletonize

    length = int(skeletonize(marked).sum())
    return float(marked.sum()) / max(length, 1)


def episode_strokes(
    actions: np.ndarray, config: spec.PaintConfig, *, colors: bool = False
) -> list[Stroke]:
    """The strokes of one episode's actions (int [T, num_components], spec order): painted
    steps only, each starting where the brush was (the corner, or the last end point)."""
    names = list(spec.paint_action_spec(config))
    position = np.asarray(spec.start_position(config), np.float64)
    side = float(config.canvas_size)
    strokes = []
    for action in np.asarray(actions):
        part = dict(zip(names, action.tolist(), strict=True))
        control = np.asarray(spec.grid_to_canvas(part["control"], config), np.float64)
        end = np.asarray(spec.grid_to_canvas(part["end"], config), np.float64)
        if part["flag"] == 1:
            if colors:
                color = PALETTE[len(strokes) % len(PALETTE)]
            elif config.grayscale:
                color = (0.0, 0.0, 0.0)
            else:
                color = tuple(
                    float(spec.color_value(part[c], config)) for c in ("red", "green", "blue")
                )
            strokes.append(
                Stroke(
                    start=tuple(position / side),
                    control=tuple(control / side),
                    end=tuple(end / side),
                    radius=float(spec.brush_radius(part["size"], config)) / side,
                    pressure=float(spec.pressure_value(part["pressure"], config)),
                    color=color,
                )
            )
        position = end
    return strokes


@functools.partial(jax.jit, static_argnums=0)
def _coverage(size: int, points: jax.Array, pressure: jax.Array, radius: jax.Array) -> jax.Array:
    """[S, size, size] coverage of S strokes (points: [S, 3, 2] start, control, end in pixels)."""
    config = spec.PaintConfig(canvas_size=size)
    return jax_paint.stroke_coverage(
        config, points[:, 0], points[:, 1], points[:, 2], pressure, radius
    )


def _coverages(strokes: Sequence[Stroke], size: int) -> np.ndarray:
    if not strokes:
        return np.zeros((0, size, size), np.float32)
    points = np.asarray([[s.start, s.control, s.end] for s in strokes], np.float32) * size
    pressure = np.asarray([s.pressure for s in strokes], np.float32)
    radius = np.asarray([s.radius for s in strokes], np.float32) * size
    out = []
    for begin in range(0, len(strokes), 8):  # bounded memory at large sizes
        chunk = slice(begin, begin + 8)
        arrays = (
            jnp.asarray(points[chunk]),
            jnp.asarray(pressure[chunk]),
            jnp.asarray(radius[chunk]),
        )
        out.append(np.asarray(_coverage(size, *arrays)))
    return np.concatenate(out)


def render_frames(strokes: Sequence[Stroke], size: int) -> list[np.ndarray]:
    """The canvas after each stroke, float32 (size, size, 3) in [0, 1] on white, painted with
    JaxPaint's stroke model (its dry brush composited "over")."""
    canvas = np.ones((size, size, 3), np.float32)
    frames = []
    for stroke, coverage in zip(strokes, _coverages(strokes, size), strict=True):
        alpha = coverage[..., None]
        canvas = canvas * (1.0 - alpha) + np.asarray(stroke.color, np.float32) * alpha
        frames.append(canvas)
    return frames


def render(strokes: Sequence[Stroke], size: int) -> np.ndarray:
    """The finished canvas, float32 (size, size, 3) in [0, 1] (white when no stroke painted)."""
    frames = render_frames(strokes, size)
    return frames[-1] if frames else np.ones((size, size, 3), np.float32)


@functools.lru_cache(maxsize=256)
def stroke_look(pressure: float, radius: float, size: int = 256) -> tuple[float, float]:
    """(opacity, width in canvas fractions) of a long straight stroke of JaxPaint's dry brush:
    its coverage at the centre line, and the width over which it is at least half that."""
    radius_px = radius * size
    line = Stroke((0.1, 0.5), (0.5, 0.5), (0.9, 0.5), radius, pressure, (0, 0, 0))
    profile = _coverages([line], size)[0][:, size // 2]
    opacity = float(profile.max())
    width = float((profile >= opacity / 2).sum()) if opacity > 0 else 2.0 * radius_px
    return opacity, width / size


def _hex(color: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * min(max(c, 0.0), 1.0)):02x}" for c in color)


def to_svg(strokes: Sequence[Stroke], size: int) -> str:
    """An SVG of `size` x `size` pixels on white: one quadratic Bezier path per stroke."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}">',
        f'<rect width="{size}" height="{size}" fill="#ffffff"/>',
    ]
    for k, s in enumerate(strokes):
        opacity, width = stroke_look(round(s.pressure, 4), round(s.radius, 6))
        (x0, y0), (x1, y1), (x2, y2) = (
            (x * size, y * size) for x, y in (s.start, s.control, s.end)
        )
        curve = f"M {x0:.2f} {y0:.2f} Q {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f}"
        lines.append(
            f'<path id="stroke{k + 1}" d="{curve}" fill="none" stroke="{_hex(s.color)}" '
            f'stroke-width="{width * size:.2f}" stroke-opacity="{opacity:.3f}" '
            'stroke-linecap="round"/>'
        )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def to_json(strokes: Sequence[Stroke], **extra: Any) -> str:
    """The strokes as JSON: {"strokes": [{start, control, end, radius, pressure, color}], ...}."""
    return json.dumps({**extra, "strokes": [s._asdict() for s in strokes]}, indent=1) + "\n"


def write(path: Any, strokes: Sequence[Stroke], size: int, **extra: Any) -> None:
    """Writes `strokes` in the format of `path`'s extension (.svg, .json with `extra`, .png, or
    .gif: blank paper, then one stroke per frame), atomically, at `size` pixels."""
    from pathlib import Path

    from thesis_jax.core.files import write_image
    from thesis_jax.core.metrics import save_gif, write_atomic

    path = Path(path)
    kind = path.suffix.lower()
    if kind == ".svg":
        write_atomic(path, to_svg(strokes, size))
    elif kind == ".json":
        write_atomic(path, to_json(strokes, **extra))
    elif kind == ".png":
        write_image(path, render(strokes, size))
    elif kind == ".gif":
        save_gif(path, [np.ones((size, size, 3), np.float32), *render_frames(strokes, size)],
                 frame_ms=400)  # fmt: skip
    else:
        raise ValueError(f"{path}: write .svg, .json, .png or .gif")


class Painter:
    """A conditional agent ready to paint targets (its state built once, for many drawings).

    painter = Painter(export.load_agent("mnist"))
    result = painter(fit_drawing(gray, painter.canvas_size), samples=16)
    """

    def __init__(self, agent: Any) -> None:
        from thesis_jax.spiral import export, train

        config = agent.config
        if not config.conditional:
            raise DrawingError(
                "this agent draws from noise (unconditional): it cannot parse a drawing"
            )
        if config.renderer == "mujoco":
            raise DrawingError(
                "this agent builds 3D scenes: it cannot parse a drawing into strokes"
            )
        self.config = config
        self.canvas_size = int(config.canvas_size)
        self.box, self.min_line = FRAMING.get(config.dataset, (MNIST_BOX, 0.1))
        self._state = export.with_agent(train.init(jax.random.PRNGKey(0), config), agent)

    def __call__(self, target: np.ndarray, *, samples: int = 8, seed: int = 0) -> dict[str, Any]:
        """The best of `samples` episodes on `target` (float (S, S, 1) as `fit_drawing` gives):
        {"actions": int [T, C], "canvas": (S, S, C), "l2": its Euclidean distance to the
        target (as eval/l2), "l2_all": every sample's}."""
        from thesis_jax.spiral import actors

        targets = np.repeat(target[None].astype(np.float32), samples, axis=0)
        trajectory = actors.jax_paint_rollout(self._state, targets, jax.random.PRNGKey(seed))
        l2 = np.sqrt(((trajectory.final_canvas - targets) ** 2).sum(axis=(1, 2, 3)))
        best = int(np.argmin(l2))
        return {
            "actions": trajectory.actions[:, best],
            "canvas": trajectory.final_canvas[best],
            "l2": float(l2[best]),
            "l2_all": [float(v) for v in l2],
        }
