"""Helpers for the end-to-end tests of the experiment binaries."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import ROOT


def run_module(
    module: str, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ) if env is None else env,
    )


def picture(path, min_std: float = 10.0) -> np.ndarray:
    """The RGB pixels of a PNG the binary wrote; fails if the picture is (nearly) blank."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.std() > min_std, f"{path} is blank"
    return image
