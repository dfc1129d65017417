"""The DANN training step in PyTorch eager: the peer `benchmarks/dann_step.py` times JAX against.

A mirror of `thesis_jax.dann` (thesis ch. 5, fig. 5.3): the same feature extractor, label
predictor and domain classifier (conv padding 'VALID' for mnist/gtsrb and 'SAME' for svhn, max
pools with the same windows, strides and SAME padding, the same widths, dropout 0.5 in the svhn
MLPs), the gradient reversal layer of eq. (5.3.11) as a `torch.autograd.Function`, and the same
step: the loss of `dann.loss` (eq. 5.3.7: label cross-entropy on the source half plus the mean
domain cross-entropy of the source half and that of the target half; if `dann.loss` changes,
change `dann_loss` here: the driver's equivalence check fails until they agree), lambda_p and
mu_p from the training progress (sec. 5.4.2), SGD with momentum 0.9, float32.
Images come in NHWC like the JAX batch and are turned to NCHW once, before timing; G_f's output
is flattened in (H, W, C) order as Flax does, so a Flax parameter tree loads without reordering.

Runs in its own interpreter (the PyTorch CPU wheel here is built for Python 3.11; the project
needs 3.12) and prints one JSON line on stdout:

    python benchmarks/dann_step_torch.py --arch=mnist --steps=50 --repeats=5 --threads=2
    python benchmarks/dann_step_torch.py --arch=svhn --count-params

Timing: `--warmup` untimed steps, then `--repeats` runs of `--steps` steps each, timed with
`time.perf_counter` (after `torch.cuda.synchronize()` on CUDA); the batch stays on the device
throughout. CPU always; CUDA too when `torch.cuda.is_available()`. TF32 is switched off so CUDA
does float32 work. With `--exchange-dir` (written by the JAX driver) the batch is the JAX
batch, and the equivalence check loads the Flax parameters and reports, at lambda = 1 without
dropout, the loss and every gradient's sum and norm (in the Flax parameter order), for the
driver to compare. Exit status 3 with a `skipped` JSON line when torch is not importable.
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
    from torch import nn
    from torch.nn import functional as F
except ImportError as error:
    print(json.dumps({"skipped": f"torch is not importable in {sys.executable}: {error}"}))
    sys.exit(3)

# (features, kernel, pool, pool stride) per conv block; widths of the label / domain MLPs.
ARCHITECTURES = {
    "mnist": {
        "convs": [(32, 5, 2, 2), (48, 5, 2, 2)],
        "padding": "VALID",
        "label_hidden": [100, 100],
        "domain_hidden": [100],
        "dropout": 0.0,
        "input_shape": (28, 28, 3),
        "num_classes": 10,
    },
    "svhn": {
        "convs": [(64, 5, 3, 2), (64, 5, 3, 2), (128, 5, 0, 0)],
        "padding": "SAME",
        "label_hidden": [3072, 2048],
        "domain_hidden": [1024, 1024],
        "dropout": 0.5,
        "input_shape": (32, 32, 3),
        "num_classes": 10,
    },
    "gtsrb": {
        "convs": [(96, 5, 2, 2), (144, 3, 2, 2), (256, 5, 2, 2)],
        "padding": "VALID",
        "label_hidden": [512],
        "domain_hidden": [1024, 1024],
        "dropout": 0.0,
        "input_shape": (40, 40, 3),
        "num_classes": 43,
    },
}
# The training hyperparameters of `experiments.configs.dann` (sec. 5.4.2); the JAX driver passes
# its own with --hparams.
HPARAMS = {
    "num_steps": 10_000,
    "gamma": 10.0,
    "mu0": 0.01,
    "alpha": 10.0,
    "beta": 0.75,
    "momentum": 0.9,
}


class GradientReversal(torch.autograd.Function):
    """R(x) = x, dR/dx = -lambda I: eq. (5.3.11)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def same_pool_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """XLA's 'SAME' padding (low, high) for one spatial axis: more at the high end."""
    total = max((math.ceil(size / stride) - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


class ConvFeatures(nn.Module):
    """G_f: conv -> ReLU [-> max-pool] blocks, flattened in Flax's (H, W, C) order."""

    def __init__(self, convs: list, padding: str, in_channels: int, size: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.pools: list[tuple[int, int, tuple[int, int, int, int]]] = []
        for features, kernel, pool, stride in convs:
            self.convs.append(nn.Conv2d(in_channels, features, kernel, padding=padding.lower()))
            in_channels = features
            if padding == "VALID":
                size = size - kernel + 1
            pads = (0, 0, 0, 0)
            if pool:
                if padding == "SAME":
                    low, high = same_pool_padding(size, pool, stride)
                    pads = (low, high, low, high)
                    size = math.ceil(size / stride)
                else:
                    size = (size - pool) // stride + 1
            self.pools.append((pool, stride, pads))
        self.output_size = size * size * in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, (pool, stride, pads) in zip(self.convs, self.pools, strict=True):
            x = F.relu(conv(x))
            if pool:
                if any(pads):
                    x = F.pad(x, pads, value=float("-inf"))
                x = F.max_pool2d(x, pool, stride)
        return x.permute(0, 2, 3, 1).flatten(1)


def mlp(inputs: int, hidden: list[int], outputs: int, dropout: float) -> nn.Sequential:
    """Dense -> ReLU [-> dropout] per hidden layer, then the output layer (Flax `MLP`)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, outputs))


class DANN(nn.Module):
    """G_f, G_y and G_d with the gradient reversal layer before G_d (fig. 5.1)."""

    def __init__(self, architecture: str) -> None:
        super().__init__()
        spec = ARCHITECTURES[architecture]
        height, _, channels = spec["input_shape"]
        self.feature_extractor = ConvFeatures(spec["convs"], spec["padding"], channels, height)
        size = self.feature_extractor.output_size
        dropout = spec["dropout"]
        self.label_predictor = mlp(size, spec["label_hidden"], spec["num_classes"], dropout)
        self.domain_classifier = mlp(size, spec["domain_hidden"], 2, dropout)

    def forward(self, x: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.feature_extractor(x)
        logits = self.label_predictor(features)
        domain_logits = self.domain_classifier(GradientReversal.apply(features, lam))
        return logits, domain_logits


def dann_loss(
    model: DANN, batch: dict[str, torch.Tensor], lam: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """eq. (5.3.7) as `dann.loss`: label CE on the source half, domain CE over both halves."""
    source_logits, source_domain = model(batch["source_image"], lam)
    _, target_domain = model(batch["target_image"], lam)
    label_loss = F.cross_entropy(source_logits, batch["source_label"])
    domain_loss = F.cross_entropy(source_domain, batch["source_domain"]) + F.cross_entropy(
        target_domain, batch["target_domain"]
    )
    with torch.no_grad():
        metrics = {
            "source_accuracy": (source_logits.argmax(-1) == batch["source_label"]).float().mean(),
            "domain_accuracy": torch.cat(
                [source_domain.argmax(-1) == 0, target_domain.argmax(-1) == 1]
            )
            .float()
            .mean(),
        }
    return label_loss + domain_loss, metrics


def train_step(
    model: DANN,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    step: int,
    hparams: dict,
) -> dict[str, torch.Tensor]:
    """One SGD step of eq. (5.3.9)-(5.3.10) with lambda_p and mu_p of sec. 5.4.2."""
    p = min(max(step / max(hparams["num_steps"], 1), 0.0), 1.0)
    lam = 2.0 / (1.0 + math.exp(-hparams["gamma"] * p)) - 1.0
    for group in optimizer.param_groups:
        group["lr"] = hparams["mu0"] / (1.0 + hparams["alpha"] * p) ** hparams["beta"]
    optimizer.zero_grad(set_to_none=True)
    loss, metrics = dann_loss(model, batch, lam)
    loss.backward()
    optimizer.step()
    return {"loss": loss.detach(), **metrics}


def read_array(path: pathlib.Path, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A raw little-endian array written by numpy's `tofile`."""
    flat = torch.frombuffer(bytearray(path.read_bytes()), dtype=dtype)
    if flat.numel() != math.prod(shape):
        raise ValueError(f"{path} holds {flat.numel()} values, expected shape {shape}")
    return flat.reshape(shape).clone()


def make_batch(
    architecture: str, batch_size: int, exchange_dir: pathlib.Path | None
) -> dict[str, torch.Tensor]:
    """The JAX driver's batch when `exchange_dir` is given, else a seeded random one (NCHW)."""
    spec = ARCHITECTURES[architecture]
    half = batch_size // 2
    image_shape = (half, *spec["input_shape"])
    if exchange_dir is not None:
        source = read_array(exchange_dir / "source_image.f32", torch.float32, image_shape)
        target = read_array(exchange_dir / "target_image.f32", torch.float32, image_shape)
        labels = read_array(exchange_dir / "source_label.i32", torch.int32, (half,)).long()
    else:
        generator = torch.Generator().manual_seed(0)
        source = torch.randn(image_shape, generator=generator)
        target = torch.randn(image_shape, generator=generator) + 0.3
        labels = torch.randint(0, spec["num_classes"], (half,), generator=generator)
    return {
        "source_image": source.permute(0, 3, 1, 2).contiguous(),
        "target_image": target.permute(0, 3, 1, 2).contiguous(),
        "source_label": labels,
        "source_domain": torch.zeros(half, dtype=torch.long),
        "target_domain": torch.ones(half, dtype=torch.long),
    }


def load_flax_parameters(model: DANN, path: pathlib.Path) -> None:
    """Loads Flax kernels/biases written in `named_parameters` order, in Flax layout.

    Flax stores conv kernels as (H, W, in, out) and dense kernels as (in, out); PyTorch as
    (out, in, H, W) and (out, in).
    """
    flat = read_array(path, torch.float32, (path.stat().st_size // 4,))
    offset = 0
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 4:
                out, inp, height, width = parameter.shape
                shape, order = (height, width, inp, out), (3, 2, 0, 1)
            elif parameter.ndim == 2:
                shape, order = tuple(reversed(parameter.shape)), (1, 0)
            else:
                shape, order = tuple(parameter.shape), (0,)
            count = math.prod(shape)
            if offset + count > flat.numel():
                raise ValueError(f"{path} is too short for {name} {tuple(parameter.shape)}")
            parameter.copy_(flat[offset : offset + count].reshape(shape).permute(order))
            offset += count
    if offset != flat.numel():
        raise ValueError(f"{path} holds {flat.numel() - offset} values more than the model")


def equivalence_check(
    architecture: str, batch: dict[str, torch.Tensor], exchange_dir: pathlib.Path
) -> dict:
    """Loss and gradients at the Flax parameters, lambda = 1, no dropout, on CPU."""
    model = DANN(architecture)
    load_flax_parameters(model, exchange_dir / "params.f32")
    model.eval()
    loss, _ = dann_loss(model, batch, 1.0)
    loss.backward()
    grads = [parameter.grad.double() for _, parameter in model.named_parameters()]
    return {
        "loss": loss.item(),
        "grad_sums": [g.sum().item() for g in grads],
        "grad_norms": [g.norm().item() for g in grads],
    }


def time_steps(
    architecture: str,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    *,
    hparams: dict,
    steps: int,
    repeats: int,
    warmup: int,
) -> dict:
    """Median steps/s over `repeats` runs of `steps` training steps, after `warmup` steps."""
    torch.manual_seed(0)
    model = DANN(architecture).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=hparams["mu0"], momentum=hparams["momentum"])
    batch = {key: value.to(device) for key, value in batch.items()}
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    load = os.getloadavg()[0]
    step = 0
    for _ in range(warmup):
        train_step(model, optimizer, batch, step, hparams)
        step += 1
    synchronize()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            metrics = train_step(model, optimizer, batch, step, hparams)
            step += 1
        synchronize()
        rates.append(steps / (time.perf_counter() - start))
    if not math.isfinite(metrics["loss"].item()):
        raise FloatingPointError(f"the PyTorch loss diverged on {device}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "side": "pytorch",
        "device": str(device),
        "device_name": name,
        "devices": 1,
        "steps_per_s": statistics.median(rates),
        "rates": rates,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "load_1min": load,
    }


def parameter_count(architecture: str) -> int:
    return sum(parameter.numel() for parameter in DANN(architecture).parameters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="mnist")
    parser.add_argument("--batch-size", type=int, default=128, help="source + target, even")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0: keep")
    parser.add_argument("--hparams", type=json.loads, default={}, help="JSON, over HPARAMS")
    parser.add_argument("--exchange-dir", type=pathlib.Path, default=None)
    parser.add_argument("--count-params", action="store_true", help="print the count and stop")
    args = parser.parse_args()
    if args.count_params:
        print(json.dumps({"arch": args.arch, "param_count": parameter_count(args.arch)}))
        return 0
    if args.batch_size < 2 or args.batch_size % 2:
        parser.error(f"--batch-size={args.batch_size} must be even and >= 2")
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--steps and --repeats must be >= 1, --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    batch = make_batch(args.arch, args.batch_size, args.exchange_dir)
    hparams = {**HPARAMS, **args.hparams}
    report = {
        "hparams": hparams,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "param_count": parameter_count(args.arch),
        "cuda_available": torch.cuda.is_available(),
    }
    if args.exchange_dir is not None:
        report["check"] = equivalence_check(args.arch, batch, args.exchange_dir)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    report["results"] = [
        time_steps(
            args.arch,
            batch,
            device,
            hparams=hparams,
            steps=args.steps,
            repeats=args.repeats,
            warmup=args.warmup,
        )
        for device in devices
    ]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
