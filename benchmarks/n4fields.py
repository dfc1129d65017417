"""Speed of N4-Fields inference (thesis sec. 3.3.3) and of the BSDS boundary benchmark (sec. 3.4).

What is measured:

- N4-Fields edge maps, `thesis_jax.n4fields.predict_edges`, on one 320 x 480 RGB image by
  default (`--image-size`, a procedural `load_shapes` test image): the dense neural codes at
  every pixel, the nearest-neighbour search in the dictionary (eq. 3.3.2, `--method`: "exact",
  the blocked brute force under jax.jit, or "pynndescent" when installed) and the transfer and
  averaging of the annotation patches (eq. 3.3.1). Two rows: one network at scale 1, and the
  thesis's full setting, scales 0.5, 1 and 2 (`--scales`) times a committee of 3 networks
  (`--committee`), each with its own dictionary. The thesis reports 6 s per image for the
  latter on its GPU. The networks are freshly initialised `Architecture()`s (`--narrow`: fewer
  filters, for tests) with the channel mean of the dictionary images: the time does not depend
  on the weights (`--export=runs/n4fields/bsds/n4/export.msgpack` times the trained committee
  instead). Each dictionary holds `--dictionary-size` T (100,000 by default, as the
  thesis) codes of patches `sample_patches` draws from `--train-images` procedural training
  images (no rotation or flip), built with `build_dictionary` before timing; for "exact" the
  codes and annotations are placed on the device once.
- The BSDS500 benchmark, `thesis_jax.edges.evaluate_bsds` (99 thresholds, thin=True, the
  exact assignment), of `--bench-images` soft edge maps of 321 x 481 (`--bench-size`) against 5
  annotators each: procedural images' exact boundaries blurred (Gaussian, sigma 1.5 px) plus
  uniform noise, scored against the 5 simulated annotators of each image. `--workers`
  processes (0: evaluate_bsds's default, min(CPU count, images)); a call's time includes
  starting its worker processes.

How: every measured call runs once untimed first (compilation, numba's cache, page faults),
then `--repeats` timed calls, each with `time.perf_counter` until the edge map is back in host
memory (a numpy array) or the scores are computed. Reported per row: the median seconds per
image and images/s, the range over repeats, the first call's time and the 1-min load average as
the row started (other processes on the same CPUs make the numbers noisy). The header names the
JAX device, so GPU runs are labelled.

    make bench
    .venv/bin/python benchmarks/n4fields.py --dictionary-size=20000 --repeats=1
    .venv/bin/python benchmarks/n4fields.py --method=pynndescent --json-out=/tmp/n4fields.json

JAX and the N4-Fields code are imported inside the functions that use them: the benchmark's
worker processes are spawned and import this script, and need neither.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from peers import write_json

from experiments import startup

THESIS_SECONDS_PER_IMAGE = 6.0  # sec. 3.3.3: 3 scales x a committee of 3 networks, its GPU
DICTIONARY_CHUNK = 10_000  # patches sampled and encoded at a time (100k patches are 1.4 GB)
BLUR_SIGMA = 1.5
NOISE = 0.1
NUM_ANNOTATORS = 5


def parse_size(text: str) -> tuple[int, int]:
    """'320x480' -> (320, 480): height, width."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: want HxW") from error
    if len(size) != 2 or min(size) < 32:
        raise argparse.ArgumentTypeError(f"{text!r}: want HxW with H, W >= 32")
    return size


def parse_scales(text: str) -> tuple[float, ...]:
    """'0.5,1,2' -> (0.5, 1.0, 2.0)."""
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: want comma-separated numbers") from error
    if not scales or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: scales must be positive")
    return scales


def time_calls(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """The first call's seconds (untimed in the figures) and `repeats` timed calls' seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, times


def make_row(what: str, device: str, images: int, first: float, times: list[float]) -> dict:
    """A table row: seconds per image from seconds per call of `images` images."""
    per_image = [t / images for t in times]
    median = statistics.median(per_image)
    return {
        "what": what,
        "device": device,
        "images_per_call": images,
        "seconds_per_image": median,
        "images_per_second": 1.0 / median,
        "times_s": times,
        "first_call_s": first,
        "repeats": len(times),
    }


def architecture(narrow: bool, channel_mean: Sequence[float]):
    """The default network of fig. 3.3, or (`narrow`) its geometry with fewer filters."""
    from thesis_jax.n4fields import Architecture

    mean = tuple(float(v) for v in channel_mean)
    if narrow:
        return Architecture(conv_features=(8, 16, 16), fc_features=(64, 64), channel_mean=mean)
    return Architecture(channel_mean=mean)


def build_committee(args: argparse.Namespace) -> tuple[Any, list, list]:
    """(arch, params, dictionaries) of `args.committee` fresh networks, one dictionary each.

    The dictionaries are built `DICTIONARY_CHUNK` patches at a time (`sample_patches`, then
    `build_dictionary` for every network), so that memory stays bounded at T = 100,000.
    """
    import jax

    from thesis_jax import n4fields
    from thesis_jax.core import max_norm_projection
    from thesis_jax.data import load_shapes
    from thesis_jax.n4fields.train import init_params

    data = load_shapes("train", num_images=args.train_images, textures="procedural")
    if args.export:  # a trained committee (its dictionaries still come from procedural images)
        params, arch, _ = n4fields.load_export(args.export)
    else:
        arch = architecture(args.narrow, n4fields.channel_mean(data.images))
        # The "rbg" key compiles faster than threefry on CPU; the draw does not matter here.
        keys = [jax.random.key(args.seed + m, impl="rbg") for m in range(args.committee)]
        params = [
            max_norm_projection(init_params(key, arch), 1.0, layers=("conv1",)) for key in keys
        ]
    apply_fn = n4fields.N4Net(arch).apply
    parts: list[list[Any]] = [[] for _ in params]
    for chunk, start in enumerate(range(0, args.dictionary_size, DICTIONARY_CHUNK)):
        samples = n4fields.sample_patches(
            data.images,
            data.annotations,
            np.random.default_rng([args.seed, chunk]),
            min(DICTIONARY_CHUNK, args.dictionary_size - start),
            rotation="none",
            flip=False,
        )
        for member, p in enumerate(params):
            parts[member].append(n4fields.build_dictionary(p, samples, apply_fn=apply_fn))
    dictionaries = []
    for pieces in parts:
        codes = np.concatenate([d.codes for d in pieces])
        annotations = np.concatenate([d.annotations for d in pieces])
        if args.method == "exact":  # kept on the device between queries
            codes, annotations = jax.device_put(codes), jax.device_put(annotations)
        dictionary = n4fields.Dictionary(codes=codes, annotations=annotations)
        if args.method == "pynndescent":  # the graph is built once per dictionary, untimed
            dictionary = dictionary.with_index(seed=args.seed)
        dictionaries.append(dictionary)
    return arch, params, dictionaries


def bench_n4fields(args: argparse.Namespace, device: str) -> list[dict]:
    """Seconds per image of `predict_edges`: one network at scale 1, then the committee over
    `args.scales`."""
    from thesis_jax import n4fields
    from thesis_jax.data import load_shapes

    arch, params, dictionaries = build_committee(args)
    image = load_shapes("test", num_images=1, size=args.image_size, textures="procedural")
    image = image.images[0]
    size = f"{args.image_size[0]}x{args.image_size[1]}"
    options = {"arch": arch, "stride": args.stride, "method": args.method}
    options["block_rows"] = args.block_rows or None
    runs = [
        (f"N4-Fields {size}, 1 net, scale 1", params[0], dictionaries[0], (1.0,)),
        (
            f"N4-Fields {size}, {len(params)} nets, scales "
            + ",".join(f"{s:g}" for s in args.scales),
            params,
            dictionaries,
            args.scales,
        ),
    ]
    rows = []
    for what, p, d, scales in runs:
        load = os.getloadavg()[0]

        def call(p=p, d=d, scales=scales) -> np.ndarray:
            return n4fields.predict_edges(p, image, d, scales=scales, **options)

        first, times = time_calls(call, args.repeats)
        rows.append({**make_row(what, device, 1, first, times), "load_1min": load})
    return rows


def edge_benchmark_inputs(
    count: int, size: tuple[int, int], seed: int
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Soft edge maps in [0, 1] (blurred exact boundaries plus noise) and 5 annotators each."""
    from scipy.ndimage import gaussian_filter

    from thesis_jax.data import generate_shapes_dataset

    data = generate_shapes_dataset(
        count, seed=seed, size=size, num_annotators=NUM_ANNOTATORS, textures="procedural"
    )
    rng = np.random.default_rng(seed)
    predictions = []
    for boundaries in data.boundaries:
        soft = gaussian_filter(boundaries.astype(np.float64), BLUR_SIGMA)
        soft = soft / max(soft.max(), 1e-12) + NOISE * rng.random(soft.shape)
        predictions.append(np.clip(soft / (1.0 + NOISE), 0.0, 1.0))
    return predictions, data.annotations


def bench_bsds(args: argparse.Namespace) -> dict:
    """Images per second of `evaluate_bsds` (99 thresholds, thinning) on `args.bench_images`."""
    from thesis_jax.edges import evaluate_bsds

    predictions, ground_truths = edge_benchmark_inputs(
        args.bench_images, args.bench_size, args.seed
    )
    workers = args.workers or None
    load = os.getloadavg()[0]

    def call() -> dict:
        return evaluate_bsds(
            predictions, ground_truths, thresholds=99, thin=True, workers=workers, progress=False
        )

    first, times = time_calls(call, args.repeats)
    processes = workers or min(os.cpu_count() or 1, len(predictions))
    size = f"{args.bench_size[0]}x{args.bench_size[1]}"
    what = f"BSDS benchmark {size}, 99 thr, thin, {NUM_ANNOTATORS} annot., {processes} proc."
    # The benchmark runs on the CPUs, whatever JAX's device.
    return {**make_row(what, "cpu", len(predictions), first, times), "load_1min": load}


def format_report(report: dict) -> str:
    lines = [
        "N4-Fields inference (predict_edges: dense codes + nearest neighbour + averaging) and "
        "the BSDS benchmark; seconds per image",
        f"JAX {report['jax_version']} on {report['jax_devices']}; method {report['method']}, "
        f"dictionary T = {report['dictionary_size']:,}, "
        f"{'narrow' if report['narrow'] else 'default'} Architecture, stride {report['stride']}",
        f"first call untimed, then {report['repeats']} timed; load: the 1-min load average as "
        f"each row started ({report['cpu_count']} CPUs); the thesis: "
        f"{THESIS_SECONDS_PER_IMAGE:g} s per image for 3 scales x 3 networks on its GPU",
    ]
    header = (
        f"{'what':<58} {'device':<6} {'s/image':>9} {'images/s':>9} {'min-max s':>15} "
        f"{'repeats':>7} {'first s':>8} {'load':>5}"
    )
    lines += ["", header, "-" * len(header)]
    for row in report["results"]:
        per_image = [t / row["images_per_call"] for t in row["times_s"]]
        span = f"{min(per_image):.3g}-{max(per_image):.3g}"
        lines.append(
            f"{row['what']:<58} {row['device']:<6} {row['seconds_per_image']:>9.4g} "
            f"{row['images_per_second']:>9.4g} {span:>15} {row['repeats']:>7d} "
            f"{row['first_call_s']:>8.1f} {row['load_1min']:>5.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=parse_size, default=(320, 480), help="HxW")
    parser.add_argument("--dictionary-size", type=int, default=100_000, help="T per network")
    parser.add_argument("--method", choices=("exact", "pynndescent"), default="exact")
    parser.add_argument("--committee", type=int, default=3, help="networks in the committee")
    parser.add_argument("--scales", type=parse_scales, default=(0.5, 1.0, 2.0))
    parser.add_argument("--stride", type=int, default=1, help="codes every stride pixels")
    parser.add_argument("--block-rows", type=int, default=0, help="0: the whole image at once")
    parser.add_argument("--train-images", type=int, default=16, help="dictionary source images")
    parser.add_argument("--narrow", action="store_true", help="fewer filters (for tests)")
    parser.add_argument(
        "--export",
        default="",
        help="time a trained committee (a run's <workdir>/n4/export.msgpack) instead of "
        "fresh networks; its size replaces --committee",
    )
    parser.add_argument("--bench-images", type=int, default=8, help="0: skip the benchmark row")
    parser.add_argument("--bench-size", type=parse_size, default=(321, 481), help="HxW")
    parser.add_argument("--workers", type=int, default=0, help="0: evaluate_bsds's default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    positive = ("dictionary_size", "committee", "stride", "train_images")
    for name in (*positive, "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.block_rows < 0 or args.workers < 0 or args.bench_images < 0:
        parser.error("--block-rows, --workers and --bench-images must be >= 0")
    if args.method == "pynndescent":
        try:
            import pynndescent  # noqa: F401
        except ImportError:
            parser.error("--method=pynndescent needs pynndescent: pip install 'thesis_jax[nn]'")

    import jax

    devices = jax.devices()
    device = devices[0].platform
    report: dict[str, Any] = {
        "image_size": list(args.image_size),
        "dictionary_size": args.dictionary_size,
        "method": args.method,
        "committee": args.committee,
        "scales": list(args.scales),
        "stride": args.stride,
        "narrow": args.narrow,
        "bench_images": args.bench_images,
        "bench_size": list(args.bench_size),
        "repeats": args.repeats,
        "jax_version": jax.__version__,
        "jax_devices": f"{len(devices)} x {device} ({devices[0].device_kind})",
        "device_kind": devices[0].device_kind,
        "cpu_count": os.cpu_count(),
        "thesis_seconds_per_image": THESIS_SECONDS_PER_IMAGE,
    }
    print(f"JAX device: {report['jax_devices']}", flush=True)
    results = bench_n4fields(args, device)
    if args.bench_images:  # 0: the inference rows alone
        results.append(bench_bsds(args))
    report["results"] = results
    print(format_report(report))
    write_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    sys.exit(main())
