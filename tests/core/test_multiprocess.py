"""Two JAX processes on one machine (CPU, loopback coordinator) train DANN as one.

Each test process starts `python tests/core/test_multiprocess.py worker ...` subprocesses. A
worker is configured only through the environment variables a real launch would set
(`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), so
`parallel.initialize_distributed()` is what connects them. Both workers build `data_mesh()`
over the 4 global devices (2 simulated CPU devices each), feed their `process_slice` of the same
global batches to the jitted DANN `update`, and write the resulting parameters. The test checks
the two processes agree with each other and with one process holding all 4 devices.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Seconds for a group of subprocesses: a hang fails the test instead of blocking CI. About 40 s
# are needed on 2 idle cores; the margin is for loaded CI machines.
TIMEOUT = 240
GLOBAL_BATCH = 16  # 8 source + 8 target images: 2 per device on 4 devices
STEPS = 3


def _env(local_devices: int, **extra: str) -> dict[str, str]:
    """A clean CPU environment: no launcher variables leak in from the outer shell."""
    launcher = (
        "JAX_COORDINATOR",
        "JAX_NUM_PROCESSES",
        "JAX_PROCESS_ID",
        "JAX_LOCAL_DEVICE_IDS",
        "SLURM_",
        "OMPI_",
        "THESIS_JAX_DISTRIBUTED",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(launcher)}
    env.pop("TPU_WORKER_HOSTNAMES", None)
    env.pop("MEGASCALE_COORDINATOR_ADDRESS", None)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    flags.append(f"--xla_force_host_platform_device_count={local_devices}")
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=" ".join(flags),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        TF_CPP_MIN_LOG_LEVEL="3",
        **extra,
    )
    return env


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "w")  # closed with the process in _wait
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float) -> None:
    """Waits for all; on a timeout or a failure kills the rest and fails with their logs."""
    try:
        for proc in procs:
            proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        hung = [p for p in procs if p.poll() is None]
        for proc in hung:
            proc.kill()
            proc.wait()
        for proc in procs:
            proc.stdout and proc.stdout.close()
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    if hung:
        pytest.fail(f"{len(hung)} process(es) still running after {timeout} s\n{tails}")
    codes = [p.returncode for p in procs]
    assert codes == [0] * len(procs), f"exit codes {codes}\n{tails}"


def _worker_cmd(out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "worker", str(out)]


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return dict(data)


@pytest.mark.e2e
def test_two_processes_agree_with_each_other_and_with_one_process(tmp_path, free_port):
    port = free_port()
    coordinator = f"127.0.0.1:{port}"
    cmds, envs, logs = [], [], []
    for i in range(2):
        cmds.append(_worker_cmd(tmp_path / f"process{i}.npz"))
        envs.append(
            _env(
                2,
                JAX_COORDINATOR_ADDRESS=coordinator,
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            )
        )
        logs.append(tmp_path / f"process{i}.log")
    cmds.append(_worker_cmd(tmp_path / "single.npz"))
    envs.append(_env(4))
    logs.append(tmp_path / "single.log")
    procs = [_start(c, e, log) for c, e, log in zip(cmds, envs, logs, strict=True)]
    _wait(procs, logs, TIMEOUT)

    first, second, single = (
        _load(tmp_path / name) for name in ("process0.npz", "process1.npz", "single.npz")
    )
    assert int(first["process_count"]) == 2 and int(first["device_count"]) == 4
    assert int(second["process_index"]) == 1 and int(single["process_count"]) == 1
    assert int(single["device_count"]) == 4
    params = sorted(k for k in first if k.startswith("params/"))
    assert len(params) >= 6, params
    for key in [*params, "losses"]:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        np.testing.assert_allclose(first[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # Not a no-op: the parameters moved away from the initial ones, and the loss is finite.
    moved = max(float(np.abs(first[k] - first["init/" + k[7:]]).max()) for k in params)
    assert moved > 1e-4
    assert np.isfinite(first["losses"]).all()


DANN_TINY = [
    "--config.num_steps=8",
    "--config.log_every=4",
    "--config.eval_every=4",
    "--config.checkpoint_every=4",
    "--config.methods=('dann',)",
    "--config.svm_retrain=False",
    "--config.tsne_points=40",
    "--config.eval_batch_size=64",
]


def _records(workdir: Path) -> dict[tuple[int, str], float]:
    import json

    records = {}
    for line in (workdir / "dann" / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key != "step" and not key.endswith("steps_per_sec"):
                records[row["step"], key] = value
    return records


@pytest.mark.slow
def test_dann_binary_on_two_processes_matches_one_process_and_resumes(tmp_path, free_port):
    """`python -m experiments.dann` launched as 2 processes: same metrics as 1 process."""
    binary = [sys.executable, "-m", "experiments.dann", *DANN_TINY]

    def launch(tag: str) -> list[Path]:
        coordinator = f"127.0.0.1:{free_port()}"
        procs, logs = [], []
        for i in range(2):
            env = _env(
                2,
                JAX_COORDINATOR_ADDRESS=coordinator,
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            )
            logs.append(tmp_path / f"{tag}{i}.log")
            procs.append(_start([*binary, f"--workdir={tmp_path / 'multi'}"], env, logs[-1]))
        if tag == "first":  # the single-process reference runs beside the first launch
            logs.append(tmp_path / "single.log")
            cmd = [*binary, f"--workdir={tmp_path / 'single'}"]
            procs.append(_start(cmd, _env(4), logs[-1]))
        _wait(procs, logs, 3 * TIMEOUT)
        return logs

    logs = launch("first")
    assert "process 0 of 2, 4 global devices" in logs[0].read_text()
    multi, single = _records(tmp_path / "multi"), _records(tmp_path / "single")
    assert set(multi) == set(single)
    assert {step for step, _ in multi} == {4, 8}
    for key, value in single.items():
        tolerance = 2e-3 if key[1].startswith("eval/") else 1e-4
        assert multi[key] == pytest.approx(value, rel=tolerance, abs=tolerance), key
    for name in ("results.md", "results.json", "tsne.png", "config.json"):
        assert (tmp_path / "multi" / name).is_file(), name
    assert (tmp_path / "multi" / "dann" / "checkpoints" / "8").is_dir()

    logs = launch("again")  # finished checkpoints are found by both processes: no training
    assert "resumed from" in logs[0].read_text()
    assert _records(tmp_path / "multi") == multi


# --------------------------------------------------------------------------------------------
# The worker: run as a script by the test above.


def _global_batch(step: int) -> dict[str, np.ndarray]:
    """A fixed global DANN batch for `step`, the same on every process."""
    rng = np.random.default_rng([7, step])
    half = GLOBAL_BATCH // 2
    return {
        "source_image": rng.normal(size=(half, 28, 28, 3)).astype(np.float32),
        "source_label": rng.integers(0, 10, size=half).astype(np.int32),
        "target_image": rng.normal(size=(half, 28, 28, 3)).astype(np.float32),
        "target_label": rng.integers(0, 10, size=half).astype(np.int32),
    }


def _flat(tree, prefix: str) -> dict[str, np.ndarray]:
    import jax

    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def worker(out: str) -> None:
    from thesis_jax.core import parallel

    multi = parallel.initialize_distributed()  # from JAX_COORDINATOR_ADDRESS & co.
    import jax

    from experiments.configs.dann import get_config
    from thesis_jax import dann

    assert multi == (jax.process_count() > 1)
    config = get_config("digits")
    mesh = parallel.data_mesh()
    state = dann.init(jax.random.PRNGKey(0), config, "dann")
    init_params = _flat(state.params, "init/")
    state = parallel.replicate(state, mesh)
    update = parallel.jit_update(dann.update, mesh)
    losses = []
    for step in range(STEPS):
        batch = parallel.shard_batch(parallel.process_slice(_global_batch(step)), mesh)
        state, metrics = update(state, batch)
        losses.append(float(metrics["loss"]))
    np.savez(
        out,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        device_count=jax.device_count(),
        losses=np.asarray(losses),
        **init_params,
        **_flat(state.params, "params/"),
    )
    if multi:
        jax.distributed.shutdown()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(sys.argv[2])
