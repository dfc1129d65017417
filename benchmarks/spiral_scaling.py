"""SPIRAL on Ray: agent steps per second with 1, 2, 4 ... actors, and the single-host trainer.

What is measured, for a preset (default `digits`: 32x32 canvas, 10-step episodes, batch 32):

- Ray (`thesis_jax.spiral.distributed`): for each actor count, one run of the real system on a
  local Ray instance (or `--ray-address`): CPU actors paint `episodes_per_actor` episodes at a
  time with JaxPaint and push them into the hub's bounded queue, the policy learner steps on
  `batch_size` episodes, the critic learner steps `critic_steps` times per policy step on
  replayed canvases. After `--warmup` policy steps (compiles, the queue filling), the wall time
  of the next `--steps` policy steps gives agent steps per second (policy updates; each covers
  `batch_size` episodes). Also reported, over the timed steps: the episodes per second the actors
  painted, the mean off-policy lag (policy versions between painting and learning), and how full
  the trajectory queue was (full: the learners are the bottleneck; empty: the actors are).
- Single host: `train.update`, one jitted program per step (B episodes painted with `lax.scan`
  inside the step, the A2C step, the critic steps), on the default device: what
  `python -m experiments.spiral --config=digits` runs without `--config.distributed`.

Every row is a median over `--repeats` timed windows of the same run (Ray) or over repeats
(single host). Actors and learners share this machine's cores: on a laptop more actors only help
while the learners are not already saturating it; on a cluster (`--ray-address=auto`) the actors
spread over the nodes' CPUs and the learners take a GPU each when there is one.

    make bench
    .venv/bin/python benchmarks/spiral_scaling.py --actors=1,2,4 --warmup=20 --steps=40
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time

import jax

from experiments import startup

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from peers import write_json
from spiral_train import PRESETS, add_rates, bench_jax_paint  # the single-host row, rates

from thesis_jax import core
from thesis_jax.core.loop import Periodic
from thesis_jax.spiral import distributed, experiment


def bench_ray(config, train_images, num_actors: int, args) -> dict:
    """One distributed run: `warmup` steps, then `repeats` timed windows of `steps` steps."""
    chunk = args.chunk
    timed_until = args.warmup + args.repeats * args.steps
    # One chunk past the last timed step: the final checkpoint is not inside a timed window.
    num_steps = timed_until + chunk
    marks = [args.warmup + i * args.steps for i in range(args.repeats + 1)]
    clock: dict[int, float] = {}

    def record(step, state):
        del state
        if step in marks:
            clock[step] = time.perf_counter()

    settings = distributed.Settings(
        num_actors=num_actors,
        queue_batches=config.queue_batches,
        learner_gpus=-1,
        chunk_steps=chunk,
        ray_address=args.ray_address or None,
    )
    program = experiment.make_program(config, train_images)
    with tempfile.TemporaryDirectory(prefix="spiral_scaling_") as workdir:
        distributed.train(
            program,
            settings,
            num_steps=num_steps,
            workdir=workdir,
            log_every=chunk,
            checkpoint_every=num_steps,
            periodic=[Periodic(math.gcd(args.warmup, args.steps), record, at_end=False)],
            desc=f"{num_actors} actor(s)",
        )
        records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    missing = [m for m in marks if m not in clock]
    if missing:
        raise RuntimeError(
            f"no timing at steps {missing}: --warmup and --steps must be multiples of --chunk"
        )
    times = [clock[b] - clock[a] for a, b in itertools.pairwise(marks)]
    window = [r for r in records if args.warmup < r["step"] <= timed_until]
    mean = lambda key: statistics.fmean(r[key] for r in window if key in r)
    return {
        "name": f"Ray, {num_actors} actor{'s' if num_actors > 1 else ''}",
        "actors": num_actors,
        "times": times,
        "actor_episodes_per_second": mean("actors/episodes_per_second"),
        "lag_mean": mean("policy/lag_mean"),
        # Queued episodes in policy batches, of `queue_batches`: full means the learner is the
        # bottleneck (actors wait), empty means the actors are.
        "queue_batches": mean("queue/size") * config.episodes_per_actor / config.batch_size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--actors", default="1,2,4", help="comma-separated actor counts")
    parser.add_argument("--warmup", type=int, default=20, help="policy steps before timing")
    parser.add_argument("--steps", type=int, default=40, help="policy steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per run")
    parser.add_argument("--chunk", type=int, default=10, help="policy steps per driver call")
    parser.add_argument("--episodes-per-actor", type=int, default=0, help="0: the preset's")
    parser.add_argument("--ray-address", default="", help="empty: a local Ray instance")
    parser.add_argument("--override", action="append", default=[], help="config field=value")
    parser.add_argument("--json-out", default="")
    args = parser.parse_args(argv)
    for name in ("warmup", "steps"):
        if getattr(args, name) % args.chunk:
            parser.error(
                f"--{name}={getattr(args, name)} must be a multiple of --chunk={args.chunk}"
            )
    actor_counts = [int(a) for a in args.actors.split(",") if a]
    if not actor_counts or min(actor_counts) < 1:
        parser.error(f"--actors={args.actors!r}: give positive counts, e.g. 1,2,4")
    overrides = dict(item.split("=", 1) for item in args.override)
    if args.episodes_per_actor:
        overrides["episodes_per_actor"] = args.episodes_per_actor
    config = core.get_config(args.preset, str(PRESETS), overrides)
    if config.renderer != "jax_paint":
        parser.error("the scaling benchmark runs JaxPaint actors (renderer=jax_paint)")
    train_images, _ = experiment.load_targets(config)

    load = os.getloadavg()[0]
    distributed.init_ray(args.ray_address or None, max(os.cpu_count() or 1, max(actor_counts) + 2))
    rows = [bench_ray(config, train_images, n, args) for n in actor_counts]
    single = bench_jax_paint(config, args.steps, args.repeats)
    single["name"] = "single host (JaxPaint in the step)"
    rows.append(single)

    device = jax.devices()[0]
    print(
        f"\nSPIRAL scaling, preset {args.preset}: batch {config.batch_size} episodes per agent "
        f"step, {config.canvas_size}x{config.canvas_size} canvas, {config.episode_length}-step "
        f"episodes, {config.critic_steps} critic step(s) per agent step, "
        f"{config.episodes_per_actor} episodes per actor push; {os.cpu_count()} CPUs, driver JAX "
        f"on {device.platform} ({device.device_kind}); load average {load:.2f} at the start"
    )
    print(f"{'':<36}{'agent steps/s':>14}{'episodes/s':>12}{'painted/s':>11}{'lag':>6}{'queue':>8}")
    for row in rows:
        add_rates(row, args.steps, config)
        painted = row.get("actor_episodes_per_second")
        lag = row.get("lag_mean")
        print(
            f"{row['name']:<36}{row['agent_steps_per_second']:>14.3f}"
            f"{row['episodes_per_second']:>12.1f}"
            + (
                f"{painted:>11.1f}{lag:>6.1f}{row['queue_batches']:>5.1f}/{config.queue_batches:<2}"
                if painted is not None
                else f"{'-':>11}{'-':>6}{'-':>8}"
            )
        )
    base = rows[0]["agent_steps_per_second"]
    for row in rows[1:-1]:
        print(f"{row['name']} / {rows[0]['name']}: {row['agent_steps_per_second'] / base:.2f}x")
    print(
        "agent step: one policy update on batch_size episodes; painted/s: episodes the actors "
        "painted; lag: policy versions between painting and learning; queue: mean queued policy "
        "batches of the capacity (full: the learners are the bottleneck; empty: the actors)"
    )
    best = max(rows[:-1], key=lambda r: r["agent_steps_per_second"])
    ratio = best["agent_steps_per_second"] / single["agent_steps_per_second"]
    print(f"best Ray ({best['name']}) / single host: {ratio:.2f}x")
    payload = {"preset": args.preset, "batch_size": config.batch_size, "cpus": os.cpu_count()}
    write_json(args.json_out, {**payload, "load_average": load, "rows": rows})
    return 0


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    sys.exit(main())
