"""Helpers for the end-to-end tests of the experiment binaries."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import ROOT


def run_module(
    module: str,
    *args: str,
    timeout: float,
    env: dict[str, str] | None = None,
    cpus: int | None = None,
) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root, output captured; `cpus`: pinned
    to that many of this process's CPUs (XLA sizes its thread pools by them)."""
    if cpus is not None and cpus > len(os.sched_getaffinity(0)):
        raise ValueError(f"cpus={cpus} but this process may use {len(os.sched_getaffinity(0))}")
    allowed = sorted(os.sched_getaffinity(0))[:cpus] if cpus else None
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ) if env is None else env,
        preexec_fn=(lambda: os.sched_setaffinity(0, allowed)) if allowed else None,
    )


def assert_one_line_error(run: subprocess.CompletedProcess, start: str, code: int = 1) -> None:
    """The binary stopped with exit `code`, no traceback, and its last line starts `start`."""
    assert run.returncode == code, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(start), last


def one_device_env() -> dict[str, str]:
    """This environment without the tests' 8 simulated CPU devices: a real training run shards
    its small batches over one device, several times faster than over eight simulated ones."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    kept = [flag for flag in flags if not flag.startswith("--xla_force_host_platform_device_count")]
    return {**os.environ, "XLA_FLAGS": " ".join(kept)}


def optimized_env() -> dict[str, str]:
    """This environment with XLA's full optimisation, which the fast suite turns off (conftest):
    for a binary that runs more steps than it compiles programs."""
    return {k: v for k, v in os.environ.items() if k != "JAX_DISABLE_MOST_OPTIMIZATIONS"}


def picture(path, min_std: float = 10.0) -> np.ndarray:
    """The RGB pixels of a PNG the binary wrote; fails if the picture is (nearly) blank."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.std() > min_std, f"{path} is blank"
    return image


def stand_in_training(monkeypatch, binary, pictures, result):
    """Replaces `binary.train_and_evaluate` by a stand-in that writes noise PNGs named
    `pictures` into the workdir and returns `result(config)`; returns the configs it was given
    (for the tour sections' tests, which check the page around the run, not the run)."""
    from thesis_jax.core import save_png

    runs = []

    def train_and_evaluate(config, workdir):
        runs.append(config)
        noise = np.random.default_rng(0).random((20, 30, 3))
        for name in pictures:
            save_png(f"{workdir}/{name}.png", noise)
        return result(config)

    monkeypatch.setattr(binary, "train_and_evaluate", train_and_evaluate)
    return runs
