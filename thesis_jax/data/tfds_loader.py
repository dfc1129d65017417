"""Whole tensorflow-datasets splits as numpy arrays, failing fast when a dataset is not prepared.

The DANN digit experiments (thesis sec. 5.4.4: MNIST, SVHN) read their real data through
tensorflow-datasets. No machine of this project reaches the internet, so this module never
downloads: a dataset that is not prepared in the data directory raises `DatasetNotFoundError`
with the command that prepares it on a connected machine. TensorFlow is imported only inside
`load_tfds_arrays`, and only when the dataset's folder exists (a missing one is reported in
about a second instead of the three or more TensorFlow takes to start), so importing
`thesis_jax.data` stays free of it; it is kept off the GPUs, leaving accelerator memory to JAX.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np

from thesis_jax.data.errors import DatasetNotFoundError

TFDS_INSTALL_HINT = "pip install 'thesis_jax[tfds]'"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory in effect: `data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("TFDS_DATA_DIR"):
        return Path(os.environ["TFDS_DATA_DIR"]).expanduser()
    return Path.home() / "tensorflow_datasets"


def prepare_instructions(name: str, data_dir: str | os.PathLike[str]) -> str:
    """How to prepare tfds dataset `name` on a connected machine and bring it to `data_dir`."""
    return (
        f"On a machine with internet access run\n"
        f"  python -m tensorflow_datasets.scripts.download_and_prepare "
        f"--datasets={name} --data_dir=DIR\n"
        f"or, in Python,\n"
        f"  import tensorflow_datasets as tfds; "
        f"tfds.builder({name!r}, data_dir='DIR').download_and_prepare()\n"
        f"then copy DIR/{name} to {data_dir}/{name} here (or copy DIR anywhere and pass it as\n"
        f"`--config.data_dir=DIR` or $TFDS_DATA_DIR)."
    )


def _import_tfds() -> Any:
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "Reading real datasets needs tensorflow-datasets and tensorflow, which are not "
            f"installed: {error}. Install them with `{TFDS_INSTALL_HINT}`."
        ) from error
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # TensorFlow already initialised its devices; nothing more can be done here.
    return tfds


def _unknown_name(name: str) -> ValueError:
    return ValueError(
        f"tensorflow-datasets has no dataset called {name!r}; see "
        "https://www.tensorflow.org/datasets/catalog/overview for the names."
    )


def _check_known(name: str) -> None:
    """ValueError if tfds registers no dataset `name` (its registry needs no TensorFlow: about a
    second, against three or more for importing TensorFlow)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        _import_tfds()  # the install hint
        raise
    if name not in tfds.list_builders(with_community_datasets=False):
        raise _unknown_name(name)


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}/"))
        return flat
    return {prefix.rstrip("/"): np.asarray(tree)}


def load_tfds_arrays(
    name: str, split: str, data_dir: str | os.PathLike[str] | None = None
) -> dict[str, np.ndarray]:
    """One split of a prepared tfds dataset, every feature as one numpy array.

    Args:
      name: tfds dataset name, e.g. "mnist", "svhn_cropped" (optionally "name:version").
      split: tfds split string, e.g. "train", "test", "train[:10%]".
      data_dir: folder holding prepared datasets; see `resolve_data_dir` for the default.

    Returns:
      Feature name -> array with the examples on axis 0, e.g. for mnist
      {"image": uint8 (N, 28, 28, 1), "label": int64 (N,)}. Nested features get "a/b" keys.

    Raises:
      ImportError: tensorflow-datasets is not installed.
      DatasetNotFoundError: the dataset is not prepared in the data directory.
      ValueError: tfds has no dataset called `name`.
    """
    root = resolve_data_dir(data_dir)
    base = name.split(":")[0].split("/")[0]
    if not (root / base).is_dir():  # nothing prepared there: say so before TensorFlow starts
        _check_known(base)
        raise DatasetNotFoundError(
            f"tfds dataset {name!r} (split {split!r})",
            [root / base],
            prepare_instructions(base, root),
        )
    tfds = _import_tfds()
    try:
        builder = tfds.builder(name, data_dir=str(root))
    except tfds.core.registered.DatasetNotFoundError as error:
        raise _unknown_name(name) from error
    if not builder.is_prepared():
        raise DatasetNotFoundError(
            f"tfds dataset {name!r} (split {split!r}, version {builder.version})",
            [builder.data_dir],
            prepare_instructions(builder.name, root),
        )
    dataset = builder.as_dataset(split=split, batch_size=-1, shuffle_files=False)
    return _flatten(tfds.as_numpy(dataset))
