"""The renderer's scene and its shading: eye-frame geometry, lids, eyeball, iris, skin, lashes.

`make_scene` turns an identity, its nuisance and a gaze into eye-frame quantities (units of the
corner distance R); `scene_landmarks` places the 7 landmarks; `render_grid` shades any grid of
image points, every edge antialiased analytically (coverage from the signed distance over the
pixel footprint). The picture it draws is described in `thesis_jax.data.eyes.renderer`.
"""

from __future__ import annotations

import numpy as np

from thesis_jax.data.eyes.appearance import IRIS_HARMONICS, SKIN_WAVES

_CHUNK = 32
_LANDMARK_FRACTIONS = (1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0, 1.0 / 3.0, 2.0 / 3.0)
_UPPER = (False, True, True, False, False, False)
_UPPER_SHAPE = ("skew_upper", "fullness_upper", "norm_upper")
_LOWER_SHAPE = ("skew_lower", "fullness_lower", "norm_lower")
_LOWER = (False, False, False, False, True, True)


def make_scene(
    identity: dict[str, np.ndarray],
    nuisance: dict[str, np.ndarray],
    pitch: np.ndarray,
    yaw: np.ndarray,
    image_size: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Geometry of each sample: identity + nuisance + gaze -> eye-frame quantities (units of R)."""
    width, height = image_size
    pitch_rad, yaw_rad = np.radians(pitch), np.radians(yaw)
    gaze = np.stack(
        [
            np.sin(yaw_rad) * np.cos(pitch_rad),
            -np.sin(pitch_rad),
            np.cos(yaw_rad) * np.cos(pitch_rad),
        ],
        axis=-1,
    )
    rise = np.sin(pitch_rad) * identity["ball_radius"]
    scene = dict(identity)
    scene.update(nuisance)
    scene["gaze"] = gaze
    scene["scale_px"] = 0.5 * width * identity["eye_size"] * nuisance["scale"]
    scene["centre"] = (
        np.array([(width - 1) / 2, (height - 1) / 2])
        + nuisance["shift"] * scene["scale_px"][:, None]
    )
    iris_depth = np.sqrt(identity["ball_radius"] ** 2 - identity["iris_radius"] ** 2)
    iris_u = identity["ball_u"] + iris_depth * gaze[:, 0]
    iris_v = identity["ball_v"] + iris_depth * gaze[:, 1]
    scene["iris_centre"] = np.stack([iris_u, iris_v], axis=-1)
    pupil = np.clip(
        identity["iris_radius"]
        * identity["pupil_fraction"]
        * nuisance["pupil_scale"]
        * (1.3 - 0.35 * nuisance["intensity"]),
        0.04,
        0.6 * identity["iris_radius"],
    )
    scene["pupil_radius"] = pupil
    # The lids follow the pitch and never cover the pupil centre (they rest on the eyeball).
    below_line = iris_v + identity["canthal"] * iris_u
    b_up, _ = _lid_profile(iris_u, *(identity[k] for k in _UPPER_SHAPE), False)
    b_lo, _ = _lid_profile(iris_u, *(identity[k] for k in _LOWER_SHAPE), False)
    upper = np.maximum(identity["upper_height"] + identity["upper_follow"] * rise, 0.06)
    lower = np.maximum(
        identity["lower_height"]
        - identity["lower_follow_up"] * np.maximum(rise, 0)
        - identity["lower_follow_down"] * np.minimum(rise, 0),
        0.06,
    )
    scene["upper"] = np.maximum(upper, (pupil - below_line) / np.maximum(b_up, 0.2))
    scene["lower"] = np.maximum(lower, (pupil + below_line) / np.maximum(b_lo, 0.2))
    scene["crease"] = (
        identity["upper_height"]
        + identity["crease_gap"]
        + 0.5 * (scene["upper"] - identity["upper_height"])
    )
    return scene


def _lid_profile(u, skew, fullness, norm, derivative: bool = True):
    """Lid height b (1 at its peak, 0 at the corners u = +-1/2, negative beyond) and db/du.

    b(t) = norm * t (1 - t) (1 + skew (2t - 1)) (1 + fullness t (1 - t)), t = u + 1/2, with u
    clamped to +-0.62 (beyond it, both lids stay on the far side of the corner line).
    """
    u = np.clip(u, -0.62, 0.62)
    p = 0.25 - u * u
    q = 1 + (2 * skew) * u
    r = 1 + fullness * p
    pq = p * q
    b = norm * pq * r
    if not derivative:
        return b, None
    dp = -2 * u
    db = norm * (dp * q * r + (2 * skew) * p * r + fullness * dp * pq)
    return b, db


def _eye_to_image(scene: dict[str, np.ndarray], uv: np.ndarray) -> np.ndarray:
    """Eye-frame points (B, N, 2) in units of R -> image pixels (B, N, 2)."""
    roll = np.radians(scene["roll"])[:, None]
    cos, sin = np.cos(roll), np.sin(roll)
    s = scene["scale_px"][:, None]
    u, v = uv[..., 0], uv[..., 1]
    x = scene["centre"][:, None, 0] + s * (cos * u + sin * v)
    y = scene["centre"][:, None, 1] + s * (-sin * u + cos * v)
    return np.stack([x, y], axis=-1)


def scene_landmarks(scene: dict[str, np.ndarray]) -> np.ndarray:
    """The 7 landmarks (B, 7, 2) in image pixels (`LANDMARK_NAMES` order)."""
    u = np.array(_LANDMARK_FRACTIONS)[None, :] - 0.5
    line = -scene["canthal"][:, None] * u
    b_up, _ = _lid_profile(
        u, *(scene[k][:, None] for k in ("skew_upper", "fullness_upper", "norm_upper")), False
    )
    b_lo, _ = _lid_profile(
        u, *(scene[k][:, None] for k in ("skew_lower", "fullness_lower", "norm_lower")), False
    )
    v = (
        line
        - np.array(_UPPER)[None, :] * scene["upper"][:, None] * b_up
        + np.array(_LOWER)[None, :] * scene["lower"][:, None] * b_lo
    )
    lids = np.stack([np.broadcast_to(u, v.shape), v], axis=-1)
    uv = np.concatenate([lids, scene["iris_centre"][:, None, :]], axis=1)
    return _eye_to_image(scene, uv)


def _bump(x, width):
    """Smooth bump (1 - (x / width)^2)^2 on |x| < width, 0 elsewhere (a cheap Gaussian)."""
    y = np.maximum(1 - (x * (1 / width)) ** 2, 0)
    return y * y


def _ramp(x, width):
    """Antialiased step: 0 for x <= -width / 2, 1 for x >= width / 2, linear between."""
    return np.clip(x * (1 / width) + 0.5, 0, 1)


_EYE_PARAMS = (
    "ball_u", "ball_v", "ball_radius", "light", "ambient", "redness", "sclera", "iris_centre",
    "gaze", "iris_radius", "pupil_radius", "canthal", "glint", "glint_size", "glint2",
    "glint2_offset", "brightness", "aa",
)  # fmt: skip
_IRIS_PARAMS = (
    "iris", "iris_inner", "collarette", "limbal", "harmonic", "harmonic_amp", "harmonic_phase",
    "harmonic_twist", "iris_radius",
)  # fmt: skip


def _per_pixel(scene: dict[str, np.ndarray], names, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample parameters repeated for each selected pixel: name -> (m,) or (k, m)."""
    columns = [np.asarray(scene[name], np.float32).reshape(len(counts), -1) for name in names]
    table = np.repeat(np.concatenate(columns, axis=1).T, counts, axis=1)
    out, start = {}, 0
    for name, column in zip(names, columns, strict=True):
        width = column.shape[1]
        out[name] = table[start] if width == 1 else table[start : start + width]
        start += width
    return out


def _eye_colour(scene, u, v, below_upper, above_lower, sample):
    """Colour (3, m) of the eyeball seen between the lids at m eye-frame points (u, v)."""
    f32 = np.float32
    counts = np.bincount(sample, minlength=len(scene["roll"]))
    p = _per_pixel(scene, _EYE_PARAMS, counts)
    aa = p["aa"]
    lu, lv, lz = p["light"]
    radius = p["ball_radius"]
    du = u - p["ball_u"]
    dv = v - p["ball_v"]
    depth = np.sqrt(np.maximum(radius * radius - du * du - dv * dv, 0)) / radius
    lambert = np.maximum((du * lu + dv * lv) / radius + depth * lz, 0)
    ambient = p["ambient"]
    shade = (ambient + (1 - ambient) * lambert) * (f32(0.55) + f32(0.45) * np.sqrt(depth))
    redness = p["redness"] * (1 - depth)
    eye = p["sclera"] + redness * (np.array([0.42, 0.27, 0.25], f32)[:, None] - p["sclera"])

    # Iris and pupil: a disc on the rotated eyeball, foreshortened along the gaze.
    gu, gv, gz = p["gaze"]
    planar = np.sqrt(gu * gu + gv * gv)
    tiny = planar < 1e-6
    safe = np.where(tiny, f32(1), planar)
    eu = np.where(tiny, f32(1), gu / safe)
    ev = np.where(tiny, f32(0), gv / safe)
    iu = u - p["iris_centre"][0]
    iv = v - p["iris_centre"][1]
    along = (iu * eu + iv * ev) / gz
    across = iv * eu - iu * ev
    rho = np.sqrt(along * along + across * across)
    in_iris = np.flatnonzero(rho < p["iris_radius"] + aa)
    if len(in_iris):
        a_i, c_i, eu_i, ev_i, rho_i = (x[in_iris] for x in (along, across, eu, ev, rho))
        iris = _iris_colour(scene, rho_i, a_i * eu_i - c_i * ev_i, a_i * ev_i + c_i * eu_i,
                            sample[in_iris])  # fmt: skip
        width = aa[in_iris]
        cover = _ramp(p["iris_radius"][in_iris] - rho_i, width)
        pupil = _ramp(p["pupil_radius"][in_iris] - rho_i, width)
        iris += pupil * (np.array([0.03, 0.03, 0.035], f32)[:, None] - iris)
        eye_i = eye[:, in_iris]
        eye[:, in_iris] = eye_i + cover * (iris - eye_i)

    line = -p["canthal"] * u
    caruncle = f32(0.7) * np.exp(((u + f32(0.47)) ** 2 + 2 * (v - line) ** 2) * f32(-250))
    shadow_width = f32(0.05) + f32(0.06) * np.maximum(-lv, 0)
    shadow = 1 - f32(0.55) * np.exp(-np.maximum(below_upper, 0) / shadow_width)
    shadow *= 1 - f32(0.2) * np.exp(np.maximum(above_lower, 0) * f32(-1 / 0.03))
    light_shade = ambient + (1 - ambient) * lz
    eye *= shade
    eye += caruncle * (np.array([0.78, 0.45, 0.42], f32)[:, None] * light_shade - eye)
    eye *= shadow * p["brightness"]

    # Corneal glints: fixed by the light direction, not by the gaze.
    glint_u = p["ball_u"] + f32(0.5) * radius * lu
    glint_v = p["ball_v"] + f32(0.5) * radius * lv
    sigma2 = np.maximum(p["glint_size"], aa * f32(0.45)) ** 2
    glint = p["glint"] * np.exp(((u - glint_u) ** 2 + (v - glint_v) ** 2) / (-2 * sigma2))
    g2u = glint_u + p["glint2_offset"][0] * radius
    g2v = glint_v + p["glint2_offset"][1] * radius
    glint += p["glint2"] * np.exp(((u - g2u) ** 2 + (v - g2v) ** 2) / (f32(-0.6) * sigma2))
    eye += np.minimum(glint, 1) * (1 - eye)
    return eye


def _iris_colour(scene, rho, wu, wv, sample):
    """Iris colour (3, k) at distance rho from its centre and unforeshortened offset (wu, wv)."""
    f32 = np.float32
    counts = np.bincount(sample, minlength=len(scene["roll"]))
    p = _per_pixel(scene, _IRIS_PARAMS, counts)
    rel = rho / p["iris_radius"]
    phi = np.arctan2(wv, wu)
    fibres = np.ones_like(rho)
    for k in range(IRIS_HARMONICS):
        fibres += p["harmonic_amp"][k] * np.sin(
            p["harmonic"][k] * phi + p["harmonic_twist"][k] * rel + p["harmonic_phase"][k]
        )
    collarette = 1 + p["collarette"] * np.exp(((rel - f32(0.55)) * f32(1 / 0.12)) ** 2 * -1)
    limbal = 1 - p["limbal"] * np.clip((rel - f32(0.72)) * f32(1 / 0.28), 0, 1) ** 2
    inner = np.exp(((rel - f32(0.45)) * f32(1 / 0.18)) ** 2 * -1)
    iris = p["iris"] + inner * (p["iris_inner"] - p["iris"])
    return iris * (fibres * limbal * collarette)


def _shade(
    scene: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray, footprint: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Colours (3, B, h, w) and eye-opening coverage (B, h, w) at image points xs, ys.

    xs: (B, 1, w) and ys: (B, h, 1) image pixels of the sampling grid; footprint: (B,) image
    pixels per output pixel (sets the antialiasing width).
    """
    f32 = np.float32
    n, h, w = len(footprint), ys.shape[1], xs.shape[2]

    def col(name):
        return np.asarray(scene[name], f32).reshape(n, 1, 1)

    def rgb(values):
        return np.asarray(values, f32).T.reshape(3, n, 1, 1)

    roll = np.radians(scene["roll"])
    cos = (np.cos(roll) / scene["scale_px"]).astype(f32).reshape(n, 1, 1)
    sin = (np.sin(roll) / scene["scale_px"]).astype(f32).reshape(n, 1, 1)
    dx = xs - scene["centre"][:, 0].astype(f32).reshape(n, 1, 1)
    dy = ys - scene["centre"][:, 1].astype(f32).reshape(n, 1, 1)
    ux, uy, vx, vy = cos * dx, -sin * dy, sin * dx, cos * dy
    u = ux + uy
    v = vx + vy
    aa_flat = (footprint * scene["blur"] / scene["scale_px"]).astype(f32)
    aa = aa_flat.reshape(n, 1, 1)

    # Lids: upper edge v_up(u), lower edge v_lo(u) around the corner line (u = -1/2 inner corner).
    canthal = col("canthal")
    line = -canthal * u
    upper, lower = col("upper"), col("lower")
    b_up, db_up = _lid_profile(u, col("skew_upper"), col("fullness_upper"), col("norm_upper"))
    b_lo, db_lo = _lid_profile(u, col("skew_lower"), col("fullness_lower"), col("norm_lower"))
    v_line = v - line
    below_upper = (v_line + upper * b_up) / np.sqrt(1 + (canthal + upper * db_up) ** 2)
    above_lower = (lower * b_lo - v_line) / np.sqrt(1 + (lower * db_lo - canthal) ** 2)
    opening = _ramp(np.minimum(below_upper, above_lower), aa)
    inside = np.clip((f32(0.53) - np.abs(u)) * f32(1 / 0.06), 0, 1)

    # Skin: tone x texture x shading (socket, lid bulge, under-eye), crease, dark circles.
    lu, lv, lz = (np.asarray(scene["light"][:, k], f32).reshape(n, 1, 1) for k in range(3))
    ambient = col("ambient")
    texture = np.ones((n, h, w), f32)
    wave_u, wave_v = scene["wave_u"].astype(f32), scene["wave_v"].astype(f32)
    phase, amp = scene["wave_phase"].astype(f32), scene["wave_amp"].astype(f32)
    for k in range(SKIN_WAVES):
        a, b = wave_u[:, k].reshape(n, 1, 1), wave_v[:, k].reshape(n, 1, 1)
        along_x = a * ux + b * vx + phase[:, k].reshape(n, 1, 1)
        texture += amp[:, k].reshape(n, 1, 1) * np.sin(along_x + (a * uy + b * vy))
    socket = f32(0.12) * np.maximum(1 - u * u * f32(1 / 0.81) - (v - f32(0.05)) ** 2 * f32(2), 0)
    grad_u = socket * u * f32(4 / 0.81)
    grad_v = socket * (v - f32(0.05)) * f32(8)
    b_cr, _ = _lid_profile(
        u * f32(1 / 1.24), col("skew_upper"), col("fullness_upper"), col("norm_upper"), False
    )
    crease_height = col("crease") * b_cr
    crease_line = v_line + crease_height
    lid_span = np.maximum(crease_height - upper * b_up, f32(0.02))
    lid_s = crease_line / lid_span
    crease_window = np.clip((f32(0.62) - np.abs(u)) * f32(1 / 0.12), 0, 1)
    bulge = (lid_s > 0) & (lid_s < 1)
    grad_v += (col("lid_bulge") * f32(4)) * (1 - 2 * lid_s) / lid_span * (crease_window * bulge)
    below_lower = -above_lower
    puff_v = below_lower - f32(0.08)
    grad_v -= (
        f32(0.03 * 4 / 0.12**2)
        * np.maximum(1 - (puff_v * f32(1 / 0.12)) ** 2, 0)
        * (puff_v * inside)
    )
    skin_shade = np.maximum(
        (lz - grad_u * lu - grad_v * lv) / np.sqrt(1 + grad_u * grad_u + grad_v * grad_v), 0
    )
    skin_shade = ambient + (1 - ambient) * skin_shade
    skin_shade *= 1 - col("crease_depth") * _bump(crease_line, f32(0.05)) * crease_window
    skin_shade *= 1 - col("dark_circle") * _bump(below_lower - f32(0.14), f32(0.18)) * np.clip(
        (f32(0.55) - np.abs(u)) * 3, 0, 1
    )
    near_eye = np.maximum(1 - u * u * f32(1 / 0.7) - v * v * f32(1 / 0.3), 0)
    waterline = f32(0.6) * _ramp(below_lower, aa) * _ramp(f32(0.022) - below_lower, aa) * inside
    brightness = (scene["intensity"][:, None] * scene["tint"]).astype(f32)
    skin_rgb = rgb(scene["skin"] * brightness)
    lid_rgb = rgb(scene["skin"] * scene["lid_tint"] * brightness)
    water_rgb = rgb(np.array([0.82, 0.56, 0.52]) * brightness)
    image = np.empty((3, n, h, w), f32)
    np.multiply(near_eye, lid_rgb - skin_rgb, out=image)
    image += skin_rgb
    image += waterline * (water_rgb - image)
    image *= texture * skin_shade

    # Eyeball, composited where the lids leave it visible.
    picked = np.flatnonzero(opening.reshape(-1) > 0)
    if len(picked):
        eye = _eye_colour(
            {**scene, "brightness": brightness, "aa": aa_flat},
            u.reshape(-1)[picked],
            v.reshape(-1)[picked],
            below_upper.reshape(-1)[picked],
            above_lower.reshape(-1)[picked],
            picked // (h * w),
        )
        flat = image.reshape(3, -1)
        skin = flat[:, picked]
        flat[:, picked] = skin + opening.reshape(-1)[picked] * (eye - skin)

    # Lash line, upper lashes (longer towards the outer corner) and sparse lower lashes.
    above_upper = -below_upper
    t = u + f32(0.5)
    lash_len = col("lash_length") * (f32(0.35) + f32(0.65) * np.clip(t, 0, 1))
    lash_line = _ramp(above_upper + f32(0.012), aa) * _ramp(f32(0.018) - above_upper, aa)
    strands = f32(0.5) + f32(0.5) * np.cos(
        f32(2 * np.pi) * (col("lash_count") * t + f32(3.0) * above_upper * (t - f32(0.3)))
    )
    strands *= strands
    lashes = np.clip(1 - above_upper / lash_len, 0, 1) * (above_upper > 0) * strands
    lower_lashes = np.clip(1 - np.abs(below_lower - f32(0.035)) * f32(1 / 0.02), 0, 1) * (
        f32(0.18) * strands * np.clip(t * 1.5, 0, 1)
    )
    lash = np.maximum(np.maximum(lash_line, lashes), lower_lashes) * (inside * col("lash_darkness"))
    image += lash * (rgb(np.array([0.05, 0.04, 0.035]) * brightness) - image)
    np.clip(image, 0, 1, out=image)
    return image, opening


def render_grid(
    scene: dict[str, np.ndarray],
    xs: np.ndarray,
    ys: np.ndarray,
    footprint: np.ndarray,
    noise: np.random.Generator | None = None,
    with_masks: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """`_shade` over the batch in chunks: images (B, h, w, 3) and, optionally, masks (B, h, w).

    xs (B, 1, w), ys (B, h, 1). With `noise`, adds zero-mean uniform sensor noise of standard
    deviation scene["noise"], drawn sample after sample (sample i's noise does not depend on B).
    """
    n = len(footprint)
    h, w = ys.shape[1], xs.shape[2]
    images = np.empty((n, h, w, 3), np.float32)
    masks = np.empty((n, h, w), np.float32) if with_masks else None
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        chunk = {key: value[part] for key, value in scene.items()}
        colours, opening = _shade(chunk, xs[part], ys[part], footprint[part])
        if noise is not None:
            count = colours.shape[1]
            grain = noise.random((count, 3, h, w), np.float32).transpose(1, 0, 2, 3) - 0.5
            colours += grain * (chunk["noise"] * 12**0.5).astype(np.float32).reshape(count, 1, 1)
            np.clip(colours, 0, 1, out=colours)
        for channel in range(3):
            images[part, ..., channel] = colours[channel]
        if masks is not None:
            masks[part] = opening
    return images, masks


def box_grid(box: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Sample points (B, 1, w), (B, h, 1) and footprint (B,) of W x H crops of boxes (B, 4)."""
    step_x = (box[:, 2] - box[:, 0]) / width
    step_y = (box[:, 3] - box[:, 1]) / height
    xs = box[:, 0, None] + (np.arange(width) + 0.5)[None, :] * step_x[:, None]
    ys = box[:, 1, None] + (np.arange(height) + 0.5)[None, :] * step_y[:, None]
    footprint = np.sqrt(step_x * step_y)
    return xs[:, None, :].astype(np.float32), ys[:, :, None].astype(np.float32), footprint
