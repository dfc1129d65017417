"""One table of every speed comparison the project makes, written as JSON too (`make bench`).

    .venv/bin/python benchmarks/summary.py                       # runs the benchmarks (minutes)
    .venv/bin/python benchmarks/summary.py --json-out=bench.json
    .venv/bin/python benchmarks/summary.py --from=DIR            # re-tabulate saved reports

Runs, each in its own interpreter with its own `--json-out` report (kept in `--reports`):
`dann_step.py` for the three architectures of fig. 5.3 (JAX against PyTorch eager on the same
CPU threads), `deepwarp.py` (the bilinear sampler's forward + backward for image and flow
against `grid_sample`), `spiral_envs.py` (JaxPaint against LibMyPaint, per CPU core) and
`n4fields.py` (N4-Fields inference of one 320 x 480 image, committee of 3 at 3 scales, against
the 5-second goal: the thesis's dense map, and codes every 8 pixels). Then prints one row per
comparison: what, ours, theirs, ratio (> 1: ours is faster), with the machine (CPU model, cores,
the load average before and after) so that before and after can be compared from two JSON
files. A benchmark that fails or whose peer is missing gives its row with the reason instead of a
ratio; the exit status is 1 only if a benchmark crashed.

On a machine whose JAX runs on an accelerator (`benchmarks/device_check.sh`), each JAX row is
compared with PyTorch on CUDA instead of the CPU, JaxPaint also runs 8,192 canvases at once, and
N4-Fields' committee is held to 0.1 s per image instead of 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import peers

from experiments import startup

HERE = pathlib.Path(__file__).resolve().parent

# (report name, script, flags): what one full `make bench` summary runs.
RUNS = (
    ("dann_mnist", "dann_step.py", ("--arch=mnist", "--steps=30", "--repeats=3")),
    ("dann_svhn", "dann_step.py", ("--arch=svhn", "--steps=5", "--repeats=3")),
    ("dann_gtsrb", "dann_step.py", ("--arch=gtsrb", "--steps=5", "--repeats=3")),
    # Calls of 3-8 ms: with 10 a repeat, whole runs came out 1.8x slow on a shared 2-core VM.
    ("warp", "deepwarp.py", ("--modes=image+flow", "--calls=40", "--repeats=5")),
    ("paint", "spiral_envs.py", ("--skip=mujoco", "--batch-sizes=64,1024", "--repeats=3")),
    # The thesis's dense map (stride 1: ~200 s a call on 2 cores, so one timed call), then its
    # own remedy, a code every 8 pixels (sec. 3.3.3; BSDS scores by stride: n4fields_stride.py).
    ("n4fields", "n4fields.py", ("--bench-images=0", "--repeats=1")),
    ("n4fields_stride8", "n4fields.py", ("--bench-images=0", "--repeats=2", "--stride=8")),
)
TORCH_PEERS = ("dann_step.py", "deepwarp.py")  # the scripts that take --torch-python
QUICK_FLAGS = {  # tiny sizes: the summary's own test, and a look at the table in a minute
    "dann_mnist": ("--arch=mnist", "--steps=2", "--repeats=1", "--warmup=0"),
    "dann_svhn": ("--arch=svhn", "--steps=1", "--repeats=1", "--warmup=0"),
    "dann_gtsrb": ("--arch=gtsrb", "--steps=1", "--repeats=1", "--warmup=0"),
    "warp": ("--modes=image+flow", "--sizes=8x41x51x3", "--calls=2", "--repeats=1"),
    "paint": ("--skip=mujoco", "--batch-sizes=4", "--strokes=20", "--repeats=1"),
    "n4fields": (
        "--bench-images=0",
        "--repeats=1",
        "--narrow",
        "--image-size=64x96",
        "--dictionary-size=2000",
        "--committee=1",
        "--scales=1.0",
    ),
}
QUICK_FLAGS["n4fields_stride8"] = (*QUICK_FLAGS["n4fields"], "--stride=8")


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "load_1min_before": os.getloadavg()[0],
        "malloc": benchmark_malloc(),
    }


def benchmark_malloc() -> str:
    """The malloc the benchmarks run with: each re-executes itself with glibc's huge pages where
    `experiments.startup` can give them (the PyTorch peers inherit it)."""
    if startup.reexec_environment() is not None:
        return "glibc, huge pages"
    return peers.malloc_setting()  # what this process has is what they keep


ACCELERATOR_FLAGS = {  # replaces flags of `RUNS` where JAX runs on a GPU or TPU
    "paint": ("--skip=mujoco", "--batch-sizes=64,1024,8192", "--repeats=3"),
}
GOAL_SECONDS = {"cpu": 5.0, "accelerator": 0.1}  # N4-Fields' committee at 3 scales, per image
TORCH_DEVICE = {"cpu": "cpu", "gpu": "cuda"}  # a JAX platform -> the PyTorch device beside it


def jax_platform() -> str:
    """The platform JAX computes on here ("cpu", "gpu", "tpu"), asked in a child process so that
    this one keeps no JAX state (the benchmarks set their own threads and flags)."""
    result = subprocess.run(
        [sys.executable, "-c", "import jax; print(jax.default_backend())"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.split()
    return lines[-1] if result.returncode == 0 and lines else "cpu"


def run_all(
    reports: pathlib.Path,
    quick: bool,
    only: set[str],
    *,
    platform: str = "cpu",
    torch_python: str | None = None,
) -> dict[str, str]:
    """Runs every benchmark of `RUNS`; returns name -> failure message for those that crashed."""
    failures = {}
    for name, script, flags in RUNS:
        if only and name not in only:
            continue
        if quick:
            flags = QUICK_FLAGS[name]
        elif platform != "cpu":
            flags = ACCELERATOR_FLAGS.get(name, flags)
        if torch_python and script in TORCH_PEERS:
            flags = (*flags, f"--torch-python={torch_python}")
        out = reports / f"{name}.json"
        print(f"[summary] {script} {' '.join(flags)}", flush=True)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(HERE / script), *flags, f"--json-out={out}"],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
            check=False,
        )
        seconds = time.perf_counter() - start
        (reports / f"{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0 or not out.exists():
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            failures[name] = f"exit {result.returncode}: {tail[0][:200]}"
        print(f"[summary] {name}: {seconds:.0f} s", flush=True)
    return failures


def _load(reports: pathlib.Path, name: str) -> dict | None:
    path = reports / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _peer_device(platform: str) -> str:
    return TORCH_DEVICE.get(platform, platform)


def _on(platform: str) -> str:
    return "" if platform == "cpu" else f", {platform}"


def dann_rows(report: dict | None, arch: str) -> list[dict]:
    what = f"DANN step, {arch} architecture (batch 128)"
    if report is None:
        return [{"what": what, "note": "not run"}]
    jax_row = next(r for r in report["results"] if r["side"] == "jax" and r["devices"] == 1)
    device = _peer_device(jax_row["device"])
    torch_row = next(
        (r for r in report["results"] if r["side"] == "pytorch" and r["device"] == device), None
    )
    what += _on(jax_row["device"])
    row = {"what": what, "ours": f"{jax_row['steps_per_s']:.2f} steps/s"}
    if torch_row is None:
        hint = "make .venv-torch/bin/python" if device == "cpu" else "no PyTorch with CUDA there"
        return [{**row, "note": f"PyTorch on {device} not measured ({hint})"}]
    check = report.get("check", {}).get("ok")
    peer = "PyTorch eager" + ("" if device == "cpu" else f", {device}")
    return [
        {
            **row,
            "theirs": f"{torch_row['steps_per_s']:.2f} steps/s ({peer})",
            "ratio": jax_row["steps_per_s"] / torch_row["steps_per_s"],
            "note": "same numbers" if check else "EQUIVALENCE CHECK FAILED",
        }
    ]


def warp_rows(report: dict | None) -> list[dict]:
    if report is None:
        return [{"what": "warp forward + backward", "note": "not run"}]
    rows = []
    for size in report["sizes"]:
        mine = [
            r
            for r in report["results"]
            if r["side"] == "jax" and r["implementation"] == "custom_vjp" and r["size"] == size
        ]
        for custom in mine:
            device = _peer_device(custom["device"])
            theirs = [
                r
                for r in report["results"]
                if r["side"] == "pytorch" and r["device"] == device and r["size"] == size
            ]
            what = f"warp fwd+bwd ({custom['mode']}), {size}{_on(custom['device'])}"
            row = {"what": what, "ours": f"{custom['ms_per_call']:.1f} ms (custom_vjp)"}
            peer = next((r for r in theirs if r["mode"] == custom["mode"]), None)
            if peer is None:
                rows.append({**row, "note": f"PyTorch on {device} not measured"})
                continue
            rows.append(
                {
                    **row,
                    "theirs": f"{peer['ms_per_call']:.1f} ms (grid_sample)",
                    "ratio": peer["ms_per_call"] / custom["ms_per_call"],
                }
            )
    return rows


def paint_rows(report: dict | None, threads: int) -> list[dict]:
    if report is None:
        return [{"what": "SPIRAL renderer, 64x64 strokes/s", "note": "not run"}]
    reference = next((r for r in report["rows"] if r["name"].startswith("LibMyPaint")), None)
    rows = []
    for row in report["rows"]:
        if not row["name"].startswith("JaxPaint"):
            continue
        per_core = row["per_second"] / max(threads, 1) if row["device"] == "cpu" else None
        line = {
            "what": f"SPIRAL renderer, 64x64, {row['name']} ({row['device']})",
            "ours": f"{row['per_second']:,.0f} strokes/s"
            + (f" ({per_core:,.0f} per core)" if per_core else ""),
        }
        if reference is None:
            rows.append({**line, "note": "LibMyPaint not measured"})
            continue
        rows.append(
            {
                **line,
                "theirs": f"{reference['per_second']:,.0f} (LibMyPaint, 1 core)",
                "ratio": (per_core or row["per_second"]) / reference["per_second"],
                "note": "per core" if per_core else "per device",
            }
        )
    return rows


def n4_rows(report: dict | None, stride: int) -> list[dict]:
    if report is None:
        return [{"what": f"N4-Fields inference per image, stride {stride}", "note": "not run"}]
    rows = []
    for row in report["results"]:
        if "seconds_per_image" not in row or row["what"].startswith("BSDS"):
            continue
        line = {
            "what": f"inference: {row['what']}, stride {stride} ({row['device']})",
            "ours": f"{row['seconds_per_image']:.3g} s/image",
        }
        if " nets, " in row["what"]:  # the committee over the scales: the goal
            on_cpu = row["device"] == "cpu"
            goal = GOAL_SECONDS["cpu" if on_cpu else "accelerator"]
            line["theirs"] = f"{goal:g} s (the goal {'on 2 cores' if on_cpu else 'on a GPU'})"
            line["ratio"] = goal / row["seconds_per_image"]
        rows.append(line)
    return rows


def tabulate(reports: pathlib.Path, threads: int) -> list[dict]:
    return [
        *dann_rows(_load(reports, "dann_mnist"), "mnist"),
        *dann_rows(_load(reports, "dann_svhn"), "svhn"),
        *dann_rows(_load(reports, "dann_gtsrb"), "gtsrb"),
        *warp_rows(_load(reports, "warp")),
        *paint_rows(_load(reports, "paint"), threads),
        *n4_rows(_load(reports, "n4fields"), stride=1),
        *n4_rows(_load(reports, "n4fields_stride8"), stride=8),
    ]


def format_table(rows: list[dict], info: dict) -> str:
    busy = max(info["load_1min_before"], info.get("load_1min_after", 0.0)) > info["cpus"]
    platform = info.get("jax_platform", "cpu")
    lines = [
        f"Speed summary on {info['cpu']} ({info['cpus']} CPUs"
        + ("" if platform == "cpu" else f", JAX on {platform}")
        + f"), Python {info['python']}; load average {info['load_1min_before']:.2f} before, "
        f"{info.get('load_1min_after', 0):.2f} after"
        + (" (above the CPU count: other processes competed)" if busy else "")
        + f"; malloc: {info.get('malloc', 'default')}",
        "",
        "| what | ours | theirs | ratio |",
        "|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row else ""
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(
            f"| {row['what']} | {row.get('ours', '')} | {row.get('theirs', '')} | {ratio}{note} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json-out", type=pathlib.Path, default=None)
    parser.add_argument("--reports", type=pathlib.Path, default=None, help="keep reports here")
    parser.add_argument("--from", dest="source", type=pathlib.Path, default=None)
    parser.add_argument("--only", default="", help=f"comma list of {[r[0] for r in RUNS]}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--torch-python", default=None, help="the PyTorch peers' interpreter (default: theirs)"
    )
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    unknown = only - {name for name, _, _ in RUNS}
    if unknown:
        parser.error(f"unknown --only {sorted(unknown)}; choose from {[r[0] for r in RUNS]}")
    info = machine()
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench_") as scratch:
        reports = args.source or args.reports or pathlib.Path(scratch)
        if args.source is None:
            reports.mkdir(parents=True, exist_ok=True)
            platform = jax_platform()
            info["jax_platform"] = platform
            failures = run_all(
                reports, args.quick, only, platform=platform, torch_python=args.torch_python
            )
        info["load_1min_after"] = os.getloadavg()[0]
        rows = tabulate(reports, info["cpus"])  # XLA:CPU's threads: the usable CPUs
    for name, failure in failures.items():
        rows.append({"what": name, "note": f"FAILED: {failure}"})
    print(format_table(rows, info))
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
