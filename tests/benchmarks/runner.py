"""Runs a script of benchmarks/ as `make bench` would, on the CPU, with a JSON report."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TORCH_PYTHON = ROOT / ".venv-torch" / "bin" / "python"


def run_benchmark(
    script: str, *flags: str, tmp_path: pathlib.Path, devices: int = 1, timeout: int = 300
) -> tuple[subprocess.CompletedProcess, pathlib.Path]:
    """(the finished process, where its `--json-out` report went); `devices` simulated CPUs."""
    json_out = tmp_path / f"{pathlib.Path(script).stem}.json"
    xla_flags = f"--xla_force_host_platform_device_count={devices}" if devices > 1 else ""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags)
    command = [sys.executable, str(ROOT / "benchmarks" / script), *flags]
    result = subprocess.run(
        [*command, f"--json-out={json_out}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
    return result, json_out


def benchmark_module(name: str, monkeypatch) -> object:
    """benchmarks/<name>.py imported in this process (the scripts import their siblings, such as
    `peers`, by name, so their folder goes on sys.path for the test)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(name)
