"""Arrays built once and kept on disk: the one cache every derived dataset uses.

A derived dataset (MNIST-M blends, generated Syn Numbers) is built by a deterministic function
and stored as an uncompressed `.npz` of named arrays. The file is written to a temporary name in
the same folder and renamed, so an interrupted build never leaves a half-written cache; a cache
that cannot be read (truncated, not an npz) is reported with its path.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np


def cached_arrays(
    path: str | os.PathLike[str], build: Callable[[], Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays stored at `path`; built with `build()` and stored there first if absent.

    Raises:
      ValueError: `path` exists but is not a readable npz (the message says to delete it).
    """
    path = Path(path)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {key: stored[key] for key in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"the cached arrays in {path} cannot be read ({error}); delete the file and it "
                "is rebuilt"
            ) from error
    arrays = {key: np.asarray(value) for key, value in build().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return arrays
