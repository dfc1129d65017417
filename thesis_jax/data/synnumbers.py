"""Syn Numbers: SVHN-like crops of font-rendered house numbers (thesis sec. 5.4.4).

The thesis's SYN NUMBERS (~500,000 images, the source domain of Syn Numbers -> SVHN) were rendered
from Windows fonts "by varying the text (that includes different one-, two-, and three-digit
numbers), positioning, orientation, background and stroke colors, and the amount of blur". This
module regenerates such a set from the fonts available offline. Like SVHN's cropped-digits format,
each image is a crop centred on one digit of the number (neighbouring digits partly visible) and
the label is that centre digit.

Variations per image (drawn from `numpy.random.default_rng(seed)`):
  - text: a 1-, 2- or 3-digit number (equally likely; no leading zero when it has 2 or 3 digits),
    and which of its digits is centred (equally likely); the label is that digit, so 0 is rarer
    (~7% of labels against ~10% for the others) since numbers do not start with 0;
  - font: uniform over `available_fonts()`;
  - digit height 45-80% of the image, extra gap between digits -5..30% of the digit height;
  - the centre digit's centre moved by up to 8% of the image in x and y;
  - rotation by -15..15 degrees about the centre digit;
  - background colour uniform in RGB, stroke colour uniform with at least 48/255 luma contrast;
  - Gaussian blur with sigma 0..1.2 pixels (at 32x32, scaled with `size`);
  - Gaussian pixel noise with sigma 0..6 (of 255).

Fonts: every TrueType/OpenType file under the usual font folders (/usr/share/fonts,
/usr/local/share/fonts, ~/.local/share/fonts, ~/.fonts), the fonts bundled with matplotlib when it
is installed (found without importing it), and Pillow's built-in scalable font, so the generator
works on a machine with no system fonts. A font is kept only if it draws ten distinct lining
digits (symbol fonts and old-style figures are dropped). Output is deterministic for a seed and a
given font set and Pillow/FreeType version; pass `fonts=` to pin the set.

Speed (measured on this project's 2-core development machine, 32x32, 31 usable fonts, other jobs
running): about 5,000 images/s in one process (50,000 images in 10.2 s). Rendering is the
parallelisable part (~70%); a 2-process `spawn` pool rendered 50,000 masks in 8.2 s against 7.0 s
serially (start-up and pickling cost more than they save on 2 cores), so none is used.
"""

import functools
import glob
import importlib.util
import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

PILLOW_DEFAULT_FONT = "pillow-default"
"""Name of Pillow's built-in scalable font (`ImageFont.load_default(size=...)`) in font lists."""

FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
)
_FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
_CHUNK = 2048


class SynNumberSpec(NamedTuple):
    """Everything that decides one Syn Numbers image apart from pixel noise.

    Lengths are fractions of the image side, so one spec renders at any size.
    """

    text: str  # the number, 1 to 3 digits
    centre: int  # index in `text` of the digit at the image centre (the label)
    font: str  # font file path, or PILLOW_DEFAULT_FONT
    digit_height: float  # height of the digits
    spacing: float  # extra gap between digits, fraction of the digit height
    angle: float  # counter-clockwise rotation in degrees about the centre digit
    offset_x: float  # centre digit's centre minus the image centre
    offset_y: float
    stroke: tuple[int, int, int]  # RGB of the digits
    background: tuple[int, int, int]  # RGB of the background
    blur: float  # Gaussian blur sigma

    @property
    def label(self) -> int:
        return int(self.text[self.centre])


@functools.cache
def _font(font: str, pixels: int) -> ImageFont.FreeTypeFont:
    if font == PILLOW_DEFAULT_FONT:
        default = ImageFont.load_default(size=pixels)
        if not isinstance(default, ImageFont.FreeTypeFont):
            raise OSError("Pillow was built without FreeType; its default font does not scale")
        return default
    return ImageFont.truetype(font, pixels, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def _digit_height_per_pixel(font: str) -> float:
    """Height of the digits (baseline to top) per pixel of font size."""
    boxes = [_font(font, 100).getbbox(str(digit), anchor="ls") for digit in range(10)]
    return float(np.mean([-box[1] for box in boxes])) / 100.0


def _draws_distinct_lining_digits(font: str) -> bool:
    try:
        face = _font(font, 64)
        boxes = [face.getbbox(str(digit), anchor="ls") for digit in range(10)]
        glyphs = {bytes(face.getmask(str(digit))) for digit in range(10)}
    except OSError:
        return False
    heights = np.array([-box[1] for box in boxes], np.float64)
    bottoms = np.array([box[3] for box in boxes], np.float64)
    return bool(
        heights.min() > 0.3 * 64
        and heights.max() <= 1.1 * heights.min()
        and bottoms.max() <= 0.05 * 64
        and len(glyphs) == 10
    )


def _font_files() -> list[str]:
    folders = [os.path.expanduser(folder) for folder in FONT_DIRS]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        folders.append(os.path.join(spec.submodule_search_locations[0], "mpl-data", "fonts", "ttf"))
    files, names = [], set()
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
            name = os.path.basename(path)
            if name.lower().endswith(_FONT_SUFFIXES) and name not in names:
                names.add(name)
                files.append(path)
    return files


@functools.cache
def _available_fonts() -> tuple[str, ...]:
    candidates = [*_font_files(), PILLOW_DEFAULT_FONT]
    return tuple(font for font in candidates if _draws_distinct_lining_digits(font))


def available_fonts() -> list[str]:
    """Fonts the generator uses: usable font files (sorted per folder), then PILLOW_DEFAULT_FONT."""
    return list(_available_fonts())


def _stroke_colours(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform RGB stroke colours whose luma differs from the background's by at least 48.

    Draws up to 16 candidates per image; if none qualifies, black or white (whichever contrasts
    more).
    """
    luma = np.array([0.299, 0.587, 0.114])
    candidates = rng.integers(0, 256, size=(background.shape[0], 16, 3))
    contrast = np.abs((candidates - background[:, None, :]) @ luma)
    first_good = np.argmax(contrast >= 48, axis=1)
    strokes = candidates[np.arange(background.shape[0]), first_good]
    hopeless = ~np.any(contrast >= 48, axis=1)
    black_or_white = np.where(background @ luma >= 127.5, 0, 255)
    strokes[hopeless] = black_or_white[hopeless, None]
    return strokes


def sample_syn_number_specs(
    num: int, rng: np.random.Generator, fonts: Sequence[str]
) -> list[SynNumberSpec]:
    """Draws `num` random specs (the variations listed in the module docstring)."""
    if not fonts:
        raise ValueError("fonts is empty")
    lengths = rng.integers(1, 4, size=num)
    digits = rng.integers(0, 10, size=(num, 3))
    leading = rng.integers(1, 10, size=num)
    digits[:, 0] = np.where(lengths > 1, leading, digits[:, 0])
    centres = np.floor(rng.random(num) * lengths).astype(np.int64)
    font_index = rng.integers(len(fonts), size=num)
    heights = rng.uniform(0.45, 0.8, size=num)
    spacings = rng.uniform(-0.05, 0.3, size=num)
    angles = rng.uniform(-15.0, 15.0, size=num)
    offsets = rng.uniform(-0.08, 0.08, size=(num, 2))
    backgrounds = rng.integers(0, 256, size=(num, 3))
    strokes = _stroke_colours(backgrounds, rng)
    blurs = rng.uniform(0.0, 1.2 / 32, size=num)
    return [
        SynNumberSpec(
            text="".join(str(digit) for digit in digits[index, : lengths[index]]),
            centre=int(centres[index]),
            font=fonts[font_index[index]],
            digit_height=float(heights[index]),
            spacing=float(spacings[index]),
            angle=float(angles[index]),
            offset_x=float(offsets[index, 0]),
            offset_y=float(offsets[index, 1]),
            stroke=tuple(int(value) for value in strokes[index]),
            background=tuple(int(value) for value in backgrounds[index]),
            blur=float(blurs[index]),
        )
        for index in range(num)
    ]


def render_syn_number_mask(spec: SynNumberSpec, size: int) -> np.ndarray:
    """The digits' coverage (uint8 (size, size), 255 = stroke) for one spec."""
    if not spec.text.isdigit() or not 0 <= spec.centre < len(spec.text):
        raise ValueError(f"bad spec: text {spec.text!r}, centre {spec.centre}")
    target_height = spec.digit_height * size
    pixels = max(4, round(target_height / _digit_height_per_pixel(spec.font)))
    face = _font(spec.font, pixels)
    canvas_side = 2 * size
    start = size // 2
    centre_x = start + size / 2 + spec.offset_x * size
    centre_y = start + size / 2 + spec.offset_y * size

    advances = [face.getlength(char) for char in spec.text]
    gap = spec.spacing * target_height
    left, top, right, bottom = face.getbbox(spec.text[spec.centre], anchor="ls")
    origins = {spec.centre: centre_x - (left + right) / 2}
    for index in range(spec.centre + 1, len(spec.text)):
        origins[index] = origins[index - 1] + advances[index - 1] + gap
    for index in range(spec.centre - 1, -1, -1):
        origins[index] = origins[index + 1] - gap - advances[index]
    baseline = centre_y - (top + bottom) / 2

    canvas = Image.new("L", (canvas_side, canvas_side), 0)
    draw = ImageDraw.Draw(canvas)
    for index, char in enumerate(spec.text):
        draw.text((origins[index], baseline), char, fill=255, font=face, anchor="ls")
    if spec.angle:
        canvas = canvas.rotate(
            spec.angle, resample=Image.Resampling.BILINEAR, center=(centre_x, centre_y)
        )
    sigma = spec.blur * size
    if sigma > 0:
        margin = min(start, math.ceil(3 * sigma) + 1)
        window = canvas.crop((start - margin,) * 2 + (start + size + margin,) * 2)
        window = window.filter(ImageFilter.GaussianBlur(sigma))
        canvas = window.crop((margin, margin, margin + size, margin + size))
    else:
        canvas = canvas.crop((start, start, start + size, start + size))
    return np.asarray(canvas)


def _colourise(masks: np.ndarray, strokes: np.ndarray, backgrounds: np.ndarray) -> np.ndarray:
    """float32 (N, S, S, 3): background where the mask is 0, stroke where it is 255."""
    alpha = masks[..., None].astype(np.float32) / 255.0
    backgrounds = backgrounds.astype(np.float32)[:, None, None, :]
    strokes = strokes.astype(np.float32)[:, None, None, :]
    return backgrounds + (strokes - backgrounds) * alpha


def render_syn_number(spec: SynNumberSpec, size: int = 32) -> np.ndarray:
    """One noise-free Syn Numbers image, uint8 (size, size, 3)."""
    mask = render_syn_number_mask(spec, size)
    image = _colourise(mask[None], np.array([spec.stroke]), np.array([spec.background]))[0]
    return np.round(image).astype(np.uint8)


def generate_syn_numbers(
    num: int, seed: int, size: int = 32, fonts: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`num` Syn Numbers images and their centre-digit labels, deterministic for `seed`.

    Args:
      num: number of images.
      seed: seed of `numpy.random.default_rng`.
      size: image side in pixels (SVHN crops are 32).
      fonts: font files (or PILLOW_DEFAULT_FONT) to draw from; default `available_fonts()`.

    Returns:
      images: uint8 (num, size, size, 3); labels: int32 (num,) in 0..9.
    """
    if not isinstance(num, int | np.integer) or num < 0:
        raise ValueError(f"num must be a non-negative integer, got {num!r}")
    if not isinstance(size, int | np.integer) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    fonts = list(fonts) if fonts is not None else available_fonts()
    for font in fonts:
        if font != PILLOW_DEFAULT_FONT and not os.path.isfile(font):
            raise FileNotFoundError(f"font file {font!r} does not exist")
    rng = np.random.default_rng(seed)
    specs = sample_syn_number_specs(int(num), rng, fonts)
    noise_sigmas = rng.uniform(0.0, 6.0, size=num).astype(np.float32)
    images = np.empty((num, size, size, 3), np.uint8)
    for begin in range(0, num, _CHUNK):
        chunk = specs[begin : begin + _CHUNK]
        masks = np.stack([render_syn_number_mask(spec, size) for spec in chunk])
        coloured = _colourise(
            masks,
            np.array([spec.stroke for spec in chunk]),
            np.array([spec.background for spec in chunk]),
        )
        noise = rng.standard_normal(coloured.shape, dtype=np.float32)
        coloured += noise * noise_sigmas[begin : begin + len(chunk), None, None, None]
        images[begin : begin + len(chunk)] = np.round(np.clip(coloured, 0.0, 255.0))
    labels = np.array([spec.label for spec in specs], np.int32)
    return images, labels
