"""experiments.startup: binaries re-execute themselves with glibc's huge-page malloc."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from experiments import startup

GLIBC = (2, 36)
PID = 4242


@pytest.mark.parametrize(
    "argv, module",
    [
        (["python", "-m", "experiments.spiral", "--config=digits"], "experiments.spiral"),
        (["python", "-X", "dev", "-m", "experiments.tour"], "experiments.tour"),
        (["python", "-m", "experiments"], "experiments"),
        (["python", "-m", "pytest", "tests"], None),
        (["python", "-m", "experimentsx.spiral"], None),
        (["python", "benchmarks/spiral_train.py", "-m", "experiments.spiral"], None),
        (["python", "-c", "import experiments", "-m", "experiments.spiral"], None),
        (["python", "-m"], None),
        ([], None),
    ],
)
def test_binary_module_is_found_only_for_python_dash_m_experiments(argv, module):
    assert startup.binary_module(argv) == module


def test_the_tunable_is_added_to_the_users_own():
    environ = {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    new = startup.hugepage_environment(environ, GLIBC, "madvise", PID)
    assert new["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert new["PATH"] == "/bin" and new[startup.REEXECUTED] == str(PID)
    fresh = startup.hugepage_environment({}, GLIBC, "madvise", PID)
    assert fresh["GLIBC_TUNABLES"] == startup.TUNABLE


def test_a_child_that_lost_the_tunable_gets_it_again_but_the_same_process_never_loops():
    parent = startup.hugepage_environment({}, GLIBC, "madvise", PID)
    child = {k: v for k, v in parent.items() if k != "GLIBC_TUNABLES"}  # e.g. a cleaned env
    assert startup.hugepage_environment(child, GLIBC, "madvise", PID + 1) is not None
    assert startup.hugepage_environment(child, GLIBC, "madvise", PID) is None
    assert startup.hugepage_environment(parent, GLIBC, "madvise", PID + 1) is None  # has it


@pytest.mark.parametrize(
    "environ, glibc, thp",
    [
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise"),  # the user chose
        ({startup.OPT_OUT: "0"}, GLIBC, "madvise"),
        ({startup.OPT_OUT: "off"}, GLIBC, "madvise"),
        ({startup.REEXECUTED: str(PID)}, GLIBC, "madvise"),  # never twice
        ({"LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4"}, GLIBC, "madvise"),
        ({}, None, "madvise"),  # musl, macOS
        ({}, (2, 34), "madvise"),  # no hugetlb tunable yet
        ({}, GLIBC, "never"),
        ({}, GLIBC, "always"),  # huge pages already
        ({}, GLIBC, None),
    ],
)
def test_nothing_is_re_executed_when_it_would_not_help_or_the_user_said_no(environ, glibc, thp):
    assert startup.hugepage_environment(environ, glibc, thp, PID) is None


def test_the_kernels_setting_is_the_bracketed_mode(tmp_path):
    setting = tmp_path / "enabled"
    setting.write_text("always [madvise] never\n")
    assert startup.transparent_hugepages(str(setting)) == "madvise"
    setting.write_text("[always] madvise never\n")
    assert startup.transparent_hugepages(str(setting)) == "always"
    setting.write_text("garbage\n")
    assert startup.transparent_hugepages(str(setting)) is None
    assert startup.transparent_hugepages(str(tmp_path / "missing")) is None


def _run_experiments(**env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    environ.pop(startup.REEXECUTED, None)
    result = subprocess.run(
        [sys.executable, "-m", "experiments"],
        env={**environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    faults = re.search(r"page faults touching 64 MiB of fresh memory: ([\d,]+)", result.stdout)
    return result.stdout, int(faults.group(1).replace(",", ""))


@pytest.mark.skipif(
    (startup.glibc_version() or (0, 0)) < startup.MIN_GLIBC
    or startup.transparent_hugepages() != "madvise",
    reason="needs glibc >= 2.35 and transparent huge pages on madvise",
)
def test_a_binary_process_gets_huge_pages_and_the_opt_out_keeps_small_ones():
    out, faults = _run_experiments()
    assert "re-executed for huge pages: yes" in out
    assert f"GLIBC_TUNABLES: {startup.TUNABLE}" in out
    assert "experiments.spiral " in out and "experiments.n4fields " in out
    opted_out, small_page_faults = _run_experiments(**{startup.OPT_OUT: "0"})
    assert "re-executed for huge pages: no" in opted_out
    assert small_page_faults > 64 * 256 * 0.9  # one fault per 4 KiB page
    assert faults < small_page_faults / 8  # measured 545 against 16,385
