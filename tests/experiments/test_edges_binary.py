"""`python -m experiments.edges` end to end: the shipped committee on a picture with known edges,
a folder of photos with an unreadable file among them, and the user's first mistakes."""

import numpy as np
import pytest
from PIL import Image

from tests.experiments.binaries import assert_one_line_error, run_module
from tests.n4fields import tiny
from thesis_jax import n4fields
from thesis_jax.n4fields.export import SHIPPED, load_edge_model, output_picture, save_edge_model


def _photos(folder, count=2):
    import skimage.data
    from skimage.transform import resize

    folder.mkdir()
    for name, photo in list({"astronaut.jpg": skimage.data.astronaut(),
                             "coffee.png": skimage.data.coffee()}.items())[:count]:  # fmt: skip
        small = resize(photo, (48, 64), anti_aliasing=True)
        Image.fromarray((small * 255).astype(np.uint8)).save(folder / name)
    return folder


def _tiny_model(path):
    arch = tiny.tiny_arch()
    params = [n4fields.train.init_params(tiny.prng_key(0), arch)]
    rng = np.random.default_rng(0)
    annotations = (rng.random((300, 16, 16)) < 0.2).astype(np.float32)
    dictionary = n4fields.Dictionary(rng.normal(size=(300, 16)).astype(np.float32), annotations)
    save_edge_model(str(path), params, arch, [dictionary], meta={"scales": [1.0]})
    return str(path)


def test_a_folder_of_photos_gets_one_map_each_and_an_unreadable_file_is_named(tmp_path):
    photos = _photos(tmp_path / "photos")
    (photos / "broken.jpg").write_bytes(b"not a picture")
    model = _tiny_model(tmp_path / "tiny.npz")
    out = tmp_path / "maps"
    run = run_module(
        "experiments.edges", f"--input={photos}", f"--output={out}", f"--checkpoint={model}",
        timeout=300,
    )  # fmt: skip
    assert_one_line_error(
        run, f"error: 1 of 3 inputs could not be read: cannot read {photos / 'broken.jpg'}"
    )
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_edges.png", "coffee_edges.png"]
    for name in ("astronaut_edges.png", "coffee_edges.png"):
        edges = np.asarray(Image.open(out / name))
        assert edges.shape == (48, 64) and edges.dtype == np.uint8 and edges.std() > 0
    again = run_module(  # nothing is replaced unasked
        "experiments.edges", f"--input={photos}/*.png", f"--output={out}", f"--checkpoint={model}",
        timeout=300,
    )  # fmt: skip
    assert_one_line_error(
        again, f"error: --output {out / 'coffee_edges.png'} exists; pass --overwrite to replace it"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input={tmp}/nothing.jpg"], "error: --input {tmp}/nothing.jpg: no such file or folder"),
        (["--input={tmp}/photos", "--checkpoint={tmp}/nope.npz"],
         "error: --checkpoint: no edge model at '{tmp}/nope.npz'"),
    ],
    ids=["missing-input", "missing-model"],
)  # fmt: skip
def test_mistakes_are_one_line(tmp_path, args, message):
    _photos(tmp_path / "photos", count=1)
    run = run_module("experiments.edges", *[a.format(tmp=tmp_path) for a in args], timeout=300)
    assert_one_line_error(run, message.format(tmp=tmp_path))


def test_the_shipped_committee_finds_the_edges_of_a_drawn_shape(tmp_path):
    model = load_edge_model("bsds")
    assert model.meta["preset"] == "bsds" and model.meta["train_split"] == "train+val"
    assert model.meta["stride"] == 2 and model.meta["scales"] == [0.5, 1.0]
    assert model.meta["scores"]["packaged"]["ods"] > 0.6  # BSDS val, as packaged
    assert SHIPPED["bsds"].endswith(".npz")
    # a light disc on a dark textured ground: its rim is the only edge
    yy, xx = np.mgrid[:96, :128]
    radius = np.hypot(yy - 48, xx - 64)
    noise = np.random.default_rng(0).normal(0, 6, (96, 128, 1))
    image = np.where((radius < 28)[..., None], 200, 60) + noise
    disc = tmp_path / "disc.png"
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8).repeat(3, -1)).save(disc)
    run = run_module("experiments.edges", f"--input={disc}", timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    edges = np.asarray(Image.open(tmp_path / "disc_edges.png"), np.float32) / 255
    rim, inside, outside = edges[abs(radius - 28) < 2], edges[radius < 18], edges[radius > 38]
    means = rim.mean(), inside.mean(), outside.mean()
    assert means[0] > 3 * max(means[1:]), means

    # the other pictures of the same map (written by the same function, in this process)

    stretched = output_picture(edges, thin=False, threshold=0, invert=False, stretch=True)
    assert stretched.max() == 255 and np.percentile(stretched, 99.95) == 255
    threshold = model.meta["scores"]["packaged"]["ods_threshold"]
    lines = output_picture(edges, thin=True, threshold=threshold, invert=True)
    assert set(np.unique(lines)) <= {0, 255}
    dark = lines == 0  # the thin edges, dark on white: on the rim, one or two pixels wide
    assert dark.sum() > 0.8 * 2 * np.pi * 28 and dark.sum() < 3 * 2 * np.pi * 28
    assert (abs(radius[dark] - 28) < 3).mean() > 0.9
