"""Syn Numbers: deterministic, varied, and the label is the digit drawn at the centre."""

import os

import numpy as np
import pytest

from thesis_jax.data import available_fonts, generate_syn_numbers
from thesis_jax.data.synnumbers import (
    PILLOW_DEFAULT_FONT,
    SynNumberSpec,
    render_syn_number,
    render_syn_number_mask,
    sample_syn_number_specs,
)

FONTS = available_fonts()
DEJAVU = [font for font in FONTS if os.path.basename(font) == "DejaVuSans.ttf"]


def plain_spec(text: str, centre: int, font: str, **changes) -> SynNumberSpec:
    """Upright white digits on black, centred, no blur."""
    spec = SynNumberSpec(
        text=text,
        centre=centre,
        font=font,
        digit_height=0.6,
        spacing=0.2,
        angle=0.0,
        offset_x=0.0,
        offset_y=0.0,
        stroke=(255, 255, 255),
        background=(0, 0, 0),
        blur=0.0,
    )
    return spec._replace(**changes)


def test_same_seed_same_images_other_seed_other_images():
    images, labels = generate_syn_numbers(150, seed=7)
    again, again_labels = generate_syn_numbers(150, seed=7)
    other, _ = generate_syn_numbers(150, seed=8)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not any(np.array_equal(a, b) for a, b in zip(images, other, strict=True))


def test_images_are_svhn_shaped_varied_and_cover_all_digits():
    images, labels = generate_syn_numbers(600, seed=0)
    assert images.shape == (600, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (600,) and labels.dtype == np.int32
    assert set(labels.tolist()) == set(range(10))
    assert len({image.tobytes() for image in images}) == 600
    mean_colours = images.reshape(600, -1, 3).mean(axis=1)
    assert mean_colours.std(axis=0).min() > 25  # backgrounds vary in every channel
    contrast = images.reshape(600, -1).astype(float).std(axis=1)
    assert np.median(contrast) > 10  # digits stand out from the background


def test_specs_vary_text_length_font_pose_colour_and_blur():
    specs = sample_syn_number_specs(3000, np.random.default_rng(0), FONTS)
    lengths = np.bincount([len(spec.text) for spec in specs], minlength=4)[1:]
    np.testing.assert_allclose(lengths / 3000, 1 / 3, atol=0.04)
    assert len({spec.font for spec in specs}) == len(FONTS)
    assert not any(spec.text.startswith("0") and len(spec.text) > 1 for spec in specs)
    angles = np.array([spec.angle for spec in specs])
    assert angles.min() < -12 and angles.max() > 12
    blurs = np.array([spec.blur for spec in specs])
    assert blurs.min() < 0.002 and blurs.max() > 0.03
    luma = np.array([0.299, 0.587, 0.114])
    contrast = [abs(np.subtract(spec.stroke, spec.background) @ luma) for spec in specs]
    assert min(contrast) >= 48


@pytest.mark.parametrize("font", [*DEJAVU, PILLOW_DEFAULT_FONT], ids=os.path.basename)
@pytest.mark.parametrize(("text", "centre"), [("418", 1), ("52", 0), ("52", 1), ("907", 2)])
def test_label_is_the_digit_drawn_at_the_centre(font, text, centre):
    number = render_syn_number_mask(plain_spec(text, centre, font), 32)
    alone = render_syn_number_mask(plain_spec(text[centre], 0, font), 32)
    ink_columns = np.flatnonzero(alone.any(axis=0))
    # The lone digit is centred...
    assert abs((ink_columns[0] + ink_columns[-1]) / 2 - 15.5) <= 1.0
    ink_rows = np.flatnonzero(alone.any(axis=1))
    assert abs((ink_rows[0] + ink_rows[-1]) / 2 - 15.5) <= 1.0
    # ...and the number shows exactly that digit there, with its neighbours beside it.
    band = slice(ink_columns[0] + 1, ink_columns[-1])
    np.testing.assert_array_equal(number[:, band], alone[:, band])
    outside = np.ones(32, bool)
    outside[ink_columns[0] : ink_columns[-1] + 1] = False
    assert number[:, outside].any()
    assert plain_spec(text, centre, font).label == int(text[centre])


def test_generated_images_are_their_specs_plus_noise_and_labelled_by_them():
    images, labels = generate_syn_numbers(60, seed=3)
    specs = sample_syn_number_specs(60, np.random.default_rng(3), FONTS)
    np.testing.assert_array_equal(labels, [spec.label for spec in specs])
    clean = np.stack([render_syn_number(spec, 32) for spec in specs])
    difference = np.abs(images.astype(int) - clean).mean(axis=(1, 2, 3))
    assert difference.max() < 6  # pixel noise sigma is at most 6


def test_rotation_blur_and_offset_do_what_they_say():
    font = FONTS[0]
    upright = render_syn_number_mask(plain_spec("1", 0, font), 32)
    rotated = render_syn_number_mask(plain_spec("1", 0, font, angle=15.0), 32)
    blurred = render_syn_number_mask(plain_spec("1", 0, font, blur=1.5 / 32), 32)
    shifted = render_syn_number_mask(plain_spec("1", 0, font, offset_x=0.125), 32)
    assert not np.array_equal(upright, rotated)
    assert (blurred > 0).sum() > (upright > 0).sum()
    assert blurred.max() < upright.max()
    columns = np.arange(32)
    centre = (upright.sum(axis=0) * columns).sum() / upright.sum()
    moved = (shifted.sum(axis=0) * columns).sum() / shifted.sum()
    assert moved - centre == pytest.approx(4.0, abs=0.5)


def test_works_with_only_pillow_builtin_font_and_other_sizes():
    images, labels = generate_syn_numbers(40, seed=1, size=48, fonts=[PILLOW_DEFAULT_FONT])
    assert images.shape == (40, 48, 48, 3)
    assert len({image.tobytes() for image in images}) == 40
    assert labels.min() >= 0 and labels.max() <= 9


def test_available_fonts_draw_ten_distinct_digits():
    assert FONTS[-1] == PILLOW_DEFAULT_FONT
    assert len(set(FONTS)) == len(FONTS)
    for font in FONTS:
        masks = [
            render_syn_number_mask(plain_spec(str(digit), 0, font), 32).tobytes()
            for digit in range(10)
        ]
        assert len(set(masks)) == 10, font


def test_bad_arguments_are_refused():
    with pytest.raises(FileNotFoundError, match="no_such_font"):
        generate_syn_numbers(2, seed=0, fonts=["/nowhere/no_such_font.ttf"])
    with pytest.raises(ValueError, match="size"):
        generate_syn_numbers(2, seed=0, size=4)
    with pytest.raises(ValueError, match="num"):
        generate_syn_numbers(-1, seed=0)
    with pytest.raises(ValueError, match="bad spec"):
        render_syn_number_mask(plain_spec("12", 2, FONTS[0]), 32)
    assert generate_syn_numbers(0, seed=0)[0].shape == (0, 32, 32, 3)
