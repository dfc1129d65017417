"""`core.files`: the user's inputs (a file, a folder, a glob) and where each result goes."""

import numpy as np
import pytest
from PIL import Image

from thesis_jax.core import files
from thesis_jax.core.files import InputError


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.jpg", "a.png", "notes.txt", ".hidden.png"):
        Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(folder / name, format="PNG")
    (folder / "sub").mkdir()
    return folder


def test_inputs_are_a_file_a_folder_or_a_glob(photos):
    assert files.expand_inputs(str(photos / "notes.txt")) == [photos / "notes.txt"]
    assert files.expand_inputs(str(photos)) == [photos / "a.png", photos / "b.jpg"]
    assert files.expand_inputs(str(photos / "*.jpg")) == [photos / "b.jpg"]
    with pytest.raises(InputError, match="--input is required"):
        files.expand_inputs("")
    with pytest.raises(InputError, match="no such file or folder"):
        files.expand_inputs(str(photos / "missing.png"))
    with pytest.raises(InputError, match="the pattern matches no file"):
        files.expand_inputs(str(photos / "*.gif"))
    with pytest.raises(InputError, match=r"no files ending in \.png"):
        files.expand_inputs(str(photos / "sub"))


def test_outputs_never_replace_inputs_and_existing_files_only_when_asked(photos, tmp_path):
    one = [photos / "a.png"]
    plan = files.plan_outputs(one, None, suffix="_edges.png", allowed=(".png",), overwrite=False)
    assert plan == [photos / "a_edges.png"]
    plan = files.plan_outputs(
        one, str(tmp_path / "new" / "out.png"), suffix="_x.png", allowed=(".png",), overwrite=False
    )
    assert plan == [tmp_path / "new" / "out.png"] and (tmp_path / "new").is_dir()
    with pytest.raises(InputError, match=r"name a file ending in \.png"):
        files.plan_outputs(one, "out.svg", suffix="_x.png", allowed=(".png",), overwrite=False)
    with pytest.raises(InputError, match="is one of the inputs, which are never replaced"):
        files.plan_outputs(one, str(one[0]), suffix="_x.png", allowed=(".png",), overwrite=True)
    with pytest.raises(InputError, match="exists; pass --overwrite"):
        files.plan_outputs(
            one, str(photos / "b.jpg"), suffix="", allowed=(".jpg",), overwrite=False
        )

    many = files.expand_inputs(str(photos))
    plan = files.plan_outputs(
        many, str(tmp_path / "out"), suffix="_edges.png", allowed=(".png",), overwrite=False
    )
    assert plan == [tmp_path / "out" / "a_edges.png", tmp_path / "out" / "b_edges.png"]
    with pytest.raises(InputError, match="2 inputs need a folder, not a file"):
        files.plan_outputs(many, str(photos / "a.png"), suffix="_e.png", allowed=(".png",),
                           overwrite=True)  # fmt: skip
    with pytest.raises(InputError, match="is one of the inputs"):  # a suffix that maps onto them
        files.plan_outputs(many, str(photos), suffix=".png", allowed=(".png",), overwrite=True)
    clash = [photos / "a.png", photos / "sub" / "a.png"]
    with pytest.raises(InputError, match=r"two inputs would write the same output a_e\.png"):
        files.plan_outputs(clash, str(tmp_path), suffix="_e.png", allowed=(".png",), overwrite=True)


def test_read_image_names_a_file_that_is_not_one_and_write_image_is_whole(photos, tmp_path):
    assert files.read_image(photos / "a.png").shape == (6, 8, 3)
    assert files.read_image(photos / "a.png", "L").shape == (6, 8)
    with pytest.raises(InputError, match=r"cannot read .*notes\.txt: not an image PIL can read"):
        (photos / "notes.txt").write_text("hello")
        files.read_image(photos / "notes.txt")
    truncated = tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])  # a download that stopped halfway
    with pytest.raises(InputError, match=r"cannot read .*cut\.png"):
        files.read_image(truncated)
    out = tmp_path / "map.png"
    files.write_image(out, np.linspace(0, 1, 12).reshape(3, 4))
    assert np.asarray(Image.open(out)).tolist()[2][3] == 255
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_lone_bad_input_stops_at_once_and_several_are_counted_at_the_end():
    with pytest.raises(InputError, match=r"^cannot read a\.png$"):
        files.Skips(1, "inputs could not be read").skip("cannot read a.png")
    skips = files.Skips(3, "inputs could not be read")
    skips.skip("cannot read a.png")
    skips.skip("cannot read b.png")
    with pytest.raises(InputError, match=r"^2 of 3 inputs could not be read: cannot read a\.png$"):
        skips.finish()
    files.Skips(3, "inputs could not be read").finish()  # nothing skipped: nothing to say
