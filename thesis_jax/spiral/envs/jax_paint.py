"""JaxPaint: the SPIRAL paint environment as pure JAX functions (beyond the thesis).

Same action space and episode semantics as the libmypaint environment of thesis sec. 6.4.2
(fig. 6.3; `spec.paint_action_spec`, `libmypaint.LibMyPaint`): each action picks a control point
and an end point on a grid over the canvas, a flag (1 paints a stroke, 0 jumps the brush to the
end point without painting), a pressure, a brush size and, in colour, an RGB colour (grayscale
canvases paint black). A stroke is the quadratic Bezier curve of eq. (6.4.1) from the current
brush position through the control point to the end point. The canvas starts white and the brush
at the upper-left corner.

Rendering reproduces what `LibMyPaint` paints with libmypaint's `classic/dry_brush` (its random
dab offsets and radii turned off), without a per-dab loop:

* libmypaint stamps a dab every 1/12 of the radius (`dabs_per_actual_radius` +
  `dabs_per_basic_radius` = 6 + 6). A dab's opacity is p (0.8 + 0.2 p) for pressure p
  (`opaque` x `opaque_multiply`) times a profile that falls off linearly in rr = (d / r)^2 in
  two segments meeting at the hardness 0.2 (`dab_profile`); dabs under 3 px are anti-aliased,
  which `antialiased_dab` folds into a wider dab of corrected mass.
* Every dab of a stroke has the same colour, so compositing them in order with the "over"
  operator is compositing the stroke once with coverage 1 - prod_d (1 - alpha_d). JaxPaint
  takes the limit of dense dabs, coverage = 1 - exp(-depth) with the optical depth the summed
  dab opacities, and the sum along a straight piece of the curve is a line integral of the dab
  profile, closed-form because the profile is linear in rr (`dab_line_integral`).
* The curve is cut into `STROKE_SEGMENTS` straight pieces, so a stroke costs
  [batch, segments, height, width] elementwise work that XLA fuses into one loop: no dab
  count to cap, no beading of thin strokes, and whole episodes run in one `jax.jit` +
  `lax.scan`. On a CPU, a compiled kernel (`stroke_kernel`, an XLA FFI custom call built on
  first use) evaluates each segment only near itself, where its ink is: 2.5-6x faster again.

`RADIUS_SCALE` and `MASS_SCALE` (a few percent) are measured against libmypaint 1.6: its speed
input widens the dabs, and over-compositing darkens a little more than the summed opacities.
On random 20-step episodes the canvases differ from `LibMyPaint`'s by a mean absolute 0.005
(colour) to 0.007 (grayscale), in [0, 1] (`tests/spiral/test_paint_parity.py`).

`init_state`, `render_step` and `observe` are pure and batched; `JaxPaint` is a thin stateful
wrapper with the interface of `spec.Environment`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from thesis_jax.spiral.envs import spec, stroke_kernel
from thesis_jax.spiral.envs.spec import Observation, PaintConfig

STROKE_SEGMENTS = 16
"""Straight pieces per Bezier stroke; the chord error is below 0.2 px on a 64 px canvas."""

DABS_PER_RADIUS = 12.0
"""libmypaint dry_brush: dabs_per_actual_radius + dabs_per_basic_radius."""
HARDNESS = 0.2
"""libmypaint dry_brush: where the dab profile's two linear segments meet."""
RADIUS_SCALE = 1.04
"""libmypaint's dab radius over the nominal one: dry_brush's speed input adds up to 8% at the
start of a stroke, less as the brush speeds up (fitted on random episodes)."""
MASS_SCALE = 1.06
"""libmypaint's ink over the summed dab opacities: a dab composited "over" removes
-log(1 - alpha) > alpha of optical depth (fitted on random episodes)."""


def dab_profile(rr: np.ndarray, hardness: float = HARDNESS) -> np.ndarray:
    """libmypaint's dab opacity at rr = (d / r)^2: two linear segments meeting at `hardness`."""
    inner = 1.0 - rr * (1.0 / hardness - 1.0)
    outer = hardness / (1.0 - hardness) * (1.0 - rr)
    return np.where(rr > 1.0, 0.0, np.where(rr <= hardness, inner, outer))


def _profile_variance(hardness: float) -> float:
    """Per-axis variance of the dab profile over r^2.

    In polar coordinates dA = pi r^2 drr, so the mean squared distance is
    r^2 int rr m(rr) drr / int m(rr) drr, and the profile's mass int m drr is `hardness`.
    """
    h = hardness
    first_moment = h**2 / 6 + h**3 / 3 + h / (1 - h) * ((1 - h**2) / 2 - (1 - h**3) / 3)
    return first_moment / h / 2


@functools.cache
def antialiased_dab(
    radius: float, hardness: float = HARDNESS, offsets: int = 8
) -> tuple[float, float]:
    """Mass and width of a libmypaint dab on the pixel grid, relative to the continuous dab.

    Dabs narrower than 3 px are anti-aliased (`calculate_rr_antialiased` in libmypaint's tiled
    surface, for the dry brush's dab angle of 90 degrees): each pixel takes the mean rr of its
    point nearest the dab centre and a point 1 / sqrt(pi) further out, or a softer blend of the
    two near the fringe. That widens the dab (by half at r = 1) and changes its ink (-20% at
    r = 1, +17% at r = 2). Returns (mass over pi hardness r^2, the radius of the continuous dab
    with the same second moment over r), averaged over `offsets`^2 sub-pixel dab positions.
    Wider dabs are point-sampled at pixel centres: (1, 1) on average.
    """
    if radius >= 3.0:
        return 1.0, 1.0
    grid = np.arange(-math.ceil(radius) - 2, math.ceil(radius) + 3, dtype=np.float64)
    sub = (np.arange(offsets) + 0.5) / offsets
    dx = sub[:, None, None, None] - grid[None, None, None, :]  # dab x - pixel left edge
    dy = sub[None, :, None, None] - grid[None, None, :, None]
    inside = (dx > 0) & (dx < 1) & (dy > 0) & (dy < 1)
    near_x = np.where(inside, 0.0, np.clip(0.0, dx - 1.0, dx))
    near_y = np.where(inside, 0.0, dy - 0.5)
    far_x = near_x + np.where(dx < 0.5, -1.0, 1.0) / math.sqrt(math.pi)
    rr_near = (near_x**2 + near_y**2) / radius**2
    rr_far = (far_x**2 + near_y**2) / radius**2
    aa_start = max(radius - 1.0, 0.0) ** 2
    rr = np.where(
        rr_far * radius**2 < aa_start,
        (rr_near + rr_far) / 2,
        1.0 - (1.0 - rr_near) / (1.0 + rr_far - rr_near),
    )
    opacity = dab_profile(np.where(rr_near > 1.0, rr_near, rr), hardness)
    mass = opacity.sum(axis=(2, 3)).mean()
    distance2 = (dx - 0.5) ** 2 + (dy - 0.5) ** 2
    variance = (opacity * distance2).sum(axis=(2, 3)).mean() / mass / 2
    width = math.sqrt(variance / _profile_variance(hardness)) / radius
    return float(mass / (math.pi * hardness * radius**2)), float(width)


_AA_RADII = np.linspace(0.2, 3.0, 57)
_AA_MASS, _AA_WIDTH = np.array([antialiased_dab(r) for r in _AA_RADII[:-1]] + [(1.0, 1.0)]).T


def _antialiased_dab_jax(radius: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`antialiased_dab` interpolated from a table, for traced radii."""
    grid = jnp.asarray(_AA_RADII)
    mass = jnp.interp(radius, grid, jnp.asarray(_AA_MASS), right=1.0)
    width = jnp.interp(radius, grid, jnp.asarray(_AA_WIDTH), right=1.0)
    return mass, width


@struct.dataclass
class PaintState:
    """A batch of canvases and brushes; a pytree, so it passes through jit, scan and vmap."""

    canvas: jax.Array  # float32 [B, H, W, C] in [0, 1]
    position: jax.Array  # float32 [B, 2], brush (x, y) in canvas pixels
    step: jax.Array  # int32 [B], actions taken in this episode
    last_action: jax.Array  # int32 [B, num_components], spec order; zeros after reset


def init_state(config: PaintConfig, batch_size: int) -> PaintState:
    """White canvases with the brush at the upper-left corner (sec. 6.4.2)."""
    size, channels = config.canvas_size, config.channels
    num_components = len(spec.paint_action_spec(config))
    return PaintState(
        canvas=jnp.ones((batch_size, size, size, channels), jnp.float32),
        position=jnp.broadcast_to(
            jnp.asarray(spec.start_position(config), jnp.float32), (batch_size, 2)
        ),
        step=jnp.zeros((batch_size,), jnp.int32),
        last_action=jnp.zeros((batch_size, num_components), jnp.int32),
    )


def _check_component_names(actions: Mapping, action_spec: spec.ActionSpec) -> None:
    missing = [name for name in action_spec if name not in actions]
    unknown = [name for name in actions if name not in action_spec]
    if missing or unknown:
        raise KeyError(
            f"action keys must be exactly {list(action_spec)}; missing {missing}, unknown {unknown}"
        )


def stack_actions(actions: Mapping[str, jax.Array] | jax.Array, config: PaintConfig) -> jax.Array:
    """{component: int [B]} (or int [B, num_components] already) -> int32 [B, num_components].

    Components are stacked in spec order; missing or unknown names raise a KeyError.
    """
    action_spec = spec.paint_action_spec(config)
    if isinstance(actions, Mapping):
        _check_component_names(actions, action_spec)
        return jnp.stack([jnp.asarray(actions[name], jnp.int32) for name in action_spec], -1)
    actions = jnp.asarray(actions, jnp.int32)
    chex.assert_rank(actions, 2)
    chex.assert_axis_dimension(actions, 1, len(action_spec))
    return actions


def dab_line_integral(start: jax.Array, end: jax.Array, radius: jax.Array, size: int) -> jax.Array:
    """The dab profile integrated along straight segments and summed over them, at every pixel.

    start, end: [B, S, 2] (x, y) segment end points; radius: [B], the dab radius. Returns
    [B, size, size] (`dense_line_integral` says what it is). On a CPU, the compiled kernel of
    `stroke_kernel` computes it over each segment's neighbourhood only (2.5-6x faster, the same
    sums to float32 rounding); elsewhere, or without a C++ compiler, the dense XLA version does.
    Not meant to be differentiated: SPIRAL's renderer is a black box to the agent, whose actions
    are discrete (the dense version's square roots give NaN gradients at the brush's edge).
    """
    if stroke_kernel.usable():
        return stroke_kernel.stroke_depth(start, end, radius, size)
    return dense_line_integral(start, end, radius, size)


def dense_line_integral(
    start: jax.Array, end: jax.Array, radius: jax.Array, size: int
) -> jax.Array:
    """`dab_line_integral` at every pixel for every segment, in XLA (any device).

    The limit of dense dabs: sum_d m_d spacing -> integral. At pixel centre q,
    sum_s int_0^L m((|q - c_s(u)|^2) / r^2) du over the segment's points c_s(u), m the
    two-segment `dab_profile`. m is linear in rr on each segment, so at perpendicular distance
    v and along-segment offset w the integrand is a + b (w^2 + v^2) / r^2, whose integral is
    the cubic w (a + b v^2 / r^2 + b w^2 / (3 r^2)).

    The segments are summed one after another (a Python loop, unrolled into one XLA fusion of
    [B, size, size] work per segment) rather than as a [B, S, size, size] reduction: XLA:CPU
    compiles the elementwise chain into one vectorised loop, 3.5-4x faster than the reduction
    (`benchmarks/spiral_envs.py`), the sums equal to float32 rounding.
    """
    delta = end - start
    length = jnp.linalg.norm(delta, axis=-1)  # [B, S]
    direction = delta / jnp.maximum(length, 1e-6)[..., None]
    centres = jnp.arange(size, dtype=jnp.float32) + 0.5
    radius2 = (radius**2)[:, None, None]  # [B, 1, 1]
    inner_radius2 = HARDNESS * radius2
    # rr <= HARDNESS: 1 - (1 / h - 1) rr; HARDNESS < rr <= 1: h (1 - rr) / (1 - h). The inner
    # piece is integrated as (inner minus outer) over |w| <= inner limit, plus the outer piece.
    outer_offset = HARDNESS / (1.0 - HARDNESS)
    pieces = (
        (1.0 - outer_offset, outer_offset - (1.0 / HARDNESS - 1.0), inner_radius2),
        (outer_offset, -outer_offset, radius2),
    )
    total = jnp.zeros((start.shape[0], size, size), jnp.float32)
    for s in range(start.shape[1]):
        dx = centres[None, None, :] - start[:, s, 0, None, None]  # [B, 1, W]
        dy = centres[None, :, None] - start[:, s, 1, None, None]  # [B, H, 1]
        ux, uy = direction[:, s, 0, None, None], direction[:, s, 1, None, None]
        along = dx * ux + dy * uy  # [B, H, W]
        across2 = jnp.square(dx * uy - dy * ux)
        w1 = length[:, s, None, None] - along  # the segment is w in [-along, L - along]
        for offset, slope, limit2 in pieces:
            limit = jnp.sqrt(jnp.maximum(limit2 - across2, 0.0))
            linear = offset + slope / radius2 * across2
            cubic = slope / (3.0 * radius2)
            hi = jnp.clip(w1, -limit, limit)
            lo = jnp.clip(-along, -limit, limit)
            total = total + hi * (linear + cubic * hi * hi) - lo * (linear + cubic * lo * lo)
    return total


def stroke_coverage(
    config: PaintConfig,
    start: jax.Array,
    control: jax.Array,
    end: jax.Array,
    pressure: jax.Array,
    radius: jax.Array,
    segments: int = STROKE_SEGMENTS,
) -> jax.Array:
    """Fraction of each pixel covered by a dry-brush stroke along the Bezier of eq. (6.4.1).

    start, control, end: float [B, 2] as (x, y) pixels; pressure, radius: float [B].
    Returns float32 [B, H, W] in [0, 1].
    """
    chex.assert_rank([start, control, end, pressure, radius], [2, 2, 2, 1, 1])
    t = jnp.linspace(0.0, 1.0, segments + 1)[None, :, None]
    points = spec.bezier(start[:, None], control[:, None], end[:, None], t, xp=jnp)  # eq. (6.4.1)
    radius = RADIUS_SCALE * radius
    opacity = pressure * (0.8 + 0.2 * pressure)  # dry_brush: opaque x opaque_multiply
    # An anti-aliased dab (under 3 px) acts as a wider continuous dab with libmypaint's mass.
    aa_mass, aa_width = _antialiased_dab_jax(radius)
    dabs_per_pixel = DABS_PER_RADIUS / radius
    weight = MASS_SCALE * dabs_per_pixel * opacity * aa_mass / aa_width**2
    profile = dab_line_integral(
        points[:, :-1], points[:, 1:], aa_width * radius, config.canvas_size
    )
    profile = jnp.maximum(profile, 0.0)  # an integral of ink; float rounding can dip below 0
    return -jnp.expm1(-weight[:, None, None] * profile)


def render_step(
    config: PaintConfig,
    state: PaintState,
    actions: Mapping[str, jax.Array] | jax.Array,
) -> PaintState:
    """Applies one action per canvas: a stroke (flag 1) or a jump (flag 0) to the end point.

    actions: {component: int [B]} or int [B, num_components] in spec order; values must be in
    range (this pure function does not check them; `JaxPaint.step` does). Every stroke starts
    afresh at the brush position, with the action's pressure throughout, as in `LibMyPaint`.
    """
    action_spec = spec.paint_action_spec(config)
    actions = stack_actions(actions, config)
    chex.assert_shape(actions, (state.canvas.shape[0], len(action_spec)))
    component = dict(zip(action_spec, jnp.moveaxis(actions, -1, 0), strict=True))
    control = jnp.stack(spec.grid_to_canvas(component["control"], config, xp=jnp), -1)
    end = jnp.stack(spec.grid_to_canvas(component["end"], config, xp=jnp), -1)
    paints = component["flag"] == 1
    pressure = spec.pressure_value(component["pressure"], config, xp=jnp)
    radius = spec.brush_radius(component["size"], config, xp=jnp)
    coverage = stroke_coverage(config, state.position, control, end, pressure, radius)
    coverage = jnp.where(paints[:, None, None], coverage, 0.0)[..., None]
    if config.grayscale:
        color = jnp.zeros((actions.shape[0], 1), jnp.float32)
    else:
        color = jnp.stack(
            [spec.color_value(component[c], config, xp=jnp) for c in ("red", "green", "blue")], -1
        )
    canvas = state.canvas * (1.0 - coverage) + color[:, None, None, :] * coverage  # "over"
    return PaintState(canvas=canvas, position=end, step=state.step + 1, last_action=actions)


def observe(state: PaintState, config: PaintConfig) -> Observation:
    """The batched observation of `state`: done once `episode_length` actions were taken."""
    return Observation(
        canvas=state.canvas,
        step=state.step,
        last_action=state.last_action,
        done=state.step >= config.episode_length,
    )


class JaxPaint:
    """Stateful `spec.Environment` over the pure functions, for single or batched canvases.

    With `batch_size=None` it is a drop-in for `LibMyPaint`: `step` takes {component: int} and
    observations are numpy arrays without a batch axis. With an integer `batch_size`, `step`
    takes {component: int array [B]} or an int array [B, num_components] and observations gain
    a leading batch axis; `observation_spec` describes one canvas either way.
    """

    def __init__(self, config: PaintConfig | None = None, batch_size: int | None = None):
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be None or positive, got {batch_size}")
        self.config = PaintConfig() if config is None else config
        self.batch_size = batch_size
        self._spec = spec.paint_action_spec(self.config)
        self._render = jax.jit(render_step, static_argnums=0)
        self._state: PaintState | None = None

    def action_spec(self) -> spec.ActionSpec:
        return self._spec

    def observation_spec(self) -> Mapping[str, spec.ArraySpec]:
        size = self.config.canvas_size
        return spec.observation_spec(self._spec, size, size, self.config.channels)

    @property
    def position(self) -> tuple[float, float] | np.ndarray:
        """The brush location l_t: canvas (x, y), or float32 [B, 2] with a batch."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        position = np.asarray(self._state.position)
        return tuple(float(v) for v in position[0]) if self.batch_size is None else position

    def reset(self, seed: int | None = None) -> Observation:
        """Starts an episode. Rendering is deterministic, so `seed` is accepted and unused."""
        del seed
        self._state = init_state(self.config, self.batch_size or 1)
        return self._observation()

    def step(
        self, action: Mapping[str, int] | Mapping[str, np.ndarray] | np.ndarray
    ) -> Observation:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if bool(np.any(np.asarray(self._state.step) >= self.config.episode_length)):
            raise RuntimeError(
                f"the episode is over after {self.config.episode_length} actions; call reset()"
            )
        if self.batch_size is None:
            actions = spec.validate_action(action, self._spec)[None]
        else:
            actions = self._validate_batch(action)
        self._state = self._render(self.config, self._state, jnp.asarray(actions))
        return self._observation()

    def _validate_batch(self, action: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        if isinstance(action, Mapping):
            _check_component_names(action, self._spec)
            columns = [np.asarray(action[name]) for name in self._spec]
            for name, column in zip(self._spec, columns, strict=True):
                if column.shape != (self.batch_size,):
                    raise ValueError(
                        f"action[{name!r}] must have shape ({self.batch_size},), got {column.shape}"
                    )
            array = np.stack(columns, -1)
        else:
            array = np.asarray(action)
            if array.shape != (self.batch_size, len(self._spec)):
                raise ValueError(
                    f"a batched action array must have shape ({self.batch_size}, "
                    f"{len(self._spec)}) in spec order {list(self._spec)}, got {array.shape}"
                )
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"actions must be integers, got dtype {array.dtype}")
        for i, (name, size) in enumerate(self._spec.items()):
            bad = (array[:, i] < 0) | (array[:, i] >= size)
            if np.any(bad):
                raise ValueError(
                    f"action[{name!r}] = {array[bad.argmax(), i]} at batch index "
                    f"{bad.argmax()} is out of range [0, {size})"
                )
        return array.astype(np.int32)

    def _observation(self) -> Observation:
        assert self._state is not None
        observation = jax.tree.map(np.asarray, observe(self._state, self.config))
        if self.batch_size is None:
            observation = jax.tree.map(lambda x: x[0], observation)
        return observation
