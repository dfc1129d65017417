"""Compiled CPU kernels: C++ XLA FFI custom calls, built from the package's sources on first use.

A few hot loops run several times faster as hand-written CPU code than as XLA:CPU's dense
vectorised loops, gathers and scatters (JaxPaint's strokes, DeepWarp's bilinear sampler). Each is a
C++ source next to the JAX code that calls it, compiled here with the system's C++ compiler (a few
seconds, once) into a cache folder (`$THESIS_JAX_CACHE`, default `$XDG_CACHE_HOME/thesis_jax` or
`~/.cache/thesis_jax`), keyed by the source, jaxlib's version and the CPU's instruction set, and
registered with `jax.ffi.register_ffi_target`. The JAX version stays the reference: it runs on
every other device, when no compiler is found (logged once, with the reason), and with
`THESIS_JAX_NATIVE=0`; the tests hold the two to the same numbers.

- `register(source, symbols)`: build, load and register a source's handlers; False if it cannot.
- `disabled()`: a block whose traced functions use the JAX versions (comparisons, benchmarks).
- `batch_parallel(call)`: makes a custom call whose arguments and results share a leading batch
  axis (with independent batch elements) partitionable over devices along that axis, usable
  in `jax.shard_map`, and vmappable (the mapped axis joins the batch).
- `differentiable(kernel, reference)`: a kernel's values with its JAX reference's gradients.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import jaxlib
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

from thesis_jax.core import files

INCLUDE = pathlib.Path(__file__).resolve().parent  # parallel_for.h
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-std=c++20", "-shared", "-fPIC")
DISABLE_VARIABLE = "THESIS_JAX_NATIVE"
_log = logging.getLogger(__name__)
_disabled = False


def cache_dir() -> pathlib.Path:
    """`$THESIS_JAX_CACHE`, else the project's cache folder (`files.cache_root`)."""
    root = os.environ.get("THESIS_JAX_CACHE")
    return pathlib.Path(root) if root else files.cache_root()


def compiler() -> str | None:
    """The C++ compiler to build with: $CXX, else c++, g++ or clang++ on the PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_flags() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return ""


def build(source: pathlib.Path, cxx: str | None = None) -> pathlib.Path:
    """Compiles `source` into the cache once per source, headers, jaxlib and CPU; its path.

    Raises RuntimeError saying what to install when there is no compiler, or with the
    compiler's message when it fails.
    """
    source = pathlib.Path(source)
    cxx = cxx or compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (install g++: `apt-get install g++`)")
    key = hashlib.sha256()
    for part in (source.read_bytes(), *(h.read_bytes() for h in sorted(INCLUDE.glob("*.h")))):
        key.update(part)
    key.update(f"{jaxlib.__version__} {' '.join(FLAGS)} {_cpu_flags()}".encode())
    library = cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with open(library.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same library
        if library.exists():
            return library
        _log.info("compiling %s into %s (once)", source.name, library)
        with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
            partial = pathlib.Path(tmp) / library.name
            command = [
                cxx,
                *FLAGS,
                f"-I{jax.ffi.include_dir()}",
                f"-I{INCLUDE}",
                str(source),
                "-o",
                str(partial),
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    f"compiling {source.name} failed ({' '.join(command)}):\n"
                    + result.stderr[-2000:]
                )
            os.replace(partial, library)
    return library


@functools.cache
def _register(source: pathlib.Path, symbols: tuple[tuple[str, str], ...]) -> bool:
    if os.environ.get(DISABLE_VARIABLE, "1").lower() in ("0", "false", "no", "off"):
        _log.info("%s: compiled CPU kernel off (%s=0)", source.name, DISABLE_VARIABLE)
        return False
    try:
        library = ctypes.cdll.LoadLibrary(str(build(source)))
        for target, symbol in symbols:
            capsule = jax.ffi.pycapsule(getattr(library, symbol))
            jax.ffi.register_ffi_target(target, capsule, platform="cpu")
    except (RuntimeError, OSError, AttributeError) as error:
        _log.warning(
            "%s: the compiled CPU kernel is unavailable, so its JAX version runs instead (the "
            "same numbers, slower on CPU): %s",
            source.name,
            error,
        )
        return False
    return True


def register(source: pathlib.Path, symbols: Mapping[str, str]) -> bool:
    """Builds `source` and registers its FFI handlers {target name: exported symbol} for the CPU.

    Once per process; False, logged once with the reason, if it cannot (no compiler, a failed
    build, `THESIS_JAX_NATIVE=0`). Call it when tracing, not at import.
    """
    return _register(pathlib.Path(source).resolve(), tuple(sorted(symbols.items())))


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Functions traced inside this block use the JAX versions of the kernels.

    It acts when a function is traced: a function jitted before the block keeps what it had.
    """
    global _disabled
    previous, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = previous


def usable(source: pathlib.Path, symbols: Mapping[str, str]) -> bool:
    """Whether to trace the kernel now: JAX's default backend is the CPU, the kernel is built
    and registered, and no `disabled()` block is open."""
    return not _disabled and jax.default_backend() == "cpu" and register(source, symbols)


def batch_parallel(
    call: Callable[..., jax.Array | tuple[jax.Array, ...]], shared: int = 0
) -> Callable:
    """`call` (array arguments -> an array or a tuple), made partitionable and vmappable.

    Every argument and result of `call` has the same leading batch axis and batch elements are
    independent (a custom call computing each image or stroke alone), except the last `shared`
    arguments, which every batch element uses whole (a convolution's kernel). Returns a function
    XLA partitions along that axis over a mesh, with the shared arguments replicated (an opaque
    custom call would be gathered to every device and computed whole there), and that `jax.vmap`
    maps by folding the mapped axis into the batch (mapping over a shared argument runs the call
    once per mapped element).
    """

    @functools.cache
    def specialised(ranks: tuple[int, ...], result_ranks: tuple[int, ...], single: bool):
        batched = len(ranks) - shared

        def batch_specs(rank_list, axis):
            return tuple(PartitionSpec(axis, *[None] * (rank - 1)) for rank in rank_list)

        def arg_specs(axis):
            replicated = tuple(PartitionSpec() for _ in ranks[batched:])
            return batch_specs(ranks[:batched], axis) + replicated

        def mesh_axis(arg_shapes):  # where the operands' batch is split, if anywhere
            for shape in arg_shapes[:batched]:
                spec = getattr(shape.sharding, "spec", ())
                if spec and spec[0] is not None:
                    return shape.sharding.mesh, spec[0]
            return arg_shapes[0].sharding.mesh, None

        def results(mesh, axis):
            shardings = tuple(NamedSharding(mesh, s) for s in batch_specs(result_ranks, axis))
            return shardings[0] if single else shardings

        def infer(mesh, arg_shapes, result_shape):
            del mesh, result_shape
            return results(*mesh_axis(arg_shapes))

        def partition(mesh, arg_shapes, result_shape):
            del result_shape
            mesh, axis = mesh_axis(arg_shapes)
            args = tuple(NamedSharding(mesh, s) for s in arg_specs(axis))
            return mesh, call, results(mesh, axis), args

        names = iter(f"d{i}" for i in range(sum(ranks) + sum(result_ranks)))

        def factors(rank_list, batch=True):
            first = ["b"] if batch else []
            return [
                " ".join([*first, *(next(names) for _ in range(r - len(first)))]) for r in rank_list
            ]

        operands = factors(ranks[:batched]) + factors(ranks[batched:], batch=False)
        partitioned = custom_partitioning(call)
        partitioned.def_partition(
            partition=partition,
            infer_sharding_from_operands=infer,
            sharding_rule=f"{', '.join(operands)} -> {', '.join(factors(result_ranks))}",
        )

        @jax.custom_batching.custom_vmap
        def vmappable(*args):
            return partitioned(*args)

        @vmappable.def_vmap
        def _(axis_size, in_batched, *args):
            def mapped(x):
                return jnp.broadcast_to(x, (axis_size, *x.shape))

            if any(in_batched[batched:]):  # a mapped shared argument: one call per element
                args = [x if b else mapped(x) for x, b in zip(args, in_batched, strict=True)]
                out = jax.lax.map(lambda sliced: vmappable(*sliced), tuple(args))
                return out, jax.tree.map(lambda _: True, out)
            folded = []
            for x, b in zip(args[:batched], in_batched[:batched], strict=True):
                x = x if b else mapped(x)
                folded.append(x.reshape(-1, *x.shape[2:]))
            out = vmappable(*folded, *args[batched:])
            unfold = functools.partial(_unfold, axis_size=axis_size)
            return jax.tree.map(unfold, out), jax.tree.map(lambda _: True, out)

        return vmappable

    def wrapped(*args: jax.Array):
        shapes = jax.eval_shape(call, *args)
        single = not isinstance(shapes, tuple)
        result_ranks = (shapes.ndim,) if single else tuple(s.ndim for s in shapes)
        ranks = tuple(jnp.ndim(x) for x in args)
        if len(args) <= shared:
            raise ValueError(f"batch_parallel: {len(args)} arguments, {shared} of them shared")
        out = specialised(ranks, result_ranks, single)(*args)
        # Inside `jax.shard_map` the results vary over the manual axes the arguments vary over
        # (a custom call's results are typed as not varying).
        varying = frozenset().union(*(_varying_axes(x) for x in args))
        return jax.tree.map(functools.partial(_vary, axes=varying), out)

    return wrapped


def _varying_axes(x: jax.Array) -> frozenset:
    """The manual mesh axes `x` varies over inside `jax.shard_map` (none outside)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)  # newer JAX; `vma` in older releases
    return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def _vary(x: jax.Array, axes: frozenset) -> jax.Array:
    missing = tuple(sorted(axes - _varying_axes(x)))
    if not missing:
        return x
    if hasattr(jax.lax, "pcast"):
        return jax.lax.pcast(x, missing, to="varying")
    return jax.lax.pvary(x, missing)  # older JAX


def differentiable(kernel: Callable, reference: Callable) -> Callable:
    """`kernel`'s values with `reference`'s reverse-mode derivatives (a `jax.custom_vjp`).

    For a kernel that computes what the JAX function `reference` computes (same arguments, same
    results): gradients through it, to any order, are the reference's.
    """
    wrapped = jax.custom_vjp(kernel)
    wrapped.defvjp(
        lambda *args: (kernel(*args), args),
        lambda args, cotangent: jax.vjp(reference, *args)[1](cotangent),
    )
    return wrapped


def _unfold(x: jax.Array, axis_size: int) -> jax.Array:
    return x.reshape(axis_size, -1, *x.shape[1:])


def ffi_call(
    source: pathlib.Path,
    symbols: Mapping[str, str],
    target: str,
    results: Sequence[jax.ShapeDtypeStruct] | jax.ShapeDtypeStruct,
):
    """`jax.ffi.ffi_call` of `target` (of `source`'s `symbols`), registering it first.

    Raises RuntimeError when the kernel cannot be built; callers check `usable` to choose.
    Batching is `batch_parallel`'s.
    """
    if not register(source, symbols):
        raise RuntimeError(f"{target}: the compiled kernel of {source.name} is unavailable")
    return jax.ffi.ffi_call(target, results, vmap_method="broadcast_all")
