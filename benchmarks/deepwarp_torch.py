"""PyTorch's bilinear sampler, forward + backward: the peer `benchmarks/deepwarp.py` times against.

`torch.nn.functional.grid_sample(mode='bilinear', padding_mode='border', align_corners=True)`
samples the NCHW image at a grid normalised to [-1, 1]: with align_corners=True, -1 and +1 are
the centres of the first and last pixels, so the pixel flow of `bilinear_warp` (thesis eq.
4.3.2) becomes grid = (pixel position + flow) * 2 / (size - 1) - 1, computed inside the timed
step so that autograd carries the gradient back to the flow. One call: that conversion,
grid_sample, and `torch.autograd.grad` of the output against the driver's cotangent, for the
flow alone (`flow`, the DeepWarp case: the warped image is the network's input) or for the
image and the flow (`image+flow`). The image is turned to NCHW once, before timing.

Runs in its own interpreter (the PyTorch CPU wheel here is built for Python 3.11; the project
needs 3.12), reads the driver's inputs from `--exchange-dir` and prints one JSON line:

    python benchmarks/deepwarp_torch.py --exchange-dir=DIR --sizes=128x41x51x3 --threads=2

For each size i the directory holds size{i}_{image,flow,cotangent}.f32 (raw little-endian NHWC
float32); for the first size it also holds the driver's own results (size0_{out,image_grad,
flow_grad}.f32), and the JSON carries the largest absolute difference to PyTorch's. Timing:
`--warmup` untimed calls, then `--repeats` runs of `--calls` calls, each timed with
`time.perf_counter` (after `torch.cuda.synchronize()` on CUDA). CPU always; CUDA too when
available. Exit status 3 with a `skipped` JSON line when torch is not importable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

try:
    import torch
    from torch.nn import functional as F
except ImportError as error:
    print(json.dumps({"skipped": f"torch is not importable in {sys.executable}: {error}"}))
    sys.exit(3)

MODES = ("image+flow", "flow")


def parse_size(text: str) -> tuple[int, int, int, int]:
    """'128x41x51x3' -> (128, 41, 51, 3): batch, height, width, channels."""
    size = tuple(int(part) for part in text.lower().split("x"))
    if len(size) != 4 or min(size) < 1 or min(size[1:3]) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: want BxHxWxC with H, W >= 2")
    return size


def read_array(path: pathlib.Path, shape: tuple[int, ...]) -> torch.Tensor:
    """A raw little-endian float32 array written by numpy's `tofile`."""
    flat = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.float32)
    if flat.numel() != math.prod(shape):
        raise ValueError(f"{path} holds {flat.numel()} values, expected shape {shape}")
    return flat.reshape(shape).clone()


def pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (H, W, 2) pixel positions (x, y) and the scale that maps them onto [0, 2]."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], device=device)
    return torch.stack([xs, ys], dim=-1), scale


def warp(image_nchw: torch.Tensor, flow: torch.Tensor, base: torch.Tensor, scale: torch.Tensor):
    """bilinear_warp with grid_sample: out (N, C, H, W) at pixel position + flow, border clamp."""
    grid = (base + flow) * scale - 1.0
    return F.grid_sample(
        image_nchw, grid, mode="bilinear", padding_mode="border", align_corners=True
    )


def forward_backward(inputs: dict, mode: str) -> tuple[torch.Tensor, ...]:
    """One timed call: the output and the gradients `mode` asks for."""
    out = warp(inputs["image"], inputs["flow"], inputs["base"], inputs["scale"])
    wrt = (inputs["image"], inputs["flow"]) if mode == "image+flow" else (inputs["flow"],)
    return (out, *torch.autograd.grad(out, wrt, inputs["cotangent"]))


def load_inputs(exchange: pathlib.Path, index: int, size: tuple, device: torch.device) -> dict:
    batch, height, width, _ = size
    image = read_array(exchange / f"size{index}_image.f32", size)
    flow = read_array(exchange / f"size{index}_flow.f32", (batch, height, width, 2))
    cotangent = read_array(exchange / f"size{index}_cotangent.f32", size)
    base, scale = pixel_grid(height, width, device)
    return {
        "image": image.permute(0, 3, 1, 2).contiguous().to(device),
        "flow": flow.to(device),
        "cotangent": cotangent.permute(0, 3, 1, 2).contiguous().to(device),
        "base": base,
        "scale": scale,
    }


def equivalence_check(exchange: pathlib.Path, size: tuple) -> dict:
    """Max |PyTorch - driver| of the output and both gradients on the first size, on CPU."""
    inputs = load_inputs(exchange, 0, size, torch.device("cpu"))
    inputs["image"].requires_grad_(True)
    inputs["flow"].requires_grad_(True)
    out, image_grad, flow_grad = forward_backward(inputs, "image+flow")
    batch, height, width, _ = size
    ours = {
        "out": read_array(exchange / "size0_out.f32", size),
        "image_grad": read_array(exchange / "size0_image_grad.f32", size),
        "flow_grad": read_array(exchange / "size0_flow_grad.f32", (batch, height, width, 2)),
    }
    theirs = {
        "out": out.detach().permute(0, 2, 3, 1),
        "image_grad": image_grad.permute(0, 2, 3, 1),
        "flow_grad": flow_grad,
    }
    return {
        f"max_abs_diff_{name}": (theirs[name] - ours[name]).abs().max().item() for name in ours
    } | {f"max_abs_{name}": ours[name].abs().max().item() for name in ours}


def time_calls(
    exchange: pathlib.Path,
    index: int,
    size: tuple,
    mode: str,
    device: torch.device,
    *,
    calls: int,
    repeats: int,
    warmup: int,
) -> dict:
    """Median ms per forward + backward call over `repeats` runs of `calls` calls."""
    inputs = load_inputs(exchange, index, size, device)
    inputs["image"].requires_grad_(mode == "image+flow")
    inputs["flow"].requires_grad_(True)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    load = os.getloadavg()[0]
    for _ in range(warmup):
        forward_backward(inputs, mode)
    synchronize()
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            forward_backward(inputs, mode)
        synchronize()
        times_ms.append(1e3 * (time.perf_counter() - start) / calls)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "side": "pytorch",
        "implementation": "grid_sample",
        "size": "x".join(map(str, size)),
        "mode": mode,
        "device": device.type,
        "device_name": name,
        "ms_per_call": statistics.median(times_ms),
        "times_ms": times_ms,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "load_1min": load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchange-dir", type=pathlib.Path, required=True)
    parser.add_argument("--sizes", default="128x41x51x3", help="comma-separated BxHxWxC")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of {MODES}")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0: keep")
    args = parser.parse_args()
    sizes = [parse_size(text) for text in args.sizes.split(",")]
    modes = args.modes.split(",")
    if set(modes) - set(MODES):
        parser.error(f"--modes={args.modes}: each must be one of {MODES}")
    if args.calls < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--calls and --repeats must be >= 1, --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    report = {
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cuda_available": torch.cuda.is_available(),
        "check": equivalence_check(args.exchange_dir, sizes[0]),
        "results": [
            time_calls(
                args.exchange_dir,
                index,
                size,
                mode,
                device,
                calls=args.calls,
                repeats=args.repeats,
                warmup=args.warmup,
            )
            for index, size in enumerate(sizes)
            for mode in modes
            for device in devices
        ],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
