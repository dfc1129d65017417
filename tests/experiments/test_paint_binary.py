"""`python -m experiments.paint` end to end with the shipped agent: real MNIST digits drawn
large as a user's files, parsed into SVG strokes and a GIF; a photograph among them refused."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from tests.experiments.binaries import assert_one_line_error, run_module
from thesis_jax.data.mnist5k import read_mnist_5k


def _drawings(folder):
    """Two held-out-style real digits as a user would give them: 280 px, dark on light paper."""
    folder.mkdir()
    images, labels = read_mnist_5k()
    for name, index in (("three.png", int(np.nonzero(labels == 3)[0][-1])),
                        ("seven.png", int(np.nonzero(labels == 7)[0][-1]))):  # fmt: skip
        digit = Image.fromarray(255 - images[index].reshape(28, 28).astype(np.uint8))
        digit.resize((280, 280), Image.BILINEAR).save(folder / name)
    return folder


@pytest.mark.e2e
def test_drawings_become_svg_strokes_and_a_photograph_is_refused(tmp_path):
    import skimage.data

    drawings = _drawings(tmp_path / "drawings")
    Image.fromarray(skimage.data.astronaut()).save(drawings / "photo.jpg")
    out = tmp_path / "parsed"
    run = run_module(
        "experiments.paint", f"--input={drawings}", f"--output={out}", "--format=svg",
        "--samples=4", timeout=600,
    )  # fmt: skip
    assert_one_line_error(
        run,
        f"error: 1 of 3 drawings were not parsed: {drawings / 'photo.jpg'}: this looks like a "
        "photograph",
    )
    assert sorted(p.name for p in out.iterdir()) == ["seven_strokes.svg", "three_strokes.svg"]
    for name in ("seven_strokes.svg", "three_strokes.svg"):
        paths = ET.parse(out / name).getroot().findall("{http://www.w3.org/2000/svg}path")
        assert 1 <= len(paths) <= 10  # the agent's 10 steps, jumps left out
        colours = {p.get("stroke") for p in paths}
        assert len(colours) == min(len(paths), 10)  # each stroke its own colour (fig. 6.6)

    # the GIF of the same writer: blank paper first, then one more stroke per frame
    from thesis_jax.spiral.strokes import Stroke, write

    strokes = [Stroke((0.1, 0.1), (0.5, 0.2), (0.9, 0.3), 0.05, 0.9, (0.0, 0.0, 0.0)),
               Stroke((0.9, 0.3), (0.5, 0.6), (0.2, 0.9), 0.03, 0.5, (0.0, 0.0, 0.0))]  # fmt: skip
    gif = tmp_path / "two.gif"
    write(gif, strokes, 96)
    with Image.open(gif) as animation:
        frames = []
        for k in range(animation.n_frames):
            animation.seek(k)
            frames.append(np.asarray(animation.convert("L"), np.float32) / 255)
    assert len(frames) == 3 and frames[0].shape == (96, 96) and frames[0].min() == 1.0
    ink = [(1 - f).sum() for f in frames]
    assert ink[0] < ink[1] < ink[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples=0"], "error: --samples 0: must be 1 to 1024"),
        (["--agent={tmp}/none.npz"], "error: --agent: no SPIRAL agent at '{tmp}/none.npz'"),
    ],
    ids=["samples", "agent"],
)
def test_mistakes_are_one_line(tmp_path, args, message):
    drawings = _drawings(tmp_path / "drawings")
    run = run_module(
        "experiments.paint", f"--input={drawings / 'three.png'}",
        *[a.format(tmp=tmp_path) for a in args], timeout=300,
    )  # fmt: skip
    assert_one_line_error(run, message.format(tmp=tmp_path))
