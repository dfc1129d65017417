"""Speed of SPIRAL's renderers (thesis sec. 6.4.2): strokes or renders per second.

What is measured, each on random valid actions drawn once from the environment's action spec
with a fixed seed (so every renderer paints the same strokes):

- LibMyPaint: one environment on one core (`OMP_NUM_THREADS=1`, set before libmypaint loads),
  `step` with flag = paint, i.e. a quadratic Bezier stroke (eq. 6.4.1) through
  `mypaint_brush_stroke_to` plus the canvas readback of the observation; `reset` every 20 steps
  (the episode length) is timed too. This is the reference the others are divided by.
- MujocoScenes: one environment, `step` with mode = add or modify (skip does not render), i.e.
  edit the geom slots in place and render 64x64 RGB offscreen (osmesa on CPU, egl on a GPU).
- JaxPaint: whole 20-step episodes as one `jax.jit` of a `lax.scan` over `render_step`, at batch
  sizes 1, 64 and 1024 on the default JAX device (the GPU when there is one); strokes per
  second = batch * 20 / time. The first call (compilation) is untimed, then the median of
  `--repeats` timed calls, each up to `jax.block_until_ready`. On a CPU, "JaxPaint" renders
  strokes with its compiled stroke kernel (`spiral.envs.stroke_kernel`) when it could be built,
  and the "JaxPaint XLA" rows (`--no-xla-only-too` drops them) without it: the dense XLA
  version every device runs, i.e. before and after the kernel in one run.

Every figure is the median over `--repeats` timed repeats; the table prints the range too and
the ratio to LibMyPaint. The 1-min load average is shown: other work on the same CPUs makes the
numbers noisy.

    make bench
    .venv/bin/python benchmarks/spiral_envs.py --repeats=3 --json-out=/tmp/spiral_envs.json
"""

from __future__ import annotations

import os

from experiments import startup

os.environ.setdefault("OMP_NUM_THREADS", "1")  # libmypaint parallelises tile work with OpenMP

import argparse
import contextlib
import json
import pathlib
import statistics
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

EPISODE_LENGTH = 20


def random_actions(
    action_spec: Mapping[str, int], count: int, seed: int, fixed: Mapping[str, int] | None = None
) -> np.ndarray:
    """int32 [count, num_components] of valid actions in spec order; `fixed` pins components."""
    rng = np.random.default_rng(seed)
    columns = [rng.integers(0, size, count) for size in action_spec.values()]
    actions = np.stack(columns, -1).astype(np.int32)
    for name, value in (fixed or {}).items():
        actions[:, list(action_spec).index(name)] = value
    return actions


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _stepping(env, actions: np.ndarray) -> Callable[[], None]:
    """Steps `env` through `actions`, resetting every episode."""
    names = list(env.action_spec())

    def run() -> None:
        for i, row in enumerate(actions):
            if i % EPISODE_LENGTH == 0:
                env.reset()
            env.step(dict(zip(names, row.tolist(), strict=True)))

    return run


def bench_libmypaint(strokes: int, repeats: int, seed: int) -> dict:
    from thesis_jax.spiral.envs.libmypaint import LibMyPaint

    with LibMyPaint() as env:
        actions = random_actions(env.action_spec(), strokes, seed, {"flag": 1})
        run = _stepping(env, actions)
        run()  # warm-up: brush loading, page faults
        times = _time(run, repeats)
    return {
        "name": "LibMyPaint (1 core)",
        "device": "cpu",
        "batch": 1,
        "units": strokes,
        "times": times,
    }


def bench_mujoco(renders: int, repeats: int, seed: int) -> dict:
    from thesis_jax.spiral.envs import mujoco_scenes

    with mujoco_scenes.MujocoScenes() as env:
        actions = random_actions(env.action_spec(), renders, seed)
        mode = list(env.action_spec()).index("mode")
        actions[:, mode] = np.random.default_rng(seed + 1).integers(0, 2, renders)  # add / modify
        run = _stepping(env, actions)
        run()
        times = _time(run, repeats)
    backend = os.environ.get("MUJOCO_GL", "?")
    return {
        "name": f"MujocoScenes ({backend})",
        "device": "cpu",
        "batch": 1,
        "units": renders,
        "times": times,
        "unit_name": "renders",
    }


def bench_jax_paint(batch: int, repeats: int, seed: int, xla_only: bool = False) -> dict:
    """JaxPaint episodes in one jit; on a CPU with its compiled stroke kernel unless `xla_only`."""
    import jax
    import jax.numpy as jnp

    from thesis_jax.core import native
    from thesis_jax.spiral.envs import jax_paint, spec, stroke_kernel

    config = spec.PaintConfig()
    action_spec = spec.paint_action_spec(config)
    actions = random_actions(action_spec, EPISODE_LENGTH * batch, seed, {"flag": 1})
    actions = jnp.asarray(actions.reshape(EPISODE_LENGTH, batch, -1))

    @jax.jit
    def episode(actions: jax.Array) -> jax.Array:
        def body(state, action):
            return jax_paint.render_step(config, state, action), None

        state, _ = jax.lax.scan(body, jax_paint.init_state(config, batch), actions)
        return state.canvas

    with native.disabled() if xla_only else contextlib.nullcontext():
        jax.block_until_ready(episode(actions))  # traced here: with or without the kernel
    times = _time(lambda: jax.block_until_ready(episode(actions)), repeats)
    device = jax.devices()[0]
    kernel = not xla_only and stroke_kernel.usable()
    return {
        "name": f"JaxPaint {'XLA ' if xla_only else ''}batch {batch}",
        "stroke_kernel": kernel,
        "device": device.platform,
        "batch": batch,
        "units": EPISODE_LENGTH * batch,
        "times": times,
        "device_kind": device.device_kind,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strokes", type=int, default=400, help="LibMyPaint strokes per repeat")
    parser.add_argument("--renders", type=int, default=400, help="MuJoCo renders per repeat")
    parser.add_argument("--batch-sizes", default="1,64,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma list of: libmypaint, mujoco, jax_paint")
    parser.add_argument("--json-out", default="")
    parser.add_argument(
        "--xla-only-too",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time JaxPaint without its compiled CPU stroke kernel (rows 'JaxPaint XLA')",
    )
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}

    load = os.getloadavg()[0]
    rows, failures = [], []
    benches: list[tuple[str, Callable[[], dict]]] = [
        ("libmypaint", lambda: bench_libmypaint(args.strokes, args.repeats, args.seed)),
        ("mujoco", lambda: bench_mujoco(args.renders, args.repeats, args.seed)),
    ]
    for batch in (int(b) for b in args.batch_sizes.split(",") if b):
        benches.append(("jax_paint", lambda b=batch: bench_jax_paint(b, args.repeats, args.seed)))
        if args.xla_only_too:
            benches.append(
                ("jax_paint", lambda b=batch: bench_jax_paint(b, args.repeats, args.seed, True))
            )
    for key, bench in benches:
        if key in skip:
            continue
        try:
            rows.append(bench())
        except Exception as error:  # a missing renderer must not hide the others' numbers
            failures.append(f"{key}: {type(error).__name__}: {error}")

    reference = next((r for r in rows if r["name"].startswith("LibMyPaint")), None)
    print(f"SPIRAL renderers, 64x64 canvases, {args.repeats} repeats, load average {load:.2f}")
    print(f"{'renderer':<28}{'device':<8}{'per second (median)':>20}{'range':>22}{'ratio':>10}")
    for row in rows:
        rates = [row["units"] / t for t in row["times"]]
        row["per_second"] = statistics.median(rates)
        row["range"] = (min(rates), max(rates))
        ratio = row["per_second"] / reference["per_second"] if reference else float("nan")
        row["ratio_to_libmypaint"] = ratio
        unit = row.get("unit_name", "strokes")
        print(
            f"{row['name']:<28}{row['device']:<8}{row['per_second']:>12,.0f} {unit:<7}"
            f"{row['range'][0]:>10,.0f}-{row['range'][1]:<10,.0f}{ratio:>9.2f}x"
        )
    for failure in failures:
        print(f"not measured: {failure}")
    if args.json_out:
        payload = {"load_average": load, "rows": rows, "failures": failures}
        pathlib.Path(args.json_out).write_text(json.dumps(payload, indent=2))
    return 1 if failures and not rows else 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    sys.exit(main())
