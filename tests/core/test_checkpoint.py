"""`Checkpointer.restore` on damaged checkpoints: the newest intact one, or one clear error."""

import io
import logging
import sys
import threading

import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import damage_checkpoint
from thesis_jax.core import Checkpointer, CheckpointError
from thesis_jax.core.checkpoint import (
    _not_a_failed_read,
    _WithoutClosedLoopNoise,
    integrity_problem,
)

UNRAISABLE = "pytest.PytestUnraisableExceptionWarning"


@pytest.mark.parametrize(
    "recorded",
    [
        True,
        # orbax's reads still in flight after the first failure report to its closed event loop
        pytest.param(
            False,
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
    ],
    ids=["integrity-record", "orbax-finds-it"],
)
def test_restore_falls_back_to_the_newest_intact_checkpoint(tmp_path, recorded):
    state = {"w": jnp.arange(1000.0), "b": jnp.ones(3)}
    with Checkpointer(tmp_path / "ckpt", save_every=1, keep=3) as checkpointer:
        for step in (1, 2, 3):
            checkpointer.save(step, {"w": state["w"] * step, "b": state["b"]})
    for record in (tmp_path / "ckpt").glob("*/integrity.json"):
        if not recorded:  # as checkpoints written by several hosts, or by an older version
            record.unlink()
    damage_checkpoint(tmp_path / "ckpt" / "3")
    with Checkpointer(tmp_path / "ckpt", save_every=1, keep=3) as checkpointer:
        restored = checkpointer.restore(state)
        np.testing.assert_array_equal(restored["w"], state["w"] * 2)
        assert checkpointer.all_steps() == [1, 2]  # the damaged one set aside...
        checkpointer.save(3, state)  # ...so that the resumed run can save that step again
    assert (tmp_path / "ckpt.damaged" / "3").is_dir()
    for step in (1, 2, 3):
        damage_checkpoint(tmp_path / "ckpt" / str(step))
    with Checkpointer(tmp_path / "ckpt", save_every=1, keep=3) as checkpointer:
        with pytest.raises(CheckpointError, match=r"none of the checkpoints in .* restores"):
            checkpointer.restore(state)
        assert checkpointer.all_steps() == [1, 2, 3]  # nothing moved when none restores


def test_stderr_filter_drops_only_the_closed_loop_tracebacks():
    out = io.StringIO()
    stream = _WithoutClosedLoopNoise(out)
    noise = (
        "Traceback (most recent call last):\n"
        '  File "/py/asyncio/base_events.py", line 837, in call_soon_threadsafe\n'
        "    self._check_closed()\n"
        '  File "/py/asyncio/base_events.py", line 539, in _check_closed\n'
        "    raise RuntimeError('Event loop is closed')\n"
        "RuntimeError: Event loop is closed\n"
    )
    real = 'Traceback (most recent call last):\n  File "t.py", line 1\nValueError: real\n'
    for text in ("a line\n", noise, real, noise[:40], noise[40:], "end", "\n"):
        stream.write(text)
    assert out.getvalue() == "a line\n" + real + "end\n"
    stream.write("\rbar:  10%")  # a progress bar's update passes at once, without its newline
    assert out.getvalue().endswith("end\n\rbar:  10%")
    stream.write("\rbar: 100%\n")
    assert out.getvalue().endswith("\rbar:  10%\rbar: 100%\n")


def test_the_integrity_record_names_what_changed(tmp_path):
    with Checkpointer(tmp_path / "ckpt", save_every=2) as checkpointer:
        assert checkpointer.maybe_save(2, {"w": jnp.arange(100.0)})
    step = tmp_path / "ckpt" / "2"
    assert integrity_problem(str(step)) is None
    data = sorted(p for p in step.rglob("*") if p.is_file() and p.parent.name == "d")[0]
    name = data.relative_to(step)
    original = data.read_bytes()
    data.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit flipped
    assert integrity_problem(str(step)) == f"{name} changed since it was saved (CRC-32)"
    data.write_bytes(original[:10])
    assert integrity_problem(str(step)) == f"{name} has 10 bytes, {len(original)} when saved"
    data.unlink()
    assert integrity_problem(str(step)) == f"{name} is missing"
    (step / "integrity.json").write_text("{not json")
    assert integrity_problem(str(step)).startswith("its integrity.json cannot be read")


def test_stderr_filter_keeps_each_threads_lines_apart():
    out = io.StringIO()
    stream = _WithoutClosedLoopNoise(out)
    stream.write("main: ")  # a line the main thread has begun...
    other = threading.Thread(
        target=lambda: stream.write(
            "Traceback (most recent call last):\nTraceback (most recent call last):\n"
            "RuntimeError: Event loop is closed\n"
        )
    )
    other.start()
    other.join()
    stream.write("done\n")  # ...is not taken for the end of the other thread's traceback
    assert out.getvalue() == "main: done\n"


def test_asyncio_reports_of_failed_reads_are_dropped_and_no_others():
    def record(message, error):
        try:
            raise error
        except type(error):
            exc_info = sys.exc_info()
        return logging.LogRecord("asyncio", logging.ERROR, "x.py", 1, message, None, exc_info)

    unread = "Task exception was never retrieved\nfuture: <Task finished>"
    orbax_like = ValueError("OUT_OF_RANGE ... [tensorstore_spec='{}']")
    assert not _not_a_failed_read(record(unread, orbax_like))
    assert _not_a_failed_read(record(unread, ValueError("the user's own task")))
    assert _not_a_failed_read(record("Unclosed client session", orbax_like))
