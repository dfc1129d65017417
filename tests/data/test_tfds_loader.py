"""tfds arrays: mock mnist reads as whole-split arrays; missing data fails fast with the fix."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thesis_jax.data import DatasetNotFoundError, load_tfds_arrays

REPO = Path(__file__).resolve().parents[2]


def test_mock_mnist_split_comes_back_as_arrays(mock_mnist_dir):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12, data_dir=str(mock_mnist_dir)):
        arrays = load_tfds_arrays("mnist", "train", str(mock_mnist_dir))
        again = load_tfds_arrays("mnist", "train", str(mock_mnist_dir))
    assert set(arrays) == {"image", "label"}
    assert arrays["image"].shape == (12, 28, 28, 1)
    assert arrays["image"].dtype == np.uint8
    assert arrays["label"].shape == (12,)
    assert np.issubdtype(arrays["label"].dtype, np.integer)
    assert arrays["label"].min() >= 0 and arrays["label"].max() <= 9
    np.testing.assert_array_equal(arrays["image"], again["image"])


def test_unprepared_dataset_names_the_path_and_the_prepare_command(tmp_path):
    import tensorflow_datasets  # noqa: F401

    with pytest.raises(DatasetNotFoundError) as raised:
        load_tfds_arrays("mnist", "train", str(tmp_path))
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    assert str(tmp_path / "mnist") in message
    assert "python -m tensorflow_datasets.scripts.download_and_prepare" in message
    assert "--datasets=mnist --data_dir=DIR" in message
    assert "download_and_prepare()" in message
    assert "--config.data_dir" in message


def test_tfds_data_dir_environment_variable_is_the_default(tmp_path, monkeypatch):
    import tensorflow_datasets  # noqa: F401

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="svhn_cropped") as raised:
        load_tfds_arrays("svhn_cropped", "test", None)
    assert str(tmp_path / "svhn_cropped") in str(raised.value)


def test_unknown_dataset_name_is_a_value_error(tmp_path):
    import tensorflow_datasets  # noqa: F401

    with pytest.raises(ValueError, match="no dataset called 'mnist_typo'"):
        load_tfds_arrays("mnist_typo", "train", str(tmp_path))


def test_missing_tensorflow_datasets_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'thesis_jax\[tfds\]'"):
        load_tfds_arrays("mnist", "train", str(tmp_path))


def test_importing_the_data_package_does_not_import_tensorflow():
    code = (
        "import sys, thesis_jax.data\n"
        "heavy = [name for name in ('tensorflow', 'tensorflow_datasets') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_a_missing_dataset_is_reported_without_starting_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from thesis_jax.data import DatasetNotFoundError, load_tfds_arrays\n"
        "for name in ('mnist', 'mnist_typo'):\n"
        "    try:\n"
        f"        load_tfds_arrays(name, 'train', {str(tmp_path)!r})\n"
        "    except (DatasetNotFoundError, ValueError) as error:\n"
        "        print(type(error).__name__)\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["DatasetNotFoundError", "ValueError"]
