"""Every test runs on 8 simulated CPU devices, so sharding is exercised without accelerators."""

import os
import pathlib
import socket

import pytest

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TensorFlow (tensorflow-datasets' tests) and MuJoCo's OSMesa renderer share a process under
# pytest-xdist. OSMesa is loaded with RTLD_DEEPBIND (mujoco_scenes._preload_osmesa), which keeps
# Mesa's LLVM away from TensorFlow's when TensorFlow comes first; the other order still crashes
# Mesa, so TensorFlow is imported before any test runs.
try:
    import tensorflow  # noqa: F401
except ImportError:
    pass

ROOT = pathlib.Path(__file__).resolve().parent.parent


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
