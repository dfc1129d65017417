"""N4-Fields inference's speed against its accuracy, by stride: the shipped committee on BSDS500.

The thesis's dense map (sec. 3.3.3: a committee of 3 networks at scales 0.5, 1 and 2, a code at
every pixel) costs about 7.7 TFLOP per 320 x 480 photo, most of it the fully connected layers at
every position of the scale-2 image: minutes on 2 CPU cores (`benchmarks/n4fields.py`). The
thesis names the remedy itself ("applying the system in a strided fashion", sec. 3.3.3):
`stride` s computes codes every s pixels, s^2 times less work, and averages fewer pasted
annotations per pixel (eq. 3.3.1). This script measures what that costs: for each stride, the
seconds per photo of `EdgeModel.predict` (the shipped committee, `n4fields/assets`) and the
BSDS500 benchmark (ODS / OIS / AP, `edges.evaluate_bsds`) of its maps on `--images` photos of a
split.

The shipped committee was trained on the train and val photos (README, "Edges of your own
photos"), so its scores on val are optimistic; what this compares is strides against each other
on the same photos and model. Each photo orientation's first call (compilation) is untimed.

    .venv/bin/python benchmarks/n4fields_stride.py --images=10 --strides=1,2,4,8
    .venv/bin/python benchmarks/n4fields_stride.py --data=../shared/data/BSDS500 --json-out=s.json
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np
from peers import write_json

from experiments import startup

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "BSDS500"


def measure(model, images, truths, *, stride: int, scales, workers: int) -> dict:
    """Seconds per photo and the benchmark's scores of the model's maps at `stride`."""
    from thesis_jax.edges import evaluate_bsds

    compiled, times, maps = set(), [], []
    for image in images:
        pixels = image.astype(np.float32) / 255.0
        if pixels.shape not in compiled:  # the first call per shape compiles: not timed
            model.predict(pixels, scales=scales, stride=stride)
            compiled.add(pixels.shape)
        start = time.perf_counter()
        maps.append(np.asarray(model.predict(pixels, scales=scales, stride=stride)))
        times.append(time.perf_counter() - start)
    scores = evaluate_bsds(maps, truths, workers=workers or None)
    return {
        "stride": stride,
        "seconds_per_image": statistics.median(times),
        "times": times,
        "ods": float(scores["ods"]),
        "ois": float(scores["ois"]),
        "ap": float(scores["ap"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA, help="BSDS500 root")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--images", type=int, default=10, help="the split's first N photos")
    parser.add_argument("--strides", default="2,4,8", help="comma list; 1 is the dense map")
    parser.add_argument("--scales", default="0.5,1,2", help="comma list of scales")
    parser.add_argument("--model", default="bsds", help="a shipped name or a packaged file")
    parser.add_argument("--workers", type=int, default=0, help="0: evaluate_bsds's default")
    parser.add_argument("--json-out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    strides = [int(s) for s in args.strides.split(",") if s]
    scales = tuple(float(s) for s in args.scales.split(",") if s)
    if args.images < 1 or not strides or min(strides) < 1:
        parser.error("--images and every stride must be >= 1")

    import jax

    from thesis_jax.edges.bsds_data import load_bsds500
    from thesis_jax.n4fields.export import load_edge_model

    images, truths, names = load_bsds500(args.data, args.split)
    images, truths, names = images[: args.images], truths[: args.images], names[: args.images]
    model = load_edge_model(args.model)
    device = jax.devices()[0]
    print(
        f"N4-Fields by stride: committee of {len(model.params)}, scales {scales}, "
        f"{len(images)} BSDS500 {args.split} photos, JAX on {device.platform} "
        f"({device.device_kind})",
        flush=True,
    )
    print(f"{'stride':>6} {'s/photo':>9} {'ODS':>7} {'OIS':>7} {'AP':>7}")
    rows = []
    for stride in strides:
        row = measure(model, images, truths, stride=stride, scales=scales, workers=args.workers)
        rows.append(row)
        print(
            f"{stride:>6} {row['seconds_per_image']:>9.2f} {row['ods']:>7.3f} "
            f"{row['ois']:>7.3f} {row['ap']:>7.3f}",
            flush=True,
        )
    if args.json_out:
        write_json(
            args.json_out,
            {
                "model": args.model,
                "scales": scales,
                "split": args.split,
                "images": names,
                "device": device.platform,
                "rows": rows,
            },
        )
    return 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()
    sys.exit(main())
