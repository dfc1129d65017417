"""Fixtures for the data tests: a tfds data directory in which `mnist` counts as prepared."""

from pathlib import Path

import pytest

MOCK_MNIST_SPLITS = {"train": 12, "test": 5}


@pytest.fixture
def mock_mnist_dir(tmp_path: Path) -> Path:
    """A data_dir holding mnist's metadata (no records), for use under tfds.testing.mock_data.

    `mock_data(data_dir=...)` reads the metadata from here, so `is_prepared()` holds and
    `batch_size=-1` knows the split sizes; the examples themselves are random.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist", data_dir=str(tmp_path))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(name=name, shard_lengths=[count], num_bytes=0)
                for name, count in MOCK_MNIST_SPLITS.items()
            ]
        )
    )
    Path(builder.data_dir).mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)
    return tmp_path
