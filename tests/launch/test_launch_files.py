"""The launch/ scripts parse, name real binaries, presets and fields, and set what JAX reads.

The Slurm script and the TPU pod recipe run here against stand-ins for `srun`/`scontrol` and
`gcloud` that start the "hosts" as local processes, and a stand-in interpreter that records the
environment and arguments each process got.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from thesis_jax.core import parallel, presets

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
SCRIPTS = [LAUNCH / "slurm.sbatch", LAUNCH / "tpu_pod.sh"]
DOCUMENTS = [*SCRIPTS, LAUNCH / "ray_cluster.yaml", LAUNCH / "README.md", ROOT / "BUILD.md"]
BINARIES = ("n4fields", "deepwarp", "dann", "spiral", "spiral_mcmc")
# SPIRAL's distributed fields, documented in launch/README.md while they are being added.
PENDING_SPIRAL_FIELDS = {"distributed", "ray_address", "pbt_population"}
LAUNCHER_VARS = (
    "JAX_COORDINATOR",
    "JAX_NUM_PROCESSES",
    "JAX_PROCESS_ID",
    "JAX_LOCAL_DEVICE_IDS",
    "SLURM_",
    "OMPI_",
    "TPU_WORKER_HOSTNAMES",
    "MEGASCALE_",
    "THESIS_JAX_DISTRIBUTED",
    "CUDA_VISIBLE_DEVICES",
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARS)}
    env.update(extra)
    return env


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# --- syntax -----------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_shellcheck_clean(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- commands name real binaries, presets and fields ---------------------------------------


def _text_without_comment_marks(path: Path) -> str:
    """The file (BUILD.md: its multi-host section) without `#` comment marks, continuations
    joined."""
    text = path.read_text()
    if path.name == "BUILD.md":
        text = text.split("## Multi-host launches", 1)[1].split("\n## ", 1)[0]
    lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def _default_preset(method: str) -> str:
    source = (ROOT / "experiments" / f"{method}.py").read_text()
    return re.search(r'default_preset="(\w+)"', source).group(1)


def _commands(path: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(method, preset, overrides) of every `python -m experiments.X` and `METHOD=X PRESET=Y`."""
    text = _text_without_comment_marks(path)
    found = []
    for match in re.finditer(r"python -m experiments\.(\$?\w+)([^\n\"]*)", text):
        method, rest = match.groups()
        if method.startswith("$"):
            continue  # the scripts' own `experiments.$METHOD`: checked through their defaults
        preset = re.search(r"--config=([^\s$\"]+)", rest)
        overrides = dict(re.findall(r"--config\.([\w.]+)=([^\s\"]+)", rest))
        found.append((method, preset.group(1) if preset else _default_preset(method), overrides))
    for method, preset in re.findall(r"METHOD=(\w+) PRESET=(\w+)", text):
        found.append((method, preset, {}))
    defaults = re.search(r"METHOD=\$\{METHOD:-(\w+)\}.*\n.*PRESET=\$\{PRESET:-(\w+)\}", text)
    if defaults:
        found.append((*defaults.groups(), {}))
    return found


def _check_command(method: str, preset: str, overrides: dict[str, str]) -> set[str]:
    """Resolves the preset with the overrides; returns pending SPIRAL fields it lacks."""
    assert method in BINARIES, f"experiments.{method} is not one of the binaries {BINARIES}"
    preset_file = ROOT / "experiments" / "configs" / f"{method}.py"
    defaults = presets.get_config(preset, preset_file)
    missing = {f for f in overrides if method == "spiral" and f in PENDING_SPIRAL_FIELDS}
    missing -= set(defaults)
    known = {k: v for k, v in overrides.items() if k not in missing}
    config = presets.get_config(preset, preset_file, known)
    assert config.preset == preset
    return missing


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_commands_name_real_binaries_presets_and_fields(document):
    commands = _commands(document)
    assert commands, f"no experiment command found in {document}"
    for method, preset, overrides in commands:
        _check_command(method, preset, overrides)


def test_the_distributed_spiral_command_is_documented():
    readme = _commands(LAUNCH / "README.md")
    wanted = {"distributed": "True", "num_actors": "4", "ray_address": "auto"}
    spiral = [
        (preset, overrides)
        for method, preset, overrides in readme
        if method == "spiral" and wanted.items() <= overrides.items()
    ]
    assert ("digits", wanted) in spiral
    text = (LAUNCH / "README.md").read_text()
    for field in (*PENDING_SPIRAL_FIELDS, "num_actors"):
        assert f"`{field}`" in text, field


def test_spiral_distributed_fields_once_they_exist():
    """Strict once SPIRAL's config has its distributed fields (being added alongside)."""
    defaults = presets.get_config("digits", ROOT / "experiments" / "configs" / "spiral.py")
    present = PENDING_SPIRAL_FIELDS & set(defaults)
    if not present:
        pytest.skip("experiments/configs/spiral.py has no distributed fields yet")
    assert present == PENDING_SPIRAL_FIELDS
    for path in DOCUMENTS:
        for method, preset, overrides in _commands(path):
            if method == "spiral":
                assert not _check_command(method, preset, overrides)


# --- ray_cluster.yaml ----------------------------------------------------------------------


def _ray_config() -> dict:
    return yaml.safe_load((LAUNCH / "ray_cluster.yaml").read_text())


def _ray_start_commands(config: dict) -> dict[str, list[str]]:
    starts = {}
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        (command,) = [c for c in config[key] if "ray start" in c]
        starts[key] = shlex.split(command.split("ray start", 1)[1])
    return starts


def test_ray_cluster_has_a_gpu_head_cpu_actors_and_installs_thesis_jax_with_ray():
    config = _ray_config()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    # The policy and the critic learner take one GPU each (spiral config `learner_gpus`).
    assert head["resources"].get("GPU", 0) >= 2, "both learners need a GPU on the head"
    accelerators = head["node_config"]["guestAccelerators"]
    assert sum(a["acceleratorCount"] for a in accelerators) == head["resources"]["GPU"]
    cpu_types = [t for t in types.values() if not t["resources"].get("GPU")]
    assert cpu_types and all(t["max_workers"] >= 1 for t in cpu_types)
    assert config["max_workers"] >= sum(t.get("max_workers", 0) for t in cpu_types)
    setup = " ".join(config["setup_commands"])
    assert '-e ".[ray]"' in setup and "--python 3.12" in setup
    assert "jax[cuda12]" in " ".join(config["head_setup_commands"])
    assert config["file_mounts"] == {"~/thesis_jax": "."}


def test_ray_ports_are_fixed_loopback_dashboard_and_documented():
    config = _ray_config()
    starts = _ray_start_commands(config)
    head = dict(a.split("=", 1) for a in starts["head_start_ray_commands"] if "=" in a)
    worker = dict(a.split("=", 1) for a in starts["worker_start_ray_commands"] if "=" in a)
    assert "--head" in starts["head_start_ray_commands"]
    assert head["--dashboard-host"] == "127.0.0.1"
    assert worker["--address"] == f"$RAY_HEAD_IP:{head['--port']}"
    ports = {k: v for k, v in head.items() if k.endswith("-port")}
    for flag, value in worker.items():
        if flag.endswith("-port"):
            assert ports[flag] == value, f"{flag} differs between head and workers"
    header = (LAUNCH / "ray_cluster.yaml").read_text().split("cluster_name:")[0]
    readme = (LAUNCH / "README.md").read_text()
    for flag, port in ports.items():
        if flag == "--max-worker-port":
            continue
        if flag == "--min-worker-port":
            port = f"{port}-{head['--max-worker-port']}"
        assert port in header, f"{flag}={port} is not in the file's port list"
        assert port in readme, f"{flag}={port} is not in launch/README.md"


def test_ray_cluster_file_is_valid_for_ray():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import fillout_defaults, validate_config
    from ray.scripts.scripts import start

    config = _ray_config()
    validate_config(fillout_defaults(config))  # Ray's own schema for cluster files
    for args in _ray_start_commands(config).values():
        start.make_context("start", list(args))  # every `ray start` flag exists


# --- the Slurm script, with srun and scontrol played by local processes --------------------

FAKE_SRUN = """#!/bin/bash
# srun stand-in: runs the command --ntasks times here, as Slurm would on the nodes.
n=1
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in --ntasks=*) n=${1#--ntasks=} ;; esac
    shift
done
pids=()
for ((i = 0; i < n; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=0 SLURM_NTASKS=$n SLURM_STEP_NODELIST=$SLURM_JOB_NODELIST \
        "$@" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit $rc
"""
FAKE_SCONTROL = """#!/bin/bash
# scontrol stand-in: `scontrol show hostnames LIST` for a comma-separated LIST.
tr , '\\n' <<< "$3"
"""
RECORDING_PYTHON = """#!/bin/bash
# Interpreter stand-in: records what each process got.
out="$RECORD_DIR/task$JAX_PROCESS_ID.txt"
for var in JAX_COORDINATOR_ADDRESS JAX_NUM_PROCESSES JAX_PROCESS_ID JAX_LOCAL_DEVICE_IDS \
    THESIS_JAX_DISTRIBUTED; do
    echo "$var=${!var-}"
done > "$out.tmp"
printf 'ARG=%s\\n' "$@" >> "$out.tmp"
mv "$out.tmp" "$out"
"""


def _record(path: Path) -> tuple[dict[str, str], list[str]]:
    env, args = {}, []
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ARG":
            args.append(value)
        else:
            env[key] = value
    return env, args


def _slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "srun", FAKE_SRUN)
    _executable(bin_dir / "scontrol", FAKE_SCONTROL)
    settings = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "1234",
        "SLURM_JOB_NODELIST": "nodeA,nodeB",
        "SLURM_NNODES": "2",
        "SLURM_SUBMIT_DIR": str(ROOT),
    }
    return _clean_env(**{**settings, **extra})


def test_slurm_script_gives_each_node_one_process_with_all_its_gpus(tmp_path, monkeypatch):
    record = tmp_path / "record"
    record.mkdir()
    python = _executable(tmp_path / "python", RECORDING_PYTHON)
    env = _slurm_env(
        tmp_path,
        METHOD="dann",
        PRESET="mnist_mnistm",
        WORKDIR=str(tmp_path / "work"),
        PYTHON=str(python),
        RECORD_DIR=str(record),
        CUDA_VISIBLE_DEVICES="0,1,2,3",
    )
    extra = ["--config.num_steps=3", "--config.methods=('dann',)"]
    result = subprocess.run(
        ["bash", str(LAUNCH / "slurm.sbatch"), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    port = 61440 + 1234 % 4096
    for i in range(2):
        got, args = _record(record / f"task{i}.txt")
        assert got["JAX_COORDINATOR_ADDRESS"] == f"nodeA:{port}"
        assert got["JAX_NUM_PROCESSES"] == "2"
        assert got["JAX_PROCESS_ID"] == str(i)
        assert got["JAX_LOCAL_DEVICE_IDS"] == "0,1,2,3"
        assert args == [
            "-m",
            "experiments.dann",
            "--config=mnist_mnistm",
            f"--workdir={tmp_path / 'work'}",
            *extra,
        ]
        # What thesis_jax.core.parallel makes of that environment.
        for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
            monkeypatch.setenv(key, got[key])
        assert parallel.multihost_environment() == "explicit"


def test_slurm_script_refuses_unknown_binaries_and_outside_slurm(tmp_path):
    env = _slurm_env(tmp_path, METHOD="nope", WORKDIR=str(tmp_path / "work"))
    result = subprocess.run(
        ["bash", str(LAUNCH / "slurm.sbatch")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "experiments/nope.py" in result.stderr
    env = _clean_env()
    result = subprocess.run(
        ["bash", str(LAUNCH / "slurm.sbatch")], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "sbatch" in result.stderr


@pytest.mark.slow
def test_slurm_script_trains_dann_on_two_local_processes(tmp_path, free_port):
    """The whole chain: the sbatch script, initialize_distributed, 2 processes of 2 CPUs."""
    workdir = tmp_path / "work"
    env = _slurm_env(
        tmp_path,
        SLURM_JOB_NODELIST="127.0.0.1",
        JAX_PORT=str(free_port()),
        METHOD="dann",
        PRESET="digits",
        WORKDIR=str(workdir),
        PYTHON=sys.executable,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    args = [
        "--config.num_steps=4",
        "--config.log_every=2",
        "--config.eval_every=0",
        "--config.checkpoint_every=4",
        "--config.methods=('dann',)",
        "--config.svm_retrain=False",
        "--config.tsne_points=40",
        "--config.eval_batch_size=64",
    ]
    result = subprocess.run(
        ["bash", str(LAUNCH / "slurm.sbatch"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "process 0 of 2, 4 global devices" in output
    assert "process 1 of 2, 4 global devices" in output
    assert (workdir / "results.md").is_file()
    assert (workdir / "dann" / "checkpoints" / "4").is_dir()


# --- the TPU pod recipe, with gcloud playing two workers locally --------------------------

FAKE_GCLOUD = """#!/bin/bash
# gcloud stand-in for `compute tpus tpu-vm ssh NAME --worker=W --command=CMD`: worker i is a
# home folder $WORKERS_DIR/w<i> on this machine.
worker= command=
for arg in "$@"; do
    case $arg in
        --worker=*) worker=${arg#--worker=} ;;
        --command=*) command=${arg#--command=} ;;
    esac
done
[[ "$1 $2 $3 $4" == "compute tpus tpu-vm ssh" ]] || { echo "unexpected: $*" >&2; exit 9; }
if [[ $worker == all ]]; then workers=(0 1); else workers=("$worker"); fi
for w in "${workers[@]}"; do
    HOME="$WORKERS_DIR/w$w" JAX_PROCESS_ID=$w bash -c "$command" || exit $?
done
"""


def test_tpu_pod_run_starts_the_binary_on_every_worker(tmp_path, monkeypatch):
    workers, record = tmp_path / "workers", tmp_path / "record"
    record.mkdir()
    for w in range(2):
        checkout = workers / f"w{w}" / "thesis_jax"
        (checkout / "experiments").mkdir(parents=True)
        (checkout / "experiments" / "dann.py").touch()
        (checkout / ".venv" / "bin").mkdir(parents=True)
        _executable(checkout / ".venv" / "bin" / "python", RECORDING_PYTHON)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "gcloud", FAKE_GCLOUD)
    workdir = tmp_path / "shared work"
    env = _clean_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        WORKERS_DIR=str(workers),
        RECORD_DIR=str(record),
        TPU_NAME="pod",
        ZONE="us-central2-b",
        METHOD="dann",
        PRESET="mnist_mnistm",
        WORKDIR=str(workdir),
    )
    extra = ["--config.methods=('dann',)", "--config.data_dir=/mnt/a folder"]
    result = subprocess.run(
        ["bash", str(LAUNCH / "tpu_pod.sh"), "run", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (workdir / ".tpu_pod_launch_check").is_file()
    deadline = time.monotonic() + 20  # the binary runs in the background
    while time.monotonic() < deadline and len(list(record.glob("task*.txt"))) < 2:
        time.sleep(0.1)
    for w in range(2):
        got, args = _record(record / f"task{w}.txt")
        assert got["THESIS_JAX_DISTRIBUTED"] == "1"
        assert args == [
            "-m",
            "experiments.dann",
            "--config=mnist_mnistm",
            f"--workdir={workdir}",
            *extra,
        ]
        assert (workers / f"w{w}" / "thesis_jax" / "run.pid").read_text().strip().isdigit()
    monkeypatch.setenv("THESIS_JAX_DISTRIBUTED", "1")
    for var in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("TPU_WORKER_HOSTNAMES", raising=False)
    monkeypatch.delenv("MEGASCALE_COORDINATOR_ADDRESS", raising=False)
    assert parallel.multihost_environment() == "requested"


def test_tpu_pod_script_needs_its_settings(tmp_path):
    result = subprocess.run(
        ["bash", str(LAUNCH / "tpu_pod.sh"), "run"],
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "TPU_NAME" in result.stderr
    env = _clean_env(TPU_NAME="pod", ZONE="z", PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _executable(tmp_path / "gcloud", "#!/bin/bash\nexit 0\n")
    result = subprocess.run(
        ["bash", str(LAUNCH / "tpu_pod.sh"), "run"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "WORKDIR" in result.stderr
    result = subprocess.run(
        ["bash", str(LAUNCH / "tpu_pod.sh"), "bogus"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "tpu_pod.sh run" in result.stderr
