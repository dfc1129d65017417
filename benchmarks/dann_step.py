"""Training steps per second of the jitted DANN update (thesis ch. 5) against PyTorch eager.

What is measured: one call of `thesis_jax.dann.update` (sec. 5.3.2, eq. 5.3.9-5.3.10) on a fixed
batch of 128 images (64 source + 64 target) for the fig. 5.3 architecture `--arch` (mnist by
default; svhn, gtsrb): forward G_f, G_y and G_d (through the gradient reversal layer) on both
halves, the loss of `dann.loss` (eq. 5.3.7: label cross-entropy on the source half plus the
domain cross-entropy of both halves), backward, and an SGD step with momentum 0.9 under the
lambda_p and mu_p schedules (sec. 5.4.2), in float32 (matmul/conv precision 'highest', so no
TF32 on GPUs). The hyperparameters are those of `experiments.configs.dann` with the max-norm
projection off. The peer is `benchmarks/dann_step_torch.py`: the same network, batch, loss and
optimizer in PyTorch eager, run in its own interpreter (`--torch-python`), which prints one
JSON line that is parsed here.

How: the batch is placed on the device once (both sides), so no host transfer is timed. JAX:
the update is jitted with `thesis_jax.core.parallel.jit_update` (state donated), the first call
(the compilation) and `--warmup` further steps are untimed, then `--repeats` runs of `--steps`
steps are each timed with `time.perf_counter` up to `jax.block_until_ready`. It runs on one
device of `jax.devices()` and, when there are several, sharded over all of them. PyTorch: CPU,
and CUDA when available, `--warmup` untimed steps then the same repeats. Reported: the median
steps/s, the range over repeats and the spread ((max - min) / median), and the ratio JAX/PyTorch
for each PyTorch device.

Threads: XLA:CPU sizes its intra-op pool by `DefaultThreadPoolSize` (xla/pjrt/utils.cc):
$PJRT_NPROC or $NPROC when set, else the CPUs this process may run on (`os.sched_getaffinity`);
PyTorch gets `torch.set_num_threads` of that same count (override with `--torch-threads`).
Each row shows the 1-min load average as it started: other processes on the same CPUs make the
numbers noisy. Before timing, one equivalence check: both parameter counts, and the loss and
every gradient's sum and norm at the same (Flax) parameters with lambda = 1 and no dropout, on
CPU; a mismatch makes the script exit 1 after printing the numbers.

    make bench                                    # mnist, JAX and PyTorch
    .venv/bin/python benchmarks/dann_step.py --arch=svhn --steps=20 --json-out=/tmp/svhn.json

Without a PyTorch interpreter, or with one that cannot import torch, the JAX numbers are printed
with a line saying that the comparison was skipped (`make .venv-torch/bin/python` provides it)
and the exit status is 0. If the PyTorch side crashes, its error follows the JAX numbers and the
exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from peers import (
    compile_cell,
    environment_line,
    jax_environment,
    peer_outcome,
    run_torch_peer,
    table,
    timing_flags,
    write_json,
)

from experiments import startup
from experiments.configs import dann as dann_configs
from thesis_jax import dann
from thesis_jax.core import TrainState, parallel
from thesis_jax.dann.networks import INPUT_SHAPES

ARCHITECTURES = ("mnist", "svhn", "gtsrb")
NUM_CLASSES = {"mnist": 10, "svhn": 10, "gtsrb": 43}
NUM_STEPS = 10_000  # the schedules' horizon
COMPONENTS = ("feature_extractor", "label_predictor", "domain_classifier")
TORCH_HINT = "get it with `make .venv-torch/bin/python`, then `make bench`"
# Tolerances of the equivalence check: the loss and gradient norms agree to float32 noise.
# Gradient sums, measured against the gradient's norm, get a looser bound: a ReLU that flips at
# a near-zero activation shifts every kernel gradient of its unit the same way (the unit's
# inputs are non-negative), which moves the sum but hardly the norm. A reversed, dropped or
# rescaled gradient moves both by O(1).
LOSS_RTOL, GRAD_NORM_RTOL, GRAD_SUM_TOLERANCE = 1e-4, 1e-3, 5e-2


def benchmark_config(architecture: str) -> ml_collections.ConfigDict:
    """The DANN training hyperparameters of the presets, for `architecture`, max-norm off."""
    config = dann_configs.get_config("digits")
    config.architecture = architecture
    config.num_classes = NUM_CLASSES[architecture]
    config.num_steps = NUM_STEPS
    config.max_norm = 0.0
    config.input_shape = None
    return config


def make_batch(architecture: str, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Half source, half target: each class a fixed random pattern plus noise, target shifted."""
    rng = np.random.default_rng(seed)
    half, shape = batch_size // 2, INPUT_SHAPES[architecture]
    patterns = rng.normal(size=(NUM_CLASSES[architecture], *shape)).astype(np.float32)
    source_label = rng.integers(0, NUM_CLASSES[architecture], half).astype(np.int32)
    target_label = rng.integers(0, NUM_CLASSES[architecture], half).astype(np.int32)
    noise = lambda: 0.3 * rng.normal(size=(half, *shape)).astype(np.float32)
    return {
        "source_image": patterns[source_label] + noise(),
        "source_label": source_label,
        "target_image": patterns[target_label] + noise() + 0.3,
        "target_label": target_label,
    }


def parameters_in_torch_order(params: dict) -> list[np.ndarray]:
    """Kernels and biases of G_f, G_y, G_d, layer by layer, as PyTorch lists its parameters."""
    arrays = []
    for component in COMPONENTS:
        layers = params[component]
        for name in sorted(layers, key=lambda layer: int(layer.rsplit("_", 1)[1])):
            arrays += [np.asarray(layers[name]["kernel"]), np.asarray(layers[name]["bias"])]
    return arrays


def write_exchange(directory: pathlib.Path, batch: dict, params: dict) -> None:
    """The batch and the parameters as raw float32/int32 files for dann_step_torch.py."""
    batch["source_image"].astype("<f4").tofile(directory / "source_image.f32")
    batch["target_image"].astype("<f4").tofile(directory / "target_image.f32")
    batch["source_label"].astype("<i4").tofile(directory / "source_label.i32")
    flat = np.concatenate([a.astype("<f4").ravel() for a in parameters_in_torch_order(params)])
    flat.tofile(directory / "params.f32")


def reference_check(state: TrainState, batch: dict) -> dict:
    """Loss and per-parameter gradient sums/norms at lambda = 1 without dropout, on CPU."""

    def deterministic_apply(variables, images, lam, *, train, with_domain, rngs):
        del train, rngs
        return state.apply_fn(variables, images, lam, train=False, with_domain=with_domain)

    cpu = jax.devices("cpu")[0]
    params, batch = jax.device_put((state.params, batch), cpu)
    with jax.default_device(cpu):
        grads, (metrics, _) = jax.grad(dann.loss, has_aux=True)(
            params,
            batch,
            jax.random.PRNGKey(0),
            apply_fn=deterministic_apply,
            hparams=dann.Hparams(mode="dann"),
            lam=1.0,
        )
    ordered = parameters_in_torch_order(grads)
    return {
        "loss": float(metrics["loss"]),
        "grad_sums": [float(g.sum(dtype=np.float64)) for g in ordered],
        "grad_norms": [float(np.linalg.norm(g.astype(np.float64))) for g in ordered],
    }


def compare_check(jax_check: dict, torch_check: dict) -> dict:
    """Relative differences; gradient sums are compared on the scale of the gradient norm."""
    loss_rel = abs(jax_check["loss"] - torch_check["loss"]) / abs(jax_check["loss"])
    norm_rel = max(
        abs(a - b) / max(abs(a), 1e-12)
        for a, b in zip(jax_check["grad_norms"], torch_check["grad_norms"], strict=True)
    )
    sum_rel = max(
        abs(a - b) / max(n, 1e-12)
        for a, b, n in zip(
            jax_check["grad_sums"], torch_check["grad_sums"], jax_check["grad_norms"], strict=True
        )
    )
    return {
        "loss_jax": jax_check["loss"],
        "loss_torch": torch_check["loss"],
        "loss_rel_diff": loss_rel,
        "grad_norm_max_rel_diff": norm_rel,
        "grad_sum_max_rel_diff": sum_rel,
        "ok": bool(
            loss_rel < LOSS_RTOL and norm_rel < GRAD_NORM_RTOL and sum_rel < GRAD_SUM_TOLERANCE
        ),
    }


def time_jax(
    config: ml_collections.ConfigDict,
    batch: dict,
    devices: list,
    *,
    steps: int,
    repeats: int,
    warmup: int,
) -> dict:
    """Median steps/s of the jitted update on `devices` (data-parallel when several)."""
    mesh = parallel.data_mesh(devices)
    update = parallel.jit_update(dann.update, mesh)
    state = parallel.replicate(dann.init(jax.random.PRNGKey(0), config, mode="dann"), mesh)
    sharded = parallel.shard_batch(batch, mesh)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(update(state, sharded))
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        state, metrics = update(state, sharded)
    jax.block_until_ready((state, metrics))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = update(state, sharded)
        jax.block_until_ready((state, metrics))
        rates.append(steps / (time.perf_counter() - start))
    if not np.isfinite(float(metrics["loss"])):
        raise FloatingPointError(f"the JAX loss diverged on {devices}")
    return {
        "side": "jax",
        "device": devices[0].platform,
        "device_name": devices[0].device_kind,
        "devices": len(devices),
        "steps_per_s": statistics.median(rates),
        "rates": rates,
        "compile_s": compile_s,
        "load_1min": load,
    }


def run_torch(
    args: argparse.Namespace,
    config: ml_collections.ConfigDict,
    threads: int,
    exchange: pathlib.Path,
) -> dict:
    """Runs dann_step_torch.py; returns its JSON, {"skipped": reason} or {"failed": stderr}."""
    hparams = {
        "num_steps": config.num_steps,
        "gamma": config.gamma,
        "momentum": config.momentum,
        **config.learning_rate.to_dict(),
    }
    flags = [
        f"--arch={args.arch}",
        f"--batch-size={args.batch_size}",
        f"--steps={args.steps}",
        *timing_flags(args, threads),
        f"--hparams={json.dumps(hparams)}",
        f"--exchange-dir={exchange}",
    ]
    return run_torch_peer(args, "dann_step_torch.py", flags)


def describe(result: dict) -> str:
    if result["side"] == "jax":
        label = "sharded" if result["devices"] > 1 else "1 device"
        return f"{result['device']} x{result['devices']} ({label})"
    if result["device"] == "cpu":
        return f"cpu ({result['threads']} threads)"
    return f"{result['device']} ({result['device_name']})"


def _row(result: dict) -> str:
    rates = result["rates"]
    return (
        f"{result['side']:<8} {describe(result):<28} {result['steps_per_s']:>9.2f} "
        f"{f'{min(rates):.2f}-{max(rates):.2f}':>17} {result['spread']:>6.1%} "
        f"{compile_cell(result):>8} {result['load_1min']:>5.1f}"
    )


def format_report(report: dict) -> str:
    lines = [
        f"DANN training step, arch={report['arch']}, batch {report['batch_size']} "
        f"({report['batch_size'] // 2} source + {report['batch_size'] // 2} target), float32, "
        f"SGD momentum 0.9; {report['steps']} steps x {report['repeats']} repeats",
        environment_line(report),
    ]
    torch = report["torch"]
    if not report["compared"]:
        lines.append(f"parameters: JAX/Flax {report['param_count_jax']:,}")
    else:
        lines += [
            f"PyTorch {torch['torch_version']} (Python {torch['python']}), "
            f"torch.set_num_threads({torch['threads']}), interop threads "
            f"{torch['interop_threads']}, CUDA available: {torch['cuda_available']}",
            f"parameters: JAX/Flax {report['param_count_jax']:,}, PyTorch "
            f"{torch['param_count']:,} ({'equal' if report['params_equal'] else 'DIFFERENT'})",
        ]
        check = report["check"]
        lines.append(
            f"equivalence at the same parameters (CPU, lambda=1, no dropout): loss "
            f"{check['loss_jax']:.6f} vs {check['loss_torch']:.6f}, max rel. diff of gradient "
            f"norms {check['grad_norm_max_rel_diff']:.1e}, of gradient sums "
            f"{check['grad_sum_max_rel_diff']:.1e}: {'OK' if check['ok'] else 'MISMATCH'}"
        )
    header = (
        f"{'side':<8} {'devices':<28} {'steps/s':>9} {'min-max':>17} {'spread':>7} "
        f"{'compile':>8} {'load':>5}"
    )
    lines += table(header, [_row(result) for result in report["results"]])
    lines += ["", *report["notes"]]
    lines += peer_outcome(torch, TORCH_HINT)
    for ratio in report["ratios"]:
        lines.append(
            f"ratio JAX ({ratio['jax']}) / PyTorch ({ratio['pytorch']}): {ratio['ratio']:.2f}x"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, default="mnist")
    parser.add_argument("--batch-size", type=int, default=128, help="source + target")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after compiling")
    parser.add_argument("--torch-python", default=".venv-torch/bin/python")
    parser.add_argument("--torch-threads", type=int, default=0, help="0: the JAX CPU count")
    parser.add_argument("--json-out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    if args.batch_size < 2 or args.batch_size % 2:
        parser.error(f"--batch-size={args.batch_size} must be even and >= 2")
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--steps and --repeats must be >= 1, --warmup >= 0")

    jax.config.update("jax_default_matmul_precision", "highest")
    environment = jax_environment()
    cpu_threads = environment["xla_cpu_threads"]
    threads = args.torch_threads or cpu_threads
    config = benchmark_config(args.arch)
    batch = make_batch(args.arch, args.batch_size)
    state = dann.init(jax.random.PRNGKey(0), config, mode="dann")
    devices = jax.devices()
    report: dict[str, Any] = {
        "arch": args.arch,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup": args.warmup,
        **environment,
        "param_count_jax": int(sum(x.size for x in jax.tree.leaves(state.params))),
        "notes": [],
    }
    timing = {"steps": args.steps, "repeats": args.repeats, "warmup": args.warmup}
    results = [time_jax(config, batch, devices[:1], **timing)]
    if len(devices) > 1:
        if (args.batch_size // 2) % len(devices):
            report["notes"].append(
                f"sharded run skipped: {args.batch_size // 2} examples per half do not split "
                f"over {len(devices)} devices"
            )
        else:
            results.append(time_jax(config, batch, devices, **timing))

    with tempfile.TemporaryDirectory(prefix="dann_step_") as exchange:
        write_exchange(pathlib.Path(exchange), batch, jax.device_get(state.params))
        torch = run_torch(args, config, threads, pathlib.Path(exchange))
    report["torch"] = {key: value for key, value in torch.items() if key != "results"}
    report["compared"] = "skipped" not in torch and "failed" not in torch
    if report["compared"]:
        report["params_equal"] = torch["param_count"] == report["param_count_jax"]
        report["check"] = compare_check(reference_check(state, batch), torch["check"])
        results += torch["results"]
    for result in results:
        rates = result["rates"]
        result["spread"] = (max(rates) - min(rates)) / result["steps_per_s"]
    report["results"] = results
    report["ratios"] = [
        {
            "jax": describe(results[0]),
            "pytorch": describe(peer),
            "ratio": results[0]["steps_per_s"] / peer["steps_per_s"],
        }
        for peer in results
        if peer["side"] == "pytorch"
    ]
    print(format_report(report))
    write_json(args.json_out, report)
    if "failed" in torch:
        return 1
    if report["compared"] and not (report["params_equal"] and report["check"]["ok"]):
        print("the PyTorch model does not do the same work as the Flax one", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    sys.exit(main())
