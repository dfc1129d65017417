"""SPIRAL training speed on one host: JaxPaint actors inside the step versus LibMyPaint actors.

What is measured, for the policy and critic of a preset (default `digits`: 32x32 canvas, 10-step
episodes, batch 32):

- JaxPaint: `train.update`, one jitted program per step: B episodes painted with `lax.scan`
  (policy + renderer), the A2C policy step (eq. 6.3.3), a replay insert and `critic_steps`
  WGAN-GP critic steps (eq. 6.3.1).
- LibMyPaint: `actors.host_rollout` over a `BatchedEnv` of B LibMyPaint canvases (in this
  process, or `--num-actors` worker processes), the policy jitted per step on the host, then
  `train.update` on the painted episodes: the same learners on the host-painted episodes.

Reported: agent steps per second (policy updates; each covers B episodes), episodes per second
and critic steps per second, the median over `--repeats` timed runs of `--steps` steps after the
first (compiling) step, and the ratio JaxPaint / LibMyPaint. JAX uses the default device (the GPU
when there is one); libmypaint always runs on the CPU.

`--profile` also times the three parts of the JaxPaint step on their own (each jitted): the
rollout (policy and renderer, `lax.scan` over the episode), the policy learner's step (unroll,
teacher-forced decoder, A2C gradient) and the critic learner's step (WGAN-GP with its gradient
penalty). `--trace` lists the costliest XLA operations of the whole step (jax.profiler: CPU
time summed over threads), each with the layer and primitive it came from.
`--batch-sizes=64,256,1024` adds JaxPaint rows at those batch sizes (episodes/s as the batch
grows: the GPU measurement of the SPIRAL speed issue).

    make bench
    .venv/bin/python benchmarks/spiral_train.py --preset=digits --steps=5 --repeats=3
    .venv/bin/python benchmarks/spiral_train.py --preset=digits --profile --trace
    .venv/bin/python benchmarks/spiral_train.py --preset=mnist_cond --profile \
        --batch-sizes=64,256,1024
"""

from __future__ import annotations

import os

from experiments import startup

os.environ.setdefault("OMP_NUM_THREADS", "1")  # libmypaint's OpenMP pool, one tile per canvas

import argparse
import pathlib
import re
import resource
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from peers import malloc_setting, write_json

from thesis_jax import core
from thesis_jax.spiral import actors, experiment, renderers, train
from thesis_jax.spiral.envs.batched import BatchedEnv

PRESETS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs" / "spiral.py"


def _targets(config, count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    channels = 1 if config.grayscale else 3
    size = config.canvas_size
    return rng.uniform(0.0, 1.0, (count, size, size, channels)).astype(np.float32)


def _timed(step, state, steps: int, repeats: int) -> tuple[list[float], object]:
    state = step(state)  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state = step(state)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - start)
    return times, state


def add_rates(row: dict, steps: int, config) -> None:
    """Agent steps/s (median over the timed runs of `steps` steps), episodes/s, critic steps/s."""
    row["agent_steps_per_second"] = statistics.median(steps / t for t in row["times"])
    row["episodes_per_second"] = row["agent_steps_per_second"] * config.batch_size
    row["critic_steps_per_second"] = row["agent_steps_per_second"] * config.critic_steps


def bench_jax_paint(config, steps: int, repeats: int) -> dict:
    state = experiment.init_state(config)
    update = jax.jit(train.update)
    batch = {"target": _targets(config, config.batch_size)}
    times, _ = _timed(lambda s: update(s, batch)[0], state, steps, repeats)
    return {"name": "JaxPaint (in the step)", "times": times}


def profile_parts(config, steps: int, repeats: int) -> list[dict]:
    """Median seconds per call of the rollout, the policy step and the critic step, each jitted
    on its own, on the episodes one rollout painted; with each call's minor page faults and the
    kernel (system) CPU seconds they cost, over the timed calls (`resource.getrusage`): XLA:CPU
    takes its large temporaries fresh from the operating system at every call, and touching
    them for the first time is work the XLA profiler does not see."""
    state = experiment.init_state(config)
    targets = jax.numpy.asarray(_targets(config, config.batch_size))
    rollout = jax.jit(train.rollout, static_argnames=("apply_fn", "hparams"))

    def paint(rng):
        return rollout(
            state.policy.params,
            targets,
            rng,
            apply_fn=state.policy.apply_fn,
            hparams=state.hparams,
        )

    episodes = train.trajectory_batch(paint(jax.random.PRNGKey(0)), targets, xp=jax.numpy)
    policy_step = jax.jit(train.policy_update)
    critic_step = jax.jit(train.critic_update)
    critic_data = train.critic_batch(
        {"canvas": episodes["final_canvas"], "target": targets}, targets, config.conditional
    )
    parts = {
        "rollout (policy + JaxPaint)": lambda: paint(jax.random.PRNGKey(1)),
        "policy step (A2C)": lambda: policy_step(state, episodes),
        "critic step (WGAN-GP)": lambda: critic_step(state, critic_data, jax.random.PRNGKey(2)),
    }
    rows = []
    for name, call in parts.items():
        jax.block_until_ready(call())  # compile outside the counted calls
        before = resource.getrusage(resource.RUSAGE_SELF)
        times, _ = _timed(lambda _, call=call: call(), None, steps, repeats)
        after = resource.getrusage(resource.RUSAGE_SELF)
        calls = steps * repeats + 1  # _timed's first, untimed call included
        rows.append(
            {
                "name": name,
                "seconds": statistics.median(times) / steps,
                "page_faults": (after.ru_minflt - before.ru_minflt) / calls,
                "system_seconds": (after.ru_stime - before.ru_stime) / calls,
            }
        )
    return rows


_OP_NAME = re.compile(r'op_name="([^"]+)"')


def _layers_of_ops(hlo_text: str) -> dict[str, str]:
    """{HLO instruction: "layer primitive[ (backward)]"} from a compiled program's text: a fusion
    is named after the first instruction of its computation that records where it came from."""
    origin, computation, calls, operands, inserted = {}, None, {}, {}, set()
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%(\S+) ", line)
        if header:
            computation = header.group(1)
            continue
        assigned = re.match(r"^\s+(?:ROOT )?%(\S+) = ", line)
        if not assigned:
            continue
        name, op_name = assigned.group(1), _OP_NAME.search(line)
        if op_name:
            origin.setdefault(name, op_name.group(1))
            origin.setdefault(computation, op_name.group(1))
        called = re.search(r"calls=%(\S+?)[,}\s]", line)
        if called:
            calls[name] = called.group(1)
        arguments = re.search(r" = [^(]*\(([^)]*)\)", line)
        if arguments:
            operands[name] = re.findall(r"%([\w.\-]+)", arguments.group(1))
    for name, computation in calls.items():
        if name not in origin and computation in origin:
            origin[name] = origin[computation]
    # Operations XLA added (layout copies, some gradient kernels) record no source; each is
    # named after the nearest operand that does: the kernel gradient of a convolution, for
    # instance, first copies the layer's input batch-minor ("transpose_copy_fusion").
    for name in [name for name in operands if name not in origin]:
        seen, frontier = {name}, list(operands[name])
        while frontier and name not in origin:
            operand = frontier.pop(0)
            if operand in origin:
                inserted.add(name)
                origin[name] = origin[operand]
            elif operand not in seen:
                seen.add(operand)
                frontier.extend(operands.get(operand, ()))

    def readable(op_name: str) -> str:
        """ "jit(update)/transpose(jvp(Critic))/conv_2/conv_general_dilated" -> "Critic/conv_2
        conv_general_dilated (backward)"; a scan's body (the rollout, the LSTM) is "scan"."""
        path = []
        for part in op_name.split("/")[1:]:
            while (inner := re.fullmatch(r"[\w.]+\((.*)\)", part)) is not None:
                part = inner.group(1)  # jvp(...), transpose(...): the function inside
            if part == "while":
                part = "scan"
            if part and part not in ("body", "eval_jaxpr") and part not in path[-1:]:
                path.append(part)
        backward = " (backward)" if "transpose(" in op_name else ""
        *layer, primitive = path or ["?"]
        return f"{'/'.join(layer) or '-'} {primitive}{backward}"

    return {
        name: ("(XLA's, no source) reads " if name in inserted else "") + readable(op_name)
        for name, op_name in origin.items()
    }


def trace_ops(config, steps: int, top: int = 12) -> list[dict]:
    """CPU time per XLA operation of `train.update` over `steps` steps (jax.profiler), the `top`
    most costly with the layer and primitive each came from."""
    import collections
    import glob
    import tempfile

    from jax.profiler import ProfileData

    state = experiment.init_state(config)
    update = jax.jit(train.update)
    batch = {"target": _targets(config, config.batch_size)}
    layers = _layers_of_ops(update.lower(state, batch).compile().as_text())
    for _ in range(2):  # compile, warm up
        state = update(state, batch)[0]
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            for _ in range(steps):
                state = update(state, batch)[0]
            jax.block_until_ready(state)
        (path,) = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
        profile = ProfileData.from_file(path)
    nanoseconds = collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            for event in line.events:
                # XLA's ops; not the executor's own spans, nor loops that hold other ops
                if event.name in layers and not event.name.startswith(("while", "call")):
                    nanoseconds[event.name] += event.duration_ns
    total = sum(nanoseconds.values())
    return [
        {
            "op": name,
            "layer": layers[name],
            "ms_per_step": ns / 1e6 / steps,
            "share": ns / total,
        }
        for name, ns in nanoseconds.most_common(top)
    ]


def bench_libmypaint(config, steps: int, repeats: int, num_actors: int) -> dict:
    config = config.copy_and_resolve_references()
    config.renderer = "libmypaint"
    state = experiment.init_state(config)
    update = jax.jit(train.update)
    targets = _targets(config, config.batch_size)
    factory = renderers.make_env_factory(config)
    with BatchedEnv(factory, config.batch_size, num_actors) as env:

        def step(state):
            trajectory = actors.host_rollout(state, env, targets, jax.random.PRNGKey(0))
            return update(state, train.trajectory_batch(trajectory, targets))[0]

        times, _ = _timed(step, state, steps, repeats)
    workers = f"{num_actors} workers" if num_actors else "in process"
    return {"name": f"LibMyPaint ({workers})", "times": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-actors", type=int, default=0)
    parser.add_argument("--override", action="append", default=[], help="config field=value")
    parser.add_argument("--json-out", default="")
    parser.add_argument("--profile", action="store_true", help="time the step's three parts")
    parser.add_argument("--batch-sizes", default="", help="comma-separated extra JaxPaint batches")
    parser.add_argument("--trace", action="store_true", help="CPU time per XLA op of the step")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.override)
    config = core.get_config(args.preset, str(PRESETS), overrides)

    load = os.getloadavg()[0]
    rows = [
        bench_jax_paint(config, args.steps, args.repeats),
        bench_libmypaint(config, args.steps, args.repeats, args.num_actors),
    ]
    device = jax.devices()[0]
    print(
        f"SPIRAL training, preset {args.preset}: batch {config.batch_size}, "
        f"{config.canvas_size}x{config.canvas_size} canvas, {config.episode_length}-step episodes; "
        f"JAX on {device.platform} ({device.device_kind}); malloc: {malloc_setting()}; "
        f"load average {load:.2f}"
    )
    print(f"{'actors':<28}{'agent steps/s':>14}{'episodes/s':>12}{'critic steps/s':>16}")
    for row in rows:
        add_rates(row, args.steps, config)
        print(
            f"{row['name']:<28}{row['agent_steps_per_second']:>14.3f}"
            f"{row['episodes_per_second']:>12.1f}{row['critic_steps_per_second']:>16.3f}"
        )
    ratio = rows[0]["agent_steps_per_second"] / rows[1]["agent_steps_per_second"]
    print(f"JaxPaint / LibMyPaint: {ratio:.2f}x")
    batches = []
    for size in (int(b) for b in args.batch_sizes.split(",") if b):
        sized = config.copy_and_resolve_references()
        sized.batch_size = size
        row = bench_jax_paint(sized, args.steps, args.repeats)
        add_rates(row, args.steps, sized)
        row["batch_size"] = size
        batches.append(row)
        print(f"JaxPaint, batch {size:>5}: {row['episodes_per_second']:>10.1f} episodes/s")
    parts = profile_parts(config, args.steps, args.repeats) if args.profile else []
    if parts:
        total = sum(part["seconds"] for part in parts)
        print(f"where a JaxPaint step's time goes (batch {config.batch_size}, parts jitted apart):")
        print(f"  {'':<30}{'':>12}{'':>8}{'page faults':>14}{'system CPU':>12}")
        for part in parts:
            share = part["seconds"] / total
            print(
                f"  {part['name']:<30}{part['seconds'] * 1e3:>9.1f} ms{share:>8.0%}"
                f"{part['page_faults']:>14,.0f}{part['system_seconds'] * 1e3:>9.1f} ms"
            )
    ops = trace_ops(config, args.steps) if args.trace else []
    if ops:
        print("the costliest XLA ops of a JaxPaint step (CPU time of every thread, per step):")
        for op in ops:
            print(
                f"  {op['ms_per_step']:>8.1f} ms {op['share']:>5.0%}  {op['layer']}  [{op['op']}]"
            )
    payload = {
        "preset": args.preset,
        "load_average": load,
        "malloc": malloc_setting(),
        "rows": rows,
        "ratio": ratio,
    }
    write_json(args.json_out, {**payload, "batch_sizes": batches, "profile": parts, "ops": ops})
    return 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    sys.exit(main())
