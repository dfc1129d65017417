"""The MuJoCo Scenes dataset (thesis sec. 6.4.1): counts, caching, seeds, and a picture."""

import time
import warnings

import numpy as np
import pytest

from thesis_jax.core.metrics import image_grid, save_png
from thesis_jax.spiral import scenes_dataset as sd
from thesis_jax.spiral.envs import mujoco_scenes as ms

COUNT = 20


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("scenes_cache")


@pytest.fixture(scope="module")
def dataset(cache_dir):
    return sd.load_mujoco_scenes(COUNT, seed=0, data_dir=cache_dir, progress=False)


def test_makes_the_requested_scenes_with_one_to_five_objects(dataset):
    images, scenes = dataset
    assert images.shape == (COUNT, 64, 64, 3) and images.dtype == np.uint8
    assert scenes.shape == (COUNT, 5, 7) and scenes.dtype == np.int32
    counts = scenes[:, :, 0].sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 5 and len(set(counts)) > 2
    for scene in scenes:
        ms.validate_scene(scene)
        assert len(set(scene[scene[:, 0] == 1, 2])) == scene[:, 0].sum()  # distinct cells


def test_images_are_renders_of_the_stored_scenes(dataset):
    images, scenes = dataset
    with ms.SceneRenderer(max_objects=5) as renderer:
        for i in (0, COUNT - 1):
            np.testing.assert_array_equal(images[i], renderer.render_pixels(scenes[i]))


def test_second_load_reads_the_cache(dataset, cache_dir):
    start = time.perf_counter()
    images, scenes = sd.load_mujoco_scenes(COUNT, seed=0, data_dir=cache_dir, progress=False)
    assert time.perf_counter() - start < 0.5
    np.testing.assert_array_equal(images, dataset[0])
    np.testing.assert_array_equal(scenes, dataset[1])
    assert sd.mujoco_scenes_cache_path(COUNT, 0, 64, cache_dir).is_file()
    assert not list(sd.mujoco_scenes_cache_path(COUNT, 0, 64, cache_dir).parent.glob("*.tmp"))


def test_seeds_differ_and_counts_share_a_prefix(dataset):
    other = sd.sample_dataset_scenes(COUNT, seed=1)
    assert not np.array_equal(other, dataset[1])
    np.testing.assert_array_equal(sd.sample_dataset_scenes(5, seed=0), dataset[1][:5])


def test_a_corrupted_cache_is_regenerated(tmp_path):
    path = sd.mujoco_scenes_cache_path(3, 7, 64, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz file")
    with pytest.warns(RuntimeWarning, match="regenerating"):
        images, _ = sd.load_mujoco_scenes(3, seed=7, data_dir=tmp_path, progress=False)
    assert images.shape == (3, 64, 64, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = sd.load_mujoco_scenes(3, seed=7, data_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(images, again)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="count"):
        sd.load_mujoco_scenes(0)
    with pytest.raises(ValueError, match="seed"):
        sd.load_mujoco_scenes(3, seed=-1)


def test_png_grid_of_scenes(dataset, tmp_path):
    """16 scenes a person can look at: coloured primitives on a grey platform."""
    images, _ = dataset
    grid = image_grid(images[:16], ncols=4)
    for path in (tmp_path / "mujoco_scenes.png", "/tmp/mujoco_scenes.png"):
        save_png(path, grid, scale=3)
    assert grid.shape == (4 * 66 + 2, 4 * 66 + 2, 3)
    saturated = np.ptp(images[:16].astype(int), axis=-1) > 60
    assert saturated.reshape(16, -1).any(axis=1).mean() > 0.5  # most scenes show colour
