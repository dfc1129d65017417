"""Shapes: an offline, BSDS500-like edge-detection set whose true boundaries are known exactly.

N4-Fields are trained and benchmarked on BSDS500 (thesis sec. 3.4): 500 colour photos (200 train,
100 val, 200 test), each segmented by about five people, whose boundary maps the benchmark
(ODS / OIS / AP, matched within a distance tolerance) compares a detector's edges against. This
module makes a procedural stand-in that needs no download, so the offline `shapes` preset can
train N4-Fields and run the BSDS-style benchmark and the baselines end to end:

  - Images: a background (one to three bands split by wavy, tilted horizons) and 4-11 occluding
    shapes (ellipses, rotated rectangles, star-shaped polygons and blobs = low-frequency noise
    thresholded under a bump; radius 8-42% of the short side), painted back to front. Each layer
    is filled with a texture: a crop of an embedded photo (`embedded_photos`: astronaut, coffee,
    chelsea, rocket, ... and scikit-learn's china and flower; full or half resolution, flipped), a
    tinted grey texture of `skimage.data` (`GREY_TEXTURES`) or a procedural one (square or sine
    stripes, spots, gradient, smooth noise, flat with grain; mostly two shades of one hue), times
    a per-layer colour gain and linear shading. The edges of a texture (stripes, spots, whatever
    the photo crop shows) are not boundaries: a detector has to learn to ignore them. A quarter
    of the layers copy the texture of an earlier layer with a small change of colour, offset,
    angle or period, so some boundaries have low contrast, as in real photos. Then lighting (a
    smooth multiplicative field and a global gain), Gaussian blur (sigma 0.3-1.1 px) and Gaussian
    pixel noise (sigma up to 0.03) act on the whole image.
  - Truth: `segmentations`, the 4-connected regions of the painted layers after cleaning (regions
    under max(16, H W / 600) pixels, 64 at 160x240, are given to their neighbours, and so are
    one-pixel spurs, slivers and sharp tips), and `boundaries`, drawn from them as BSDS's
    `seg2bdry(seg, 'imageSize')` draws human segmentations (`segmentation_boundaries`): one pixel
    wide, on the top-left side of each label change; 2x2 blocks of boundary pixels occur only
    where three or more regions meet.
  - Annotators (`num_annotators`, about 5 per image in BSDS500): human segmentations of one photo
    differ mostly in granularity and by a pixel or two along each boundary. Each annotator
    therefore merges adjacent regions whose mean colours and colour spreads differ by less than
    its own threshold (a quarter of the annotators are coarse) and regions under its own size
    limit into their most similar neighbour, keeping at least half of the regions; warps the
    merged segmentation by a smooth displacement field (under 2.2 px); cleans it like the truth;
    draws its boundaries with the same `seg2bdry`; and leaves out 0-3 short pieces of boundary
    (discs of radius 3-8 px).

Image i is drawn from `np.random.default_rng` seeded by (split, seed, i), so it does not depend on
how many images are generated, and the splits of `load_shapes` never share an image. Arrays are
identical for identical arguments on one machine (photo crops, noise and geometry are plain numpy;
results could differ in the last bits across BLAS builds).
"""

from __future__ import annotations

import dataclasses
import functools
from os import PathLike
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

SHAPES_SPLITS = {"train": 200, "val": 100, "test": 200}
"""Default split sizes, those of BSDS500 (sec. 3.4)."""

TEXTURE_SETS = ("embedded", "procedural")
"""`embedded`: photo crops, grey skimage textures and procedural ones; `procedural`: only the
latter (no scikit-image / scikit-learn data is loaded)."""

GREY_TEXTURES = ("brick", "grass", "gravel", "moon", "camera")
"""Grey images of `skimage.data` used, tinted, as textures."""

_STREAMS = {"custom": 0, "train": 1, "val": 2, "test": 3}
_TAG = 0x5A4E5E  # keeps these seeds apart from the other procedural sets'


@dataclasses.dataclass(frozen=True, eq=False)
class ShapesDataset:
    """Images with exact segmentations and BSDS-style human-like annotations.

    Attributes:
      images: (N, H, W, 3) float32 in [0, 1].
      segmentations: (N, H, W) int32 region labels 0..R-1 (the exact truth).
      boundaries: (N, H, W) bool, `segmentation_boundaries(segmentations)`.
      annotations: per image, a list of `num_annotators` (H, W) bool boundary maps, as
        BSDS500's groundTruth{k}.Boundaries (the input `evaluate_bsds` takes).
      annotator_segmentations: (N, A, H, W) int16, the segmentation each annotator drew;
        annotations[i][k] is its boundary map less the pieces that annotator left out.
    """

    images: np.ndarray
    segmentations: np.ndarray
    boundaries: np.ndarray
    annotations: list[list[np.ndarray]]
    annotator_segmentations: np.ndarray

    def __post_init__(self) -> None:
        n, h, w, _ = self.images.shape
        for name in ("segmentations", "boundaries"):
            if getattr(self, name).shape != (n, h, w):
                raise ValueError(
                    f"{name} has shape {getattr(self, name).shape}, expected {n, h, w}"
                )
        shape = self.annotator_segmentations.shape
        if len(shape) != 4 or shape[0] != n or shape[2:] != (h, w) or len(self.annotations) != n:
            raise ValueError(
                "annotations and annotator_segmentations must have one entry per image"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_annotators(self) -> int:
        return int(self.annotator_segmentations.shape[1])

    def annotation_array(self) -> np.ndarray:
        """The annotations as one (N, A, H, W) bool array."""
        return np.stack([np.stack(per_image) for per_image in self.annotations])


def segmentation_boundaries(segmentation: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundaries of label maps, as BSDS500's `seg2bdry(seg, 'imageSize')`.

    Pixel (i, j) is a boundary pixel when seg[i:i+2, j:j+2] holds more than one label (the block
    is cut at the image edge: in the last row a label change towards the next column counts, in
    the last column one towards the next row, the bottom-right pixel is never one). So each label
    change is marked once, on its top / left side. Away from the last row and column this equals
    `skimage.segmentation.find_boundaries(seg, mode="subpixel")[1::2, 1::2]`; skimage's "thick",
    "inner" and "outer" modes mark both sides of a change between two regions, two pixels wide.

    Args:
      segmentation: (..., H, W) integer labels.

    Returns:
      (..., H, W) bool.
    """
    seg = np.asarray(segmentation)
    if seg.ndim < 2:
        raise ValueError(f"segmentation must be (..., H, W), got shape {seg.shape}")
    across = seg[..., :, :-1] != seg[..., :, 1:]  # edgels_h
    down = seg[..., :-1, :] != seg[..., 1:, :]  # edgels_v
    out = np.zeros(seg.shape, bool)
    out[..., :-1, :-1] = across[..., :-1, :] | across[..., 1:, :] | down[..., :-1] | down[..., 1:]
    out[..., -1, :-1] = across[..., -1, :]
    out[..., :-1, -1] = down[..., -1]
    return out


# ---------------------------------------------------------------------------------------------
# Texture sources and noise.


@functools.lru_cache(maxsize=1)
def _photo_textures() -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    import skimage.data

    from thesis_jax.data.embedded import embedded_photos

    photos = tuple(photo.astype(np.float32) / 255.0 for photo in embedded_photos())
    greys = []
    for name in GREY_TEXTURES:
        try:
            grey = getattr(skimage.data, name)()
        except (ImportError, OSError, ValueError, AttributeError):
            continue
        grey = grey.astype(np.float32)
        greys.append((grey - grey.mean()) / (grey.std() + 1e-3))
    return photos, tuple(greys)


@functools.lru_cache(maxsize=64)
def _noise_basis(length: int, cells: int) -> np.ndarray:
    """(length, cells + 2) Gaussian bumps spaced length / cells apart, rows of unit norm."""
    spacing = length / cells
    centres = (np.arange(cells + 2) - 0.5) * spacing
    x = np.arange(length) + 0.5
    basis = np.exp(-0.5 * ((x[:, None] - centres[None]) / (0.7 * spacing)) ** 2)
    basis[basis < 1e-6] = 0.0  # float32 denormals make the products 100x slower
    return (basis / np.linalg.norm(basis, axis=1, keepdims=True)).astype(np.float32)


def _smooth_noise(
    rng: np.random.Generator,
    size: tuple[int, int],
    cells: tuple[float, float],
    count: int = 1,
    window: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """(count, H, W) smooth noise with unit variance and features ~H / cells[0] pixels wide;
    only rows top..bottom-1 and columns left..right-1 when `window` = (top, bottom, left, right)."""
    (h, w), (ch, cw) = size, (max(1, int(cells[0])), max(1, int(cells[1])))
    top, bottom, left, right = window or (0, h, 0, w)
    grid = rng.standard_normal((count, ch + 2, cw + 2), dtype=np.float32)
    return _noise_basis(h, ch)[top:bottom] @ grid @ _noise_basis(w, cw)[left:right].T


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour with the muted saturation of natural images."""
    direction = rng.standard_normal(3)
    direction -= direction.mean()
    direction /= np.linalg.norm(direction) + 1e-6
    colour = rng.uniform(0.1, 0.9) + rng.uniform(0.0, 0.3) * direction
    return np.clip(colour, 0.02, 0.98).astype(np.float32)


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two colours of a procedural texture: mostly a darker and a lighter shade of one hue."""
    first = _random_colour(rng)
    if rng.random() < 0.25:
        return first, _random_colour(rng)
    shade = rng.uniform(0.35, 0.8)
    tint = rng.uniform(-0.08, 0.08, 3)
    second = np.clip(first * shade + tint, 0.02, 0.98).astype(np.float32)
    return (second, first) if rng.random() < 0.5 else (first, second)


# ---------------------------------------------------------------------------------------------
# Textures: a recipe (dict) is drawn, optionally copied with small changes, then rendered.

_KINDS_EMBEDDED = ("photo", "grey", "stripes", "spots", "gradient", "smooth", "flat")
_P_EMBEDDED = (0.36, 0.14, 0.16, 0.08, 0.08, 0.10, 0.08)
_KINDS_PROCEDURAL = ("stripes", "spots", "gradient", "smooth", "flat")
_P_PROCEDURAL = (0.35, 0.15, 0.15, 0.2, 0.15)


def _texture_recipe(rng: np.random.Generator, textures: str, sources) -> dict:
    photos, greys = sources
    if textures == "embedded" and photos:
        kind = _KINDS_EMBEDDED[rng.choice(len(_KINDS_EMBEDDED), p=_P_EMBEDDED)]
        if kind == "grey" and not greys:
            kind = "photo"
    else:
        kind = _KINDS_PROCEDURAL[rng.choice(len(_KINDS_PROCEDURAL), p=_P_PROCEDURAL)]
    recipe = {
        "kind": kind,
        "gain": rng.uniform(0.75, 1.25) * rng.uniform(0.88, 1.12, 3),
        "shade_angle": rng.uniform(0, 2 * np.pi),
        "shade": rng.uniform(0.0, 0.25),
        "colours": _colour_pair(rng),
        "seed": int(rng.integers(2**31)),
    }
    if kind in ("photo", "grey"):
        recipe["source"] = int(rng.integers(len(photos if kind == "photo" else greys)))
        recipe["step"] = int(rng.choice([1, 1, 2]))
        recipe["flip"] = (bool(rng.integers(2)), bool(rng.integers(2)))
        recipe["offset"] = rng.uniform(0, 1, 2)
    elif kind == "stripes":
        recipe["angle"] = rng.uniform(0, np.pi)
        recipe["period"] = rng.uniform(4, 22)
        recipe["square"] = bool(rng.random() < 0.6)
    elif kind == "spots":
        recipe["cells"] = rng.uniform(8, 25)
        recipe["threshold"] = rng.uniform(-0.2, 0.9)
    elif kind == "smooth":
        recipe["cells"] = rng.uniform(2, 8)
    elif kind == "gradient":
        recipe["angle"] = rng.uniform(0, 2 * np.pi)
    return recipe


def _similar_recipe(rng: np.random.Generator, recipe: dict) -> dict:
    """The same kind of texture with a small change: low-contrast boundaries."""
    similar = dict(recipe)
    similar["gain"] = recipe["gain"] * rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)
    similar["shade_angle"] = rng.uniform(0, 2 * np.pi)
    similar["seed"] = int(rng.integers(2**31))
    if "offset" in recipe:
        similar["offset"] = np.clip(recipe["offset"] + rng.uniform(-0.2, 0.2, 2), 0, 1)
    if "angle" in recipe:
        similar["angle"] = recipe["angle"] + rng.uniform(-0.35, 0.35)
    if "period" in recipe:
        similar["period"] = recipe["period"] * rng.uniform(0.85, 1.18)
    return similar


def _photo_crop(image: np.ndarray, recipe: dict, h: int, w: int) -> np.ndarray:
    step = recipe["step"]
    if image.shape[0] < step * h or image.shape[1] < step * w:
        step = 1
    if image.shape[0] < h or image.shape[1] < w:  # a photo narrower than the image: tile it
        reps = (-(-h // image.shape[0]), -(-w // image.shape[1])) + (1,) * (image.ndim - 2)
        image = np.tile(image, reps)
    span_y, span_x = image.shape[0] - step * h, image.shape[1] - step * w
    top = min(int(recipe["offset"][0] * (span_y + 1)), max(span_y, 0))
    left = min(int(recipe["offset"][1] * (span_x + 1)), max(span_x, 0))
    crop = image[top : top + step * h : step, left : left + step * w : step]
    if recipe["flip"][0]:
        crop = crop[::-1]
    if recipe["flip"][1]:
        crop = crop[:, ::-1]
    return crop


def _render_texture(
    recipe: dict, sources, size: tuple[int, int], window: tuple[int, int, int, int]
) -> np.ndarray:
    """The texture of an (H, W) image at rows top..bottom-1, columns left..right-1 of `window`:
    (bottom - top, right - left, 3) float32, before lighting."""
    h, w = size
    top, bottom, left, right = window
    yy = np.arange(top, bottom, dtype=np.float32)[:, None]
    xx = np.arange(left, right, dtype=np.float32)[None, :]
    rng = np.random.default_rng(recipe["seed"])
    kind = recipe["kind"]
    low, high = recipe["colours"]
    if kind == "photo":
        texture = _photo_crop(sources[0][recipe["source"]], recipe, h, w)[top:bottom, left:right]
    else:
        if kind == "grey":
            grey = _photo_crop(sources[1][recipe["source"]], recipe, h, w)[top:bottom, left:right]
            mix = 0.5 + 0.3 * grey
        elif kind == "stripes":
            phase = rng.uniform(0, 2 * np.pi)
            u = xx * np.cos(recipe["angle"]) + yy * np.sin(recipe["angle"])
            wave = np.sin(u * (2 * np.pi / recipe["period"]) + phase)
            mix = np.clip(wave * 3.0, -1, 1) if recipe["square"] else wave
            mix = 0.5 + 0.5 * mix
        elif kind in ("spots", "smooth"):
            cells = (recipe["cells"] * h / 160, recipe["cells"] * w / 160)
            field = _smooth_noise(rng, (h, w), cells, window=window)[0]
            if kind == "spots":
                mix = np.clip((field - recipe["threshold"]) * 4.0, 0, 1)
            else:
                mix = 0.5 + 0.3 * field
        elif kind == "gradient":
            cos, sin = np.cos(recipe["angle"]), np.sin(recipe["angle"])
            low_u = min(0.0, (w - 1) * cos) + min(0.0, (h - 1) * sin)
            high_u = max(0.0, (w - 1) * cos) + max(0.0, (h - 1) * sin)
            mix = (xx * cos + yy * sin - low_u) / (high_u - low_u)
        else:  # flat
            mix = np.full((1, 1), 0.5, np.float32)
        mix = np.broadcast_to(np.clip(mix, 0, 1), (bottom - top, right - left))
        texture = low + (high - low) * mix[..., None].astype(np.float32)
        if kind in ("flat", "gradient"):
            grain = rng.normal(0, 0.015, (bottom - top, right - left, 1))
            texture = texture + grain.astype(np.float32)
    cos, sin = np.cos(recipe["shade_angle"]), np.sin(recipe["shade_angle"])
    shading = 1.0 + recipe["shade"] * ((xx - w / 2) * cos + (yy - h / 2) * sin) / max(h, w)
    return texture * (recipe["gain"].astype(np.float32) * shading[..., None])


# ---------------------------------------------------------------------------------------------
# Scene layout: background bands and occluding shapes.


def _background_labels(rng: np.random.Generator, grid) -> np.ndarray:
    yy, xx = grid
    h, w = yy.shape[0], xx.shape[1]
    bands = int(rng.choice([1, 2, 3], p=[0.25, 0.5, 0.25]))
    labels = np.zeros((h, w), np.int32)
    heights = np.sort(rng.uniform(0.25, 0.8, bands - 1))
    for band, height in enumerate(heights, start=1):
        wiggle = _smooth_noise(rng, (1, w), (1, rng.integers(2, 6)))[0, 0]
        line = height * h + rng.uniform(-0.15, 0.15) * (xx[0] - w / 2)
        line = line + rng.uniform(0.0, 0.08) * h * wiggle
        labels[yy >= line[None, :]] = band
    return labels


def _paint_shape(rng: np.random.Generator, layers: np.ndarray, value: int, grid) -> None:
    """Paints one random ellipse, rotated rectangle, star-shaped polygon or blob (thresholded
    low-frequency noise under a bump) with `value` over `layers`, in place."""
    yy, xx = grid
    h, w = layers.shape
    side = min(h, w)
    cy, cx = rng.uniform(-0.05, 1.05) * h, rng.uniform(-0.05, 1.05) * w
    radius = side * rng.uniform(0.08, 0.42)
    kind = rng.choice(4, p=[0.3, 0.15, 0.3, 0.25])
    angle = rng.uniform(0, np.pi)
    if kind in (0, 3):
        reach = radius if kind == 0 else 2 * radius  # the blob's noise reaches past its bump
        top, bottom = int(np.clip(cy - reach, 0, h)), int(np.clip(cy + reach + 1, 0, h))
        left, right = int(np.clip(cx - reach, 0, w)), int(np.clip(cx + reach + 1, 0, w))
        dy, dx = yy[top:bottom] - cy, xx[:, left:right] - cx
        if kind == 0:  # ellipse
            a, b = radius, radius * rng.uniform(0.35, 1.0)
            u = dx * np.cos(angle) + dy * np.sin(angle)
            v = -dx * np.sin(angle) + dy * np.cos(angle)
            mask = (u / a) ** 2 + (v / b) ** 2 < 1.0
        else:
            cells = max(2.0, 1.6 * side / radius)
            cells_hw = (cells * h / side, cells * w / side)
            noise = _smooth_noise(rng, (h, w), cells_hw, window=(top, bottom, left, right))[0]
            mask = 1.0 - (dy**2 + dx**2) / radius**2 + 0.55 * noise > 0
        layers[top:bottom, left:right][mask] = value
        return
    from PIL import Image, ImageDraw

    if kind == 1:  # rotated rectangle
        half = np.array([radius, radius * rng.uniform(0.3, 1.0)])
        corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * half
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = corners @ rotation.T
    else:  # star-shaped polygon
        count = int(rng.integers(3, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = radius * rng.uniform(0.45, 1.0, count)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], -1)
    canvas = Image.new("1", (w, h))
    ImageDraw.Draw(canvas).polygon([(x + cx, y + cy) for x, y in points], fill=1)
    layers[np.asarray(canvas)] = value


_WINDOW = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
_WINDOW_WEIGHTS = np.array([2, 3, 2, 3, 4, 3, 2, 3, 2])  # corner, edge and centre votes


def _majority_label(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The label of each pixel (rows, cols) if it has at least half the weighted votes of its
    3x3 window, else the other label with the most votes: a one-pixel spur or line (even between
    two other labels) goes, a straight boundary stays."""
    h, w = labels.shape
    near_rows, near_cols = rows[:, None] + _WINDOW[:, 0], cols[:, None] + _WINDOW[:, 1]
    inside = (near_rows >= 0) & (near_rows < h) & (near_cols >= 0) & (near_cols < w)
    candidates = labels[np.clip(near_rows, 0, h - 1), np.clip(near_cols, 0, w - 1)]
    weights = np.where(inside, _WINDOW_WEIGHTS, 0)
    own = candidates[:, 4]
    result = own.copy()
    change = 2 * ((candidates == own[:, None]) * weights).sum(1) < weights.sum(1)
    if change.any():
        candidates, weights = candidates[change], weights[change]
        same = candidates[:, :, None] == candidates[:, None, :]
        votes = (same * weights[:, None, :]).sum(-1)
        votes = np.where((weights > 0) & (candidates != own[change, None]), votes, -1)
        result[change] = candidates[np.arange(len(votes)), votes.argmax(1)]
    return result


def _fill_from_nearest(labels: np.ndarray, known: np.ndarray) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    if known.all() or not known.any():
        return labels
    rows, cols = distance_transform_edt(~known, return_distances=False, return_indices=True)
    return labels[rows, cols]


def _regions(labels: np.ndarray) -> np.ndarray:
    """4-connected components of a label map, numbered 0..R-1 in raster order."""
    from skimage.measure import label

    return (label(labels, background=-1, connectivity=1) - 1).astype(np.int32)


def _in_constant_window(labels: np.ndarray) -> np.ndarray:
    """Pixels that lie in some 3x3 window holding only their own label (a 3x3 opening)."""
    h, w = labels.shape
    middle = labels[:, 1:-1]
    row_constant = (labels[:, :-2] == middle) & (labels[:, 2:] == middle)  # (H, W - 2)
    centre = middle[1:-1]
    constant = row_constant[:-2] & row_constant[1:-1] & row_constant[2:]
    constant &= (middle[:-2] == centre) & (middle[2:] == centre)  # (H - 2, W - 2), by centre
    grown = np.zeros((h - 2, w), bool)
    for dx in range(3):
        grown[:, dx : dx + w - 2] |= constant
    kept = np.zeros((h, w), bool)
    for dy in range(3):
        kept[dy : dy + h - 2] |= grown
    return kept


def _two_label_blocks(labels: np.ndarray) -> np.ndarray:
    """(K, 2) top-left corners (y, x) of the 2x2 all-boundary blocks of
    `segmentation_boundaries(labels)` whose defining 3x3 labels (rows y..y+2, columns x..x+2,
    the last row and column repeated past the edge) hold only two labels: a boundary two pixels
    thick, not a junction."""
    h, w = labels.shape
    boundaries = segmentation_boundaries(labels)
    blocks = boundaries[:-1, :-1] & boundaries[1:, :-1] & boundaries[:-1, 1:] & boundaries[1:, 1:]
    corners = np.argwhere(blocks)
    if corners.size == 0:
        return corners
    rows = np.minimum(corners[:, :1] + _SQUARE[:, 0], h - 1)
    cols = np.minimum(corners[:, 1:] + _SQUARE[:, 1], w - 1)
    windows = labels[rows, cols]
    low, high = windows.min(1, keepdims=True), windows.max(1, keepdims=True)
    return corners[((windows == low) | (windows == high)).all(1)]


_SQUARE = np.array([(dy, dx) for dy in range(3) for dx in range(3)])
_SQUARE5 = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)])


def _unsettled(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Which of the pixels (rows, cols) lie in no constant 3x3 window of their label (the local
    form of `~_in_constant_window`)."""
    h, w = labels.shape
    near_rows, near_cols = rows[:, None] + _SQUARE5[:, 0], cols[:, None] + _SQUARE5[:, 1]
    inside = (near_rows >= 0) & (near_rows < h) & (near_cols >= 0) & (near_cols < w)
    patch = labels[np.clip(near_rows, 0, h - 1), np.clip(near_cols, 0, w - 1)]
    same = (inside & (patch == labels[rows, cols][:, None])).reshape(-1, 5, 5)
    settled = np.zeros(len(rows), bool)
    for dy in range(3):
        for dx in range(3):
            settled |= same[:, dy : dy + 3, dx : dx + 3].all((1, 2))
    return ~settled


def _clean_labels(labels: np.ndarray, min_area: int = 0, rounds: int = 8) -> np.ndarray:
    """Removes what would make the one-pixel boundaries thicker than one pixel away from
    junctions, and specks:

      1. regions smaller than `min_area` take the label of the nearest other pixel;
      2. every pixel outside all constant 3x3 windows of its label (slivers, spurs, sharp tips)
         with less than half the votes of its 3x3 window takes the other label with the most
         votes (`_majority_label`), until nothing changes;
      3. where a 2x2 block of boundary pixels is made by two labels only, the minority label of
         its 3x3 window takes the majority label.
    """
    h, w = labels.shape
    if min_area:
        regions = _regions(labels)
        labels = _fill_from_nearest(labels, (np.bincount(regions.ravel()) >= min_area)[regions])
    labels = labels.copy()
    rows, cols = np.nonzero(~_in_constant_window(labels))
    for _ in range(rounds):
        majority = _majority_label(labels, rows, cols)
        changed = majority != labels[rows, cols]
        if not changed.any():
            break
        labels[rows[changed], cols[changed]] = majority[changed]
        near_rows = np.clip(rows[changed][:, None] + _SQUARE5[:, 0], 0, h - 1)
        near_cols = np.clip(cols[changed][:, None] + _SQUARE5[:, 1], 0, w - 1)
        rows, cols = np.divmod(np.unique(near_rows * w + near_cols), w)
        unsettled = _unsettled(labels, rows, cols)
        rows, cols = rows[unsettled], cols[unsettled]
    for _ in range(rounds):
        corners = _two_label_blocks(labels)
        if corners.size == 0:
            break
        for y, x in corners:
            rows = np.minimum(np.arange(y, y + 3), h - 1)[:, None]
            cols = np.minimum(np.arange(x, x + 3), w - 1)[None, :]
            values, counts = np.unique(labels[rows, cols], return_counts=True)  # 9: no ties
            if values.size == 2:
                window = labels[y : y + 3, x : x + 3]
                window[window == values[counts.argmin()]] = values[counts.argmax()]
    return labels


# ---------------------------------------------------------------------------------------------
# Annotators.


def _region_contrast(image: np.ndarray, regions: np.ndarray, count: int) -> tuple:
    """Adjacent region pairs (P, 2), their shared boundary length and how different the two
    regions look: their mean colours, colour spreads and texture energies (mean absolute
    luminance difference between neighbouring pixels), what makes a boundary weak or strong."""
    flat = regions.ravel()
    area = np.bincount(flat, minlength=count).astype(np.float64)
    pixels = image.reshape(-1, 3).astype(np.float64)
    mean = np.stack([np.bincount(flat, pixels[:, c], count) for c in range(3)], -1)
    mean /= area[:, None]
    square = np.stack([np.bincount(flat, pixels[:, c] ** 2, count) for c in range(3)], -1)
    spread = np.sqrt(np.maximum(square / area[:, None] - mean**2, 0))
    a = np.concatenate([regions[:, :-1].ravel(), regions[:-1].ravel()])
    b = np.concatenate([regions[:, 1:].ravel(), regions[1:].ravel()])
    changes = a != b
    luminance = image @ np.array([0.299, 0.587, 0.114], np.float32)
    steps = np.concatenate(
        [np.abs(np.diff(luminance, axis=1)).ravel(), np.abs(np.diff(luminance, axis=0)).ravel()]
    )
    energy = np.bincount(a[~changes], steps[~changes], count)
    energy /= np.maximum(np.bincount(a[~changes], minlength=count), 1)
    keys = np.minimum(a, b)[changes] * count + np.maximum(a, b)[changes]
    length = np.bincount(keys, minlength=count * count)
    keys = np.flatnonzero(length)
    length = length[keys]
    pairs = np.stack([keys // count, keys % count], -1)
    difference = np.linalg.norm(mean[pairs[:, 0]] - mean[pairs[:, 1]], axis=-1) / np.sqrt(3)
    difference += 0.5 * np.linalg.norm(spread[pairs[:, 0]] - spread[pairs[:, 1]], axis=-1)
    difference += 2.0 * np.abs(energy[pairs[:, 0]] - energy[pairs[:, 1]])
    return pairs, length, difference, area


def _annotator_merge(rng: np.random.Generator, contrast: tuple, min_area: int) -> np.ndarray:
    """Region -> annotator label: merges weak boundaries and small regions (granularity), keeping
    at least half of the regions (and two, when there are two)."""
    pairs, length, difference, area = contrast
    count = area.shape[0]
    parent = np.arange(count)
    remaining = [count, max(min(count, 2), (count + 1) // 2)]  # regions left, fewest allowed

    def root(node: int) -> int:
        while parent[node] != node:
            node = parent[node]
        return node

    def merge(first: int, second: int) -> None:
        first, second = root(first), root(second)
        if first != second and remaining[0] > remaining[1]:
            parent[second] = first
            remaining[0] -= 1

    threshold = rng.uniform(0.0, 0.08) if rng.random() < 0.75 else rng.uniform(0.08, 0.16)
    jitter = np.exp(0.35 * rng.standard_normal(len(pairs)))
    for index in np.argsort(difference, kind="stable"):
        if difference[index] < threshold * jitter[index]:
            merge(pairs[index, 0], pairs[index, 1])
    smallest = rng.uniform(0.0, 3.0) * min_area
    for region in np.argsort(area, kind="stable"):
        if area[region] >= smallest:
            break
        touching = np.flatnonzero((pairs == region).any(-1))
        if touching.size:
            best = touching[np.argmin(difference[touching] / np.sqrt(length[touching]))]
            merge(pairs[best, 0] + pairs[best, 1] - region, region)
    roots = np.array([root(node) for node in range(count)])
    return np.unique(roots, return_inverse=True)[1].astype(np.int16)


def _annotate(
    rng: np.random.Generator,
    regions: np.ndarray,
    contrast: tuple,
    num_annotators: int,
    min_area: int,
    grid,
) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = grid
    h, w = yy.shape[0], xx.shape[1]
    merged = np.stack([_annotator_merge(rng, contrast, min_area) for _ in range(num_annotators)])
    amplitude = rng.uniform(0.6, 1.6, (num_annotators, 2, 1, 1)).astype(np.float32)
    cells = (max(2, h // 40), max(2, w // 40))
    shift = _smooth_noise(rng, (h, w), cells, 2 * num_annotators).reshape(-1, 2, h, w)
    shift = 2.2 * np.tanh(amplitude * shift / 2.2)  # |shift| < 2.2 px, without flat plateaus
    rows = np.clip(np.floor(yy + 0.5 + shift[:, 0]), 0, h - 1).astype(np.intp)
    cols = np.clip(np.floor(xx + 0.5 + shift[:, 1]), 0, w - 1).astype(np.intp)
    warped = np.take(regions, rows * w + cols)
    count = merged.shape[1]
    segmentations = np.take(merged, warped + count * np.arange(num_annotators)[:, None, None])
    segmentations = np.stack([_clean_labels(segmentation) for segmentation in segmentations])
    boundaries = segmentation_boundaries(segmentations)
    for annotator in range(num_annotators):
        on = np.flatnonzero(boundaries[annotator])
        for _ in range(min(int(rng.poisson(0.8)), 3)):
            if on.size == 0:
                break
            y, x = divmod(int(on[rng.integers(on.size)]), w)
            radius = rng.uniform(3.0, 8.0)
            top, left = max(y - 8, 0), max(x - 8, 0)
            near_y, near_x = yy[top : y + 9] - y, xx[:, left : x + 9] - x
            boundaries[annotator, top : y + 9, left : x + 9] &= near_y**2 + near_x**2 > radius**2
    return segmentations, boundaries


# ---------------------------------------------------------------------------------------------
# One image, and the data set.


def _render_image(
    rng: np.random.Generator, size: tuple[int, int], num_annotators: int, textures: str, sources
) -> tuple[np.ndarray, ...]:
    h, w = size
    grid = (np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :])
    min_area = max(16, h * w // 600)
    layers = _background_labels(rng, grid)
    count = int(layers.max()) + 1
    for _ in range(int(rng.integers(4, 12))):
        _paint_shape(rng, layers, count, grid)
        count += 1
    layers = _clean_labels(layers, min_area)
    regions = _regions(layers)

    recipes: list[dict] = []
    for _ in range(count):
        if recipes and rng.random() < 0.25:
            recipes.append(_similar_recipe(rng, recipes[int(rng.integers(len(recipes)))]))
        else:
            recipes.append(_texture_recipe(rng, textures, sources))
    from scipy.ndimage import find_objects, gaussian_filter

    image = np.empty((h, w, 3), np.float32)
    for layer, box in enumerate(find_objects(layers + 1)):
        if box is None:
            continue
        window = (box[0].start, box[0].stop, box[1].start, box[1].stop)
        texture = _render_texture(recipes[layer], sources, (h, w), window)
        np.copyto(image[box], texture, where=(layers[box] == layer)[..., None])
    np.clip(image, 0, 1, out=image)

    contrast = _region_contrast(image, regions, int(regions.max()) + 1)
    annotator_segmentations, annotations = _annotate(
        rng, regions, contrast, num_annotators, min_area, grid
    )

    lighting = 1.0 + rng.uniform(0.05, 0.25) * _smooth_noise(rng, (h, w), (2, 3))[0]
    image = image * (rng.uniform(0.7, 1.05) * lighting)[..., None]
    blur = rng.uniform(0.3, 1.1)
    image = gaussian_filter(image, (blur, blur, 0), truncate=3.0)
    image = image + rng.uniform(0.0, 0.03) * rng.standard_normal(image.shape, np.float32)
    image = np.clip(image, 0, 1).astype(np.float32)
    return image, regions, annotator_segmentations, annotations


def _check_arguments(num_images, size, num_annotators, textures) -> tuple[int, int]:
    if not isinstance(num_images, int | np.integer) or num_images < 0:
        raise ValueError(f"num_images must be an integer >= 0, got {num_images!r}")
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"size must be (height, width), both >= 32, got {size!r}")
    if not isinstance(num_annotators, int | np.integer) or num_annotators < 1:
        raise ValueError(f"num_annotators must be an integer >= 1, got {num_annotators!r}")
    if textures not in TEXTURE_SETS:
        raise ValueError(f"textures must be one of {TEXTURE_SETS}, got {textures!r}")
    return int(size[0]), int(size[1])


def _generate(
    stream: str, num_images: int, seed: int, size, num_annotators: int, textures: str
) -> ShapesDataset:
    h, w = _check_arguments(num_images, size, num_annotators, textures)
    sources = _photo_textures() if textures == "embedded" else ((), ())
    images = np.zeros((num_images, h, w, 3), np.float32)
    segmentations = np.zeros((num_images, h, w), np.int32)
    annotator_segmentations = np.zeros((num_images, num_annotators, h, w), np.int16)
    annotations = np.zeros((num_images, num_annotators, h, w), bool)
    with threadpool_limits(limits=1, user_api="blas"):  # tiny products: threads only cost
        for index in range(num_images):
            rng = np.random.default_rng([_TAG, _STREAMS[stream], int(seed), index])
            (
                images[index],
                segmentations[index],
                annotator_segmentations[index],
                annotations[index],
            ) = _render_image(rng, (h, w), num_annotators, textures, sources)
    return ShapesDataset(
        images=images,
        segmentations=segmentations,
        boundaries=segmentation_boundaries(segmentations),
        annotations=[list(per_image) for per_image in annotations],
        annotator_segmentations=annotator_segmentations,
    )


def generate_shapes_dataset(
    num_images: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = (160, 240),
    num_annotators: int = 5,
    textures: str = "embedded",
) -> ShapesDataset:
    """Procedural BSDS500-like images with exact boundaries and `num_annotators` annotators.

    Image i depends only on (seed, i, size, num_annotators, textures), not on `num_images`.
    Speed at 160x240 with 5 annotators, one process on this project's 2-core development machine
    while other jobs kept both cores busy: 29-45 ms of CPU per image (200 images in 7-7.5 s),
    plus 1.3-1.6 s once per process to load the embedded photos; it runs on one core.

    Args:
      num_images: how many images.
      seed: any non-negative integer.
      size: (height, width), both >= 32.
      num_annotators: annotators per image (BSDS500 has about 5, sec. 3.4).
      textures: "embedded" (photo crops, skimage grey textures and procedural textures) or
        "procedural" (only the latter).

    Returns:
      A `ShapesDataset`.
    """
    return _generate("custom", num_images, seed, size, num_annotators, textures)


def load_shapes(
    split: str = "train",
    *,
    num_images: int | None = None,
    seed: int = 0,
    size: tuple[int, int] = (160, 240),
    num_annotators: int = 5,
    textures: str = "embedded",
) -> ShapesDataset:
    """The train / val / test split of the shapes set: 200 / 100 / 200 images by default, as
    BSDS500; each split draws from its own seeds, so no image is in two splits."""
    if split not in SHAPES_SPLITS:
        raise ValueError(f"split must be one of {tuple(SHAPES_SPLITS)}, got {split!r}")
    count = SHAPES_SPLITS[split] if num_images is None else num_images
    return _generate(split, count, seed, size, num_annotators, textures)


# ---------------------------------------------------------------------------------------------
# A picture to look at.


def shapes_contact_sheet(
    path: str | PathLike[str],
    *,
    num_images: int = 4,
    seed: int = 0,
    size: tuple[int, int] = (160, 240),
    num_annotators: int = 5,
    textures: str = "embedded",
) -> Path:
    """Writes a PNG to look at: one row per image of `generate_shapes_dataset(num_images, ...)`
    with the image, its true boundaries, each annotator's boundaries (black on white, as BSDS500
    draws them) and the mean of the annotators (grey where only some drew a boundary)."""
    from PIL import Image, ImageDraw

    data = generate_shapes_dataset(
        num_images, seed=seed, size=size, num_annotators=num_annotators, textures=textures
    )
    h, w = data.images.shape[1:3]
    gap, header = 4, 14
    titles = ["image", "truth", *(f"annotator {k + 1}" for k in range(num_annotators)), "mean"]
    width, height = len(titles) * (w + gap) - gap, header + num_images * (h + gap) - gap
    sheet = Image.new("RGB", (width, height), (150, 150, 150))
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(titles):
        draw.text((column * (w + gap) + 2, 1), title, fill=(0, 0, 0))
    for row in range(num_images):
        maps = [data.boundaries[row], *data.annotations[row]]
        tiles = [data.images[row], *(1.0 - np.asarray(m, np.float32) for m in maps)]
        tiles.append(1.0 - np.mean(data.annotations[row], axis=0))
        for column, tile in enumerate(tiles):
            tile = np.clip(np.asarray(tile, np.float32), 0, 1) * 255 + 0.5
            if tile.ndim == 2:
                tile = np.repeat(tile[..., None], 3, -1)
            picture = Image.fromarray(tile.astype(np.uint8))
            sheet.paste(picture, (column * (w + gap), header + row * (h + gap)))
    out = Path(path)
    sheet.save(out)
    return out
