"""What an experiment binary's process sets up before it imports anything: glibc's malloc with
transparent huge pages.

XLA:CPU allocates a compiled program's temporaries at every call (one block of tens to hundreds
of MB for a training step) and frees them when the call returns. glibc serves blocks that large
with fresh `mmap`ed memory, and the kernel faults it in and zeroes it 4 KiB at a time: a SPIRAL
policy step on 2 cores took 28,000 page faults and 65-75 ms of kernel time per call. glibc's
`glibc.malloc.hugetlb=1` tunable makes malloc ask for transparent huge pages (`madvise`) for
such blocks, so the same memory comes in 2 MiB pages: 160-440 faults, and the step 171-205 ->
131-151 ms (README, "Configs and binaries"). The allocator stays glibc's, so libraries that bind
their own symbols (MuJoCo's OSMesa renderer) are unaffected, as they were not with TCMalloc.

A glibc tunable is read once, when the process starts. `python -m experiments.<binary>` (and
`python -m experiments`) therefore re-executes itself, before anything else is imported, with the
tunable added to `GLIBC_TUNABLES` (`experiments/__init__.py` calls `reexec_for_binary`; the
benchmarks call `reexec_with_hugepages`); the process keeps its PID, arguments, standard streams
and environment. Nothing happens when the tunable is already set, on a non-glibc system or glibc
older than 2.35, when the kernel's transparent huge pages are off or always on
(`/sys/kernel/mm/transparent_hugepage/enabled`), under another preloaded allocator, or with
`THESIS_JAX_HUGEPAGES=0`. Library users get the same by starting Python with
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`.

`python -m experiments` lists the binaries and says what its own process got: the tunable, the
kernel's setting, and the page faults of touching 64 MiB of fresh malloc'd memory (about 550 with
huge pages, 16,400 without, on the machine this was written on).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "THESIS_JAX_HUGEPAGES"  # "0" keeps the process as it was started
# The PID that re-executed itself (exec keeps it): that process never does it twice, while its
# children, other PIDs, are judged on their own environment.
REEXECUTED = "THESIS_JAX_REEXECUTED"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc with glibc.malloc.hugetlb


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the C library this process runs on, None when it is not glibc."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, OSError, ValueError):
        return None


def transparent_hugepages(path: str = THP_SETTING) -> str | None:
    """The kernel's transparent huge page mode ("always", "madvise", "never"), None if unknown."""
    try:
        with open(path, encoding="ascii") as setting:
            text = setting.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def hugepage_environment(
    environ: Mapping[str, str], glibc: tuple[int, int] | None, thp: str | None, pid: int
) -> dict[str, str] | None:
    """The environment for process `pid` to re-execute with, or None when it should stay as it
    is."""
    if environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if environ.get(REEXECUTED) == str(pid):  # glibc dropped the tunable (secure mode): no loop
        return None
    if glibc is None or glibc < MIN_GLIBC or thp != "madvise":
        return None
    if "malloc" in environ.get("LD_PRELOAD", ""):  # tcmalloc, jemalloc: glibc's is not used
        return None
    tunables = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t]
    if any(t.startswith("glibc.malloc.hugetlb=") for t in tunables):
        return None  # the user chose
    return {**environ, "GLIBC_TUNABLES": ":".join([*tunables, TUNABLE]), REEXECUTED: str(pid)}


def reexec_environment() -> dict[str, str] | None:
    """`hugepage_environment` of this process: what it would re-execute with, None if nothing."""
    return hugepage_environment(os.environ, glibc_version(), transparent_hugepages(), os.getpid())


def binary_module(argv: Sequence[str]) -> str | None:
    """The module of `python [options] -m experiments[.<name>] ...`, None for any other command."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            module = next(args, "")
            return module if module.split(".")[0] == "experiments" else None
        if arg in ("-X", "-W", "--check-hash-based-pycs"):  # interpreter options with a value
            next(args, None)
        elif not arg.startswith("-") or arg == "-c":  # a script or code: not a binary
            return None
    return None


def reexec_with_hugepages() -> None:
    """Re-executes this program (same interpreter, arguments, PID) with huge-page malloc, unless
    it has it or cannot get it (the module docstring); returns when nothing is done."""
    environ = reexec_environment()
    if environ is None or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
    except OSError:
        return  # the program goes on with the allocator it has


def reexec_for_binary() -> None:
    """`reexec_with_hugepages` when this process is `python -m experiments[.<name>]`."""
    if binary_module(getattr(sys, "orig_argv", ())) is not None:
        reexec_with_hugepages()


def page_faults_touching(megabytes: int = 64) -> int:
    """Minor page faults of `malloc`ing `megabytes` of memory and writing all of it."""
    import ctypes
    import resource

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = megabytes << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    if not block:
        raise MemoryError(f"malloc({size}) failed")
    ctypes.memset(block, 1, size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    libc.free(block)
    return faults
