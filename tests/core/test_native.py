"""thesis_jax.core.native: building the C++ kernels, errors when it cannot, switching them off."""

import os
import subprocess
import sys

import pytest

from thesis_jax.core import native
from thesis_jax.spiral.envs import stroke_kernel


def test_build_errors_say_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("THESIS_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "compiler", lambda: None)
    with pytest.raises(RuntimeError, match=r"no C\+\+ compiler found.*apt-get install g\+\+"):
        native.build(stroke_kernel.SOURCE)
    with pytest.raises(RuntimeError, match=r"compiling stroke_depth\.cc failed"):
        native.build(stroke_kernel.SOURCE, cxx="false")  # a "compiler" that always fails
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.skipif(native.compiler() is None, reason="no C++ compiler")
def test_a_build_is_cached_and_keyed_by_its_source(monkeypatch, tmp_path):
    monkeypatch.setenv("THESIS_JAX_CACHE", str(tmp_path))
    library = native.build(stroke_kernel.SOURCE)
    assert library.parent == tmp_path and library.stat().st_size > 0
    mtime = library.stat().st_mtime_ns
    assert native.build(stroke_kernel.SOURCE, cxx="false") == library  # cached: no compile
    assert library.stat().st_mtime_ns == mtime
    changed = tmp_path / "stroke_depth.cc"
    changed.write_text(stroke_kernel.SOURCE.read_text() + "\n// changed\n")
    with pytest.raises(RuntimeError, match="failed"):  # another key: it must compile again
        native.build(changed, cxx="false")


def test_switched_off_the_kernels_are_not_used_and_it_is_said():
    script = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from thesis_jax.spiral.envs import stroke_kernel\n"
        "print('usable', stroke_kernel.usable())\n"
    )
    env = dict(os.environ, THESIS_JAX_NATIVE="0", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert "usable False" in result.stdout
    assert "compiled CPU kernel off (THESIS_JAX_NATIVE=0)" in result.stderr
