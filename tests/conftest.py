"""Every test runs on 8 simulated CPU devices, so sharding is exercised without accelerators."""

import os
import pathlib
import socket
import sys

import pytest

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Compiled programs persist across test processes (xdist workers, the binaries the tests run as
# subprocesses) and across runs: the same small networks are compiled by many tests. Every
# program, however small: XLA:CPU takes about 15 ms to compile one eager operation, and the
# suite compiles thousands of them, many in more than one process (the spiral tests alone 900,
# 16 s); caching them too took a cold fast suite from 305 to 272 s on 2 cores.
_ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# TensorFlow (tensorflow-datasets' tests) and MuJoCo's OSMesa renderer share a process under
# pytest-xdist. OSMesa is loaded with RTLD_DEEPBIND (mujoco_scenes._preload_osmesa), which keeps
# Mesa's LLVM away from TensorFlow's when TensorFlow comes first; the other order still crashes
# Mesa, so TensorFlow is imported before any test runs.
try:
    import tensorflow  # noqa: F401
except ImportError:
    pass

ROOT = _ROOT
FAST_SUITE = "not slow and not smoke and not e2e"  # pyproject's addopts: `pytest`'s default


def pytest_configure(config):
    """The fast suite compiles far more than it runs: most of its tests trace and compile a
    program to take a step or two. There, XLA's backend optimisations (LLVM's passes) cost more
    than they save, so the fast suite turns them off (JAX's `jax_disable_most_optimizations`,
    inherited by the binaries the tests start). Semantics do not change; the last digits of
    transcendental functions may. A run that selects the slow tests (real training runs) or the
    smoke tests (the default presets' 5-step runs, timed as a user runs them) keeps full
    optimisation, as does a caller who sets `JAX_DISABLE_MOST_OPTIMIZATIONS` themselves."""
    if config.getoption("markexpr", "") != FAST_SUITE:
        return
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    if "jax" in sys.modules:
        import jax

        jax.config.update(
            "jax_disable_most_optimizations", os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "1"
        )


@pytest.fixture(autouse=True)
def _e2e_runs_unoptimised(request, monkeypatch):
    """The `e2e` tests check what binaries write, not how fast: like the fast suite they run
    them without XLA's backend optimisations (see `pytest_configure`), in any selection."""
    if request.node.get_closest_marker("e2e") and "JAX_DISABLE_MOST_OPTIMIZATIONS" not in (
        os.environ
    ):
        monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


@pytest.fixture(params=["jit", "eager"])
def variant(request):
    """`variant(fn, **jit_kwargs)`: `fn` jitted, then as it is (rlax's `chex.variants` habit).

    A test of a pure function that takes this fixture runs twice, so the function is checked
    both traced (shapes static, no Python side effects) and eagerly (its chex asserts on values).
    """
    import jax

    if request.param == "jit":
        return lambda fn, **kwargs: jax.jit(fn, **kwargs)
    return lambda fn, **kwargs: fn


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """`../shared/data` beside the checkout (real datasets; read in place, never copied)."""
    path = ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests need ../shared/data beside the checkout")
    return path


@pytest.fixture
def free_port():
    """A function that returns a free TCP port on the loopback (coordinators, Slurm's JAX_PORT)."""

    def find() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return find


def damage_checkpoint(step_dir: pathlib.Path) -> None:
    """Truncates a checkpoint's data files, as a disk that filled up would leave them."""
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no data files in {step_dir}"
    for path in files:
        path.write_bytes(path.read_bytes()[:10])
