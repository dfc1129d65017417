"""JaxPaint's stroke integral as a compiled CPU kernel: an XLA FFI custom call, built on first use.

`jax_paint.dab_line_integral` evaluates every segment of a stroke at every pixel, which suits a
GPU; on a CPU most of that work is exact zeros (a pixel further than the brush radius from a
segment gets nothing from it). `stroke_depth.cc` computes the same sum over each segment's
neighbourhood only, on XLA's intra-op threads: 2.5-5x faster than the dense XLA loop on the
benchmark's random strokes (`benchmarks/spiral_envs.py`), more for thin brushes. JaxPaint uses it
whenever JAX's default backend is the CPU (`jax_paint.dab_line_integral`).

The C++ source is compiled with the system's C++ compiler the first time JaxPaint runs on a CPU
(a few seconds) into a cache folder (`$THESIS_JAX_CACHE`, default `~/.cache/thesis_jax`), keyed
by the source, jaxlib's version and the CPU's instruction set, then registered with
`jax.ffi.register_ffi_target`. Without a compiler (or with `THESIS_JAX_STROKE_KERNEL=0`) JaxPaint
uses the dense XLA version everywhere, with one log line saying why; both give the same
canvases to float32 rounding (`tests/spiral/test_jax_paint.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import jaxlib
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

SOURCE = pathlib.Path(__file__).with_name("stroke_depth.cc")
TARGET = "thesis_jax_stroke_depth"
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC")
DISABLE_VARIABLE = "THESIS_JAX_STROKE_KERNEL"
_log = logging.getLogger(__name__)


def cache_dir() -> pathlib.Path:
    root = os.environ.get("THESIS_JAX_CACHE") or pathlib.Path.home() / ".cache" / "thesis_jax"
    return pathlib.Path(root)


def _cpu_flags() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return ""


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def build(compiler: str | None = None) -> pathlib.Path:
    """Compiles `stroke_depth.cc` into the cache (once per source, jaxlib and CPU); its path.

    Raises RuntimeError with the compiler's message when there is no compiler or it fails.
    """
    compiler = compiler or _compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (install g++: `apt-get install g++`)")
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), jaxlib.__version__.encode(), " ".join(FLAGS).encode()):
        key.update(part)
    key.update(_cpu_flags().encode())
    library = cache_dir() / f"stroke_depth-{key.hexdigest()[:16]}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with open(library.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same library
        if library.exists():
            return library
        _log.info("JaxPaint: compiling its CPU stroke kernel into %s (once)", library)
        with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
            partial = pathlib.Path(tmp) / library.name
            command = [
                compiler,
                *FLAGS,
                f"-I{jax.ffi.include_dir()}",
                str(SOURCE),
                "-o",
                str(partial),
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    f"compiling {SOURCE.name} failed ({' '.join(command)}):\n"
                    + result.stderr[-2000:]
                )
            os.replace(partial, library)
    return library


_disabled = False


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """JaxPaint traced inside this block renders with the dense XLA version (for comparisons).

    It acts when a function is traced: a function jitted before the block keeps what it had.
    """
    global _disabled
    previous, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = previous


def enabled() -> bool:
    """Whether JaxPaint renders on a CPU with this kernel now: built, registered, not disabled."""
    return not _disabled and available()


@functools.cache
def available() -> bool:
    """Builds and registers the kernel once per process; False (logged once) if it cannot."""
    if os.environ.get(DISABLE_VARIABLE, "1").lower() in ("0", "false", "no", "off"):
        _log.info("JaxPaint: compiled CPU stroke kernel off (%s=0)", DISABLE_VARIABLE)
        return False
    try:
        import ctypes

        library = ctypes.cdll.LoadLibrary(str(build()))
        jax.ffi.register_ffi_target(
            TARGET, jax.ffi.pycapsule(library.ThesisJaxStrokeDepth), platform="cpu"
        )
    except (RuntimeError, OSError) as error:
        _log.warning(
            "JaxPaint: the compiled CPU stroke kernel is unavailable, so strokes are rendered by "
            "the dense XLA version (same canvases, 2.5-4x slower on CPU): %s",
            error,
        )
        return False
    return True


def stroke_depth(start: jax.Array, end: jax.Array, radius: jax.Array, size: int) -> jax.Array:
    """The kernel's `dab_line_integral`: start, end [B, S, 2]; radius [B] -> [B, size, size].

    CPU only (call `available()` first). Strokes are independent, so a batch split over devices
    is rendered where it lies (`custom_partitioning`; an opaque custom call would be gathered to
    every device), and vmapped calls fold the new leading axis into the kernel's batch.
    """
    start, end, radius = (jnp.asarray(x, jnp.float32) for x in (start, end, radius))
    return _batched(size)(start, end, radius)


@functools.cache
def _batched(size: int):
    """`_partitioned(size)` under `jax.vmap`: the mapped axis joins the strokes' batch axis."""

    @jax.custom_batching.custom_vmap
    def call(start, end, radius):
        return _partitioned(size)(start, end, radius)

    @call.def_vmap
    def _(axis_size, in_batched, start, end, radius):
        start, end, radius = (
            x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, batched in zip((start, end, radius), in_batched, strict=True)
        )
        flat = call(
            start.reshape(-1, *start.shape[2:]),
            end.reshape(-1, *end.shape[2:]),
            radius.reshape(-1),
        )
        return flat.reshape(*radius.shape, size, size), True

    return call


def _call(start: jax.Array, end: jax.Array, radius: jax.Array, size: int) -> jax.Array:
    result = jax.ShapeDtypeStruct((*radius.shape, size, size), jnp.float32)
    return jax.ffi.ffi_call(TARGET, result, vmap_method="broadcast_all")(start, end, radius)


@functools.cache
def _partitioned(size: int):
    """`_call` at `size` that XLA partitions along the batch (the other axes stay whole)."""

    @custom_partitioning
    def call(start, end, radius):
        return _call(start, end, radius, size)

    def batch_axis(shapes):  # the mesh axes the operands' batch is split over, if any
        for shape in shapes:
            spec = getattr(shape.sharding, "spec", ())
            if spec and spec[0] is not None:
                return shape.sharding.mesh, spec[0]
        return shapes[0].sharding.mesh, None

    def infer(mesh, arg_shapes, result_shape):
        del mesh, result_shape
        mesh, axis = batch_axis(arg_shapes)
        return NamedSharding(mesh, PartitionSpec(axis, None, None))

    def partition(mesh, arg_shapes, result_shape):
        del result_shape
        mesh, axis = batch_axis(arg_shapes)
        args = (
            PartitionSpec(axis, None, None),
            PartitionSpec(axis, None, None),
            PartitionSpec(axis),
        )
        result = NamedSharding(mesh, PartitionSpec(axis, None, None))
        lower = functools.partial(_call, size=size)
        return mesh, lower, result, tuple(NamedSharding(mesh, spec) for spec in args)

    call.def_partition(
        partition=partition,
        infer_sharding_from_operands=infer,
        sharding_rule="b s i, b s j, b -> b h w",
    )
    return call
