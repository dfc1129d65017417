"""Running a peer implementation's benchmark (PyTorch) in its own interpreter, and JSON reports.

A peer script prints one JSON object per line on stdout and exits 0, or exits 3 after printing
`{"skipped": reason}` when its framework is missing. `run_peer` turns every outcome into a dict
the report can show: the peer's result, `{"skipped": reason}` or `{"failed": what happened}`.
The helpers below write the parts every benchmark's report shares: what ran, tables, outcomes.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from experiments import startup

SKIPPED_EXIT_CODE = 3


def run_peer(interpreter: str, script: pathlib.Path, arguments: Sequence[str]) -> dict[str, Any]:
    """Runs `interpreter script arguments...`; returns its last JSON line or why there is none."""
    found = shutil.which(interpreter)  # a path, or a name on $PATH such as python3
    python = pathlib.Path(found or interpreter)
    if not python.exists():
        return {"skipped": f"no PyTorch interpreter at {python}"}
    command = [str(python), str(script), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode == SKIPPED_EXIT_CODE and lines:
        return json.loads(lines[-1])
    if result.returncode != 0 or not lines:
        return {
            "failed": f"{' '.join(command)} exited with {result.returncode}:\n"
            f"{result.stderr[-3000:]}"
        }
    return json.loads(lines[-1])


def write_json(path: str | pathlib.Path | None, report: dict[str, Any]) -> None:
    """Writes `report` to `path` (parents created); nothing if `path` is empty."""
    if not path:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def xla_cpu_threads() -> int:
    """The size of XLA:CPU's intra-op thread pool, as `DefaultThreadPoolSize` computes it."""
    for name in ("PJRT_NPROC", "NPROC"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def malloc_setting() -> str:
    """The process's malloc as `experiments.startup` set it up (it changes some CPU timings by up
    to 2x: README, "Configs and binaries")."""
    tunables = os.environ.get("GLIBC_TUNABLES", "").split(":")
    return "glibc, huge pages" if startup.TUNABLE in tunables else "default"


def jax_environment() -> dict[str, Any]:
    """The report's fields on the JAX side: its version, its devices, XLA:CPU's threads and
    the malloc both sides run with (the PyTorch peer inherits the environment)."""
    import jax

    devices = jax.devices()
    return {
        "jax_version": jax.__version__,
        "jax_devices": f"{len(devices)} x {devices[0].platform} ({devices[0].device_kind})",
        "xla_cpu_threads": xla_cpu_threads(),
        "malloc": malloc_setting(),
    }


def environment_line(report: dict[str, Any]) -> str:
    """The report's line on what ran (the fields of `jax_environment`) and what the load means."""
    return (
        f"JAX {report['jax_version']} on {report['jax_devices']}; XLA:CPU threads = "
        f"{report['xla_cpu_threads']}; malloc: {report.get('malloc', 'default')}; "
        "load: the 1-min load average as each row started "
        "(above the thread count, other processes compete for the CPUs)"
    )


def compile_cell(result: dict[str, Any]) -> str:
    """A row's compile time, or nothing where its side does not compile."""
    return f"{result['compile_s']:.1f} s" if "compile_s" in result else ""


def table(header: str, rows: Sequence[str]) -> list[str]:
    """A blank line, the header, a rule under it and the rows."""
    return ["", header, "-" * len(header), *rows]


def peer_outcome(peer: dict[str, Any], hint: str) -> list[str]:
    """Lines saying why a peer's rows are missing: skipped (with how to get it) or failed."""
    lines = []
    if "skipped" in peer:
        lines.append(f"PyTorch comparison skipped: {peer['skipped']}; {hint}")
    if "failed" in peer:
        lines.append(f"PyTorch side FAILED: {peer['failed']}")
    return lines


def timing_flags(args: Any, threads: int) -> list[str]:
    """The peer's flags for the repeats and warm-up steps of `args` and its thread count."""
    return [f"--repeats={args.repeats}", f"--warmup={args.warmup}", f"--threads={threads}"]


def run_torch_peer(args: Any, script: str, flags: Sequence[str]) -> dict[str, Any]:
    """`run_peer` of the PyTorch script `script` beside this file, in `args.torch_python`."""
    return run_peer(args.torch_python, pathlib.Path(__file__).with_name(script), flags)
