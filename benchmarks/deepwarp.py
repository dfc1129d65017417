"""Forward + backward time of DeepWarp's bilinear sampler (thesis eq. 4.3.2) against autodiff and
PyTorch.

What is measured: one call of the sampler S of eq. (4.3.1)-(4.3.2) (`thesis_jax.deepwarp`), forward
and backward, float32, in four implementations: `bilinear_warp` (the `jax.custom_vjp` with
hand-written gradients; on a CPU its compiled kernels, `deepwarp.warp_kernel`), the same traced
without those kernels (`custom_vjp XLA`: XLA's gather and scatter-add, what other devices run),
plain autodiff of `bilinear_warp_reference` (the same function as gathers), and PyTorch's
`grid_sample(mode='bilinear', padding_mode='border', align_corners=True)` with the pixel flow
turned into a normalised grid (`benchmarks/deepwarp_torch.py`, run in its own interpreter,
`--torch-python`, which prints one JSON line parsed here). A call returns the output and the
gradient for the image and the flow (`image+flow`), or for the flow alone (`flow`: the DeepWarp
case, where the warped image is the network's input and needs no gradient). Sizes: 128x41x51x3 (the
thesis's batch and eye crop, sec. 4.3.1 and 4.4.2) and 32x128x128x3 by default (`--sizes`). Inputs:
an image uniform in [0, 1], flows of a few pixels that push some samples past every border, with
fractional parts 0.05-0.95 (so that PyTorch's round trip through normalised coordinates never moves
a sample into another pixel cell), and a normal cotangent; the same arrays on both sides.

How: JAX jits the call, places the inputs on the device once, runs it once (the compilation)
and `--warmup` more times untimed, then `--repeats` runs of `--calls` calls, each timed with
`time.perf_counter` up to `jax.block_until_ready`. PyTorch: CPU, and CUDA when available, the
same warmup and repeats. Reported: the median ms per call and calls/s, the range over repeats,
the spread ((max - min) / median), and per size and gradient set the speed-up of the custom VJP
over autodiff and over each PyTorch device (time of the other / time of the custom VJP).

Threads: XLA:CPU sizes its intra-op pool by $PJRT_NPROC or $NPROC when set, else by the CPUs
this process may run on; PyTorch gets `torch.set_num_threads` of that count (`--torch-threads`
overrides). Each row shows the 1-min load average as it started: other processes on the same
CPUs make the numbers noisy. Before timing, one equivalence check on the first size: PyTorch's
output and both gradients against `bilinear_warp`'s, as the largest absolute difference; a
mismatch makes the script exit 1 after printing the numbers.

    .venv/bin/python benchmarks/deepwarp.py --torch-python=.venv-torch/bin/python
    .venv/bin/python benchmarks/deepwarp.py --sizes=64x128x128x3 --json-out=/tmp/warp.json

Then the model's inference speed: `deepwarp.predict` of the `eyes` preset's CFW+LCM network
(`--model-variant`) on batches of 41 x 51 crops (`--model-batches`, default 1 and 128), jitted,
timed the same way: ms per batch and eye crops per second (the thesis: 20 fps, one eye at a
time, on a 2014 laptop GPU).

Without a PyTorch interpreter, or with one that cannot import torch, the JAX numbers are printed
with a line saying that the comparison was skipped and the exit status is 0. If the PyTorch side
crashes, its error follows the JAX numbers and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import peers

from experiments import startup
from thesis_jax.core import native
from thesis_jax.deepwarp import bilinear_warp, bilinear_warp_reference

DEFAULT_SIZES = "128x41x51x3,32x128x128x3"
MODES = ("image+flow", "flow")
IMPLEMENTATIONS = {
    "custom_vjp": bilinear_warp,  # on a CPU: the compiled kernels of deepwarp.warp_kernel
    "custom_vjp XLA": bilinear_warp,  # the same traced without them: XLA's gather and scatter
    "autodiff": bilinear_warp_reference,
}
XLA_ONLY = {"custom_vjp XLA"}
TORCH_HINT = "get it with `make .venv-torch/bin/python`"
# Largest absolute differences allowed between PyTorch and JAX on the check size: float32 noise
# of the same interpolation (values in [0, 1], gradients of a few units), a wrong clamp or
# swapped axis moves them by O(0.1).
CHECK_TOLERANCE = {"out": 1e-5, "image_grad": 1e-4, "flow_grad": 1e-3}


def parse_size(text: str) -> tuple[int, int, int, int]:
    """'128x41x51x3' -> (128, 41, 51, 3): batch, height, width, channels."""
    size = tuple(int(part) for part in text.lower().split("x"))
    if len(size) != 4 or min(size) < 1 or min(size[1:3]) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: want BxHxWxC with H, W >= 2")
    return size


def size_name(size: tuple[int, ...]) -> str:
    return "x".join(map(str, size))


def make_inputs(size: tuple[int, int, int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Image in [0, 1]; flows of a few pixels, fractional parts 0.05-0.95; normal cotangent."""
    rng = np.random.default_rng(seed)
    whole = np.round(rng.normal(scale=2.0, size=(*size[:3], 2)))
    flow = whole + rng.uniform(0.05, 0.95, size=whole.shape)
    return {
        "image": rng.uniform(size=size).astype(np.float32),
        "flow": flow.astype(np.float32),
        "cotangent": rng.normal(size=size).astype(np.float32),
    }


def forward_backward(warp: Callable, mode: str) -> Callable:
    """(image, flow, cotangent) -> (output, gradients of `mode`), jitted."""

    def call(image, flow, cotangent):
        if mode == "image+flow":
            out, vjp = jax.vjp(warp, image, flow)
        else:
            out, vjp = jax.vjp(lambda f: warp(image, f), flow)
        return (out, *vjp(cotangent))

    return jax.jit(call)


def time_jax(
    name: str, size: tuple, mode: str, inputs: dict, *, calls: int, repeats: int, warmup: int
) -> dict:
    """Median ms per call of the jitted forward + backward of implementation `name`."""
    device = jax.devices()[0]
    call = forward_backward(IMPLEMENTATIONS[name], mode)
    args = jax.device_put((inputs["image"], inputs["flow"], inputs["cotangent"]), device)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with native.disabled() if name in XLA_ONLY else contextlib.nullcontext():
        jax.block_until_ready(call(*args))  # traced here: with or without the CPU kernels
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        jax.block_until_ready(call(*args))
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            result = call(*args)
        jax.block_until_ready(result)
        times_ms.append(1e3 * (time.perf_counter() - start) / calls)
    return {
        "side": "jax",
        "implementation": name,
        "size": size_name(size),
        "mode": mode,
        "device": device.platform,
        "device_name": device.device_kind,
        "ms_per_call": statistics.median(times_ms),
        "times_ms": times_ms,
        "compile_s": compile_s,
        "load_1min": load,
    }


def write_exchange(directory: pathlib.Path, all_inputs: list[dict]) -> None:
    """Each size's inputs, and `bilinear_warp`'s output and gradients on the first, as raw f32."""
    for index, inputs in enumerate(all_inputs):
        for key, array in inputs.items():
            array.astype("<f4").tofile(directory / f"size{index}_{key}.f32")
    first = all_inputs[0]
    out, image_grad, flow_grad = forward_backward(bilinear_warp, "image+flow")(
        first["image"], first["flow"], first["cotangent"]
    )
    for key, array in (("out", out), ("image_grad", image_grad), ("flow_grad", flow_grad)):
        np.asarray(array).astype("<f4").tofile(directory / f"size0_{key}.f32")


def run_torch(
    args: argparse.Namespace, threads: int, exchange: pathlib.Path, modes: list[str]
) -> dict:
    """Runs deepwarp_torch.py; returns its JSON, {"skipped": reason} or {"failed": stderr}."""
    flags = [
        f"--exchange-dir={exchange}",
        f"--sizes={args.sizes}",
        f"--modes={','.join(modes)}",
        f"--calls={args.calls}",
        *peers.timing_flags(args, threads),
    ]
    return peers.run_torch_peer(args, "deepwarp_torch.py", flags)


def describe(result: dict) -> str:
    if result["side"] == "jax":
        return f"jax {result['implementation']} ({result['device']})"
    if result["device"] == "cpu":
        return f"torch grid_sample (cpu, {result['threads']} threads)"
    return f"torch grid_sample ({result['device_name']})"


def speedups(results: list[dict]) -> list[dict]:
    """Per size and mode: time of each other row / time of the custom VJP."""
    ratios = []
    for custom in results:
        if custom["side"] != "jax" or custom["implementation"] != "custom_vjp":
            continue
        for other in results:
            same = other["size"] == custom["size"] and other["mode"] == custom["mode"]
            if same and other is not custom:
                ratios.append(
                    {
                        "size": custom["size"],
                        "mode": custom["mode"],
                        "custom_vjp": describe(custom),
                        "versus": describe(other),
                        "speedup": other["ms_per_call"] / custom["ms_per_call"],
                    }
                )
    return ratios


def _row(result: dict) -> str:
    times = result["times_ms"]
    return (
        f"{result['size']:<14} {result['mode']:<10} {describe(result):<34} "
        f"{result['ms_per_call']:>9.2f} {1e3 / result['ms_per_call']:>9.1f} "
        f"{f'{min(times):.2f}-{max(times):.2f}':>15} {result['spread']:>6.1%} "
        f"{peers.compile_cell(result):>8} {result['load_1min']:>5.1f}"
    )


def format_report(report: dict) -> str:
    lines = [
        "DeepWarp bilinear sampler (eq. 4.3.2), forward + backward, float32; "
        f"{report['calls']} calls x {report['repeats']} repeats after {report['warmup']} warmup",
        peers.environment_line(report),
    ]
    torch = report["torch"]
    if report["compared"]:
        lines.append(
            f"PyTorch {torch['torch_version']} (Python {torch['python']}), "
            f"torch.set_num_threads({torch['threads']}), CUDA available: "
            f"{torch['cuda_available']}"
        )
        check = report["check"]
        diffs = ", ".join(
            f"{name} {check[f'max_abs_diff_{name}']:.1e} (of max {check[f'max_abs_{name}']:.2f})"
            for name in CHECK_TOLERANCE
        )
        lines.append(
            f"equivalence on {report['sizes'][0]}, same input (torch grid_sample vs "
            f"bilinear_warp): max |diff| {diffs}: {'OK' if check['ok'] else 'MISMATCH'}"
        )
    header = (
        f"{'size':<14} {'gradients':<10} {'implementation':<34} {'ms/call':>9} {'calls/s':>9} "
        f"{'min-max ms':>15} {'spread':>7} {'compile':>8} {'load':>5}"
    )
    lines += peers.table(header, [_row(result) for result in report["results"]])
    lines.append("")
    lines += peers.peer_outcome(torch, TORCH_HINT)
    for ratio in report["ratios"]:
        lines.append(
            f"speed-up {ratio['size']} {ratio['mode']}: custom_vjp is {ratio['speedup']:.2f}x "
            f"as fast as {ratio['versus']}"
        )
    return "\n".join(lines)


def time_model(variant: str, batch: int, *, calls: int, repeats: int, warmup: int) -> dict:
    """Eye crops per second of DeepWarp inference (`deepwarp.predict`, the `eyes` preset's
    network of `variant`) on `batch` crops of 41 x 51 with landmarks and a vertical angle."""
    import importlib.util

    from thesis_jax import deepwarp

    spec = importlib.util.spec_from_file_location(
        "deepwarp_presets", pathlib.Path(__file__).parents[1] / "experiments/configs/deepwarp.py"
    )
    presets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(presets)
    config = presets.get_config("eyes")
    config.model.variant = variant
    state = deepwarp.init(jax.random.PRNGKey(0), config)
    height, width = 41, 51
    rng = np.random.default_rng(0)
    inputs = {
        "image": rng.uniform(size=(batch, height, width, 3)).astype(np.float32),
        "landmarks": (rng.uniform(size=(batch, 7, 2)) * [width, height]).astype(np.float32),
        "angle": rng.uniform(-15, 15, size=(batch, 1)).astype(np.float32),
    }
    apply_fn = state.apply_fn
    call = jax.jit(
        lambda p, b, m: deepwarp.predict(p, b, apply_fn=apply_fn, model_state=m)["output"]
    )
    args = jax.device_put((state.params, inputs, state.model_state))
    start = time.perf_counter()
    jax.block_until_ready(call(*args))
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        jax.block_until_ready(call(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = call(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / calls * 1e3)
    ms = statistics.median(times)
    return {
        "variant": variant,
        "batch": batch,
        "ms_per_batch": ms,
        "crops_per_s": batch / ms * 1e3,
        "compile_s": compile_s,
        "device": jax.devices()[0].platform,
    }


def format_model_rows(rows: list[dict]) -> str:
    lines = [
        "",
        "DeepWarp inference (deepwarp.predict, eyes preset network), 41x51 crops; the thesis "
        "reports 20 fps on a 2014 laptop GPU",
        f"{'variant':<9} {'batch':>6} {'device':<6} {'ms/batch':>10} {'crops/s':>10} "
        f"{'compile':>8}",
    ]
    for r in rows:
        lines.append(
            f"{r['variant']:<9} {r['batch']:>6} {r['device']:<6} {r['ms_per_batch']:>10.2f} "
            f"{r['crops_per_s']:>10.1f} {r['compile_s']:>7.1f}s"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated BxHxWxC")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of {MODES}")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls after compiling")
    parser.add_argument("--torch-python", default=".venv-torch/bin/python")
    parser.add_argument("--torch-threads", type=int, default=0, help="0: the JAX CPU count")
    parser.add_argument("--json-out", type=pathlib.Path, default=None)
    parser.add_argument(
        "--model-batches",
        default="1,128",
        help="comma-separated batch sizes for the inference rows ('' skips them)",
    )
    parser.add_argument("--model-variant", default="cfw_lcm")
    args = parser.parse_args()
    try:
        sizes = [parse_size(text) for text in args.sizes.split(",")]
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(f"--sizes={args.sizes}: {error}")
    modes = args.modes.split(",")
    if set(modes) - set(MODES):
        parser.error(f"--modes={args.modes}: each must be one of {MODES}")
    if args.calls < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--calls and --repeats must be >= 1, --warmup >= 0")

    environment = peers.jax_environment()
    cpu_threads = environment["xla_cpu_threads"]
    all_inputs = [make_inputs(size, seed=index) for index, size in enumerate(sizes)]
    report: dict[str, Any] = {
        "sizes": [size_name(size) for size in sizes],
        "modes": modes,
        "calls": args.calls,
        "repeats": args.repeats,
        "warmup": args.warmup,
        **environment,
    }
    timing = {"calls": args.calls, "repeats": args.repeats, "warmup": args.warmup}
    results = [
        time_jax(name, size, mode, inputs, **timing)
        for size, inputs in zip(sizes, all_inputs, strict=True)
        for mode in modes
        for name in IMPLEMENTATIONS
    ]

    with tempfile.TemporaryDirectory(prefix="deepwarp_") as exchange:
        write_exchange(pathlib.Path(exchange), all_inputs)
        torch = run_torch(args, args.torch_threads or cpu_threads, pathlib.Path(exchange), modes)
    report["torch"] = {key: value for key, value in torch.items() if key != "results"}
    report["compared"] = "skipped" not in torch and "failed" not in torch
    if report["compared"]:
        check = torch["check"]
        check["ok"] = all(
            check[f"max_abs_diff_{name}"] <= tolerance
            for name, tolerance in CHECK_TOLERANCE.items()
        )
        report["check"] = check
        order = [(size_name(size), mode) for size in sizes for mode in modes]
        results = sorted(
            results + torch["results"], key=lambda r: order.index((r["size"], r["mode"]))
        )
    for result in results:
        times = result["times_ms"]
        result["spread"] = (max(times) - min(times)) / result["ms_per_call"]
    report["results"] = results
    report["ratios"] = speedups(results)
    batches = [int(b) for b in args.model_batches.split(",") if b.strip()]
    report["model"] = [time_model(args.model_variant, b, **timing) for b in batches]
    print(format_report(report))
    if report["model"]:
        print(format_model_rows(report["model"]))
    peers.write_json(args.json_out, report)
    if "failed" in torch:
        return 1
    if report["compared"] and not report["check"]["ok"]:
        print("PyTorch's grid_sample does not compute what bilinear_warp does", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    sys.exit(main())
