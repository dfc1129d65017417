"""core.metrics's atomic writes: the file appears whole, with ordinary permissions."""

import os
import stat

import numpy as np
import pytest

from thesis_jax import core


def test_write_atomic_replaces_whole_files_with_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "results.json"
    core.write_atomic(path, "first")
    core.write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "picture.png"
    core.save_png(path, np.zeros((4, 4, 3)))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        core.write_atomic(path, 12345)  # not bytes: fails inside the write
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.png"]
