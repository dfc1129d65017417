"""`Checkpointer.restore` on damaged checkpoints: the newest intact one, or one clear error."""

import io

import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import damage_checkpoint
from thesis_jax.core import Checkpointer, CheckpointError
from thesis_jax.core.checkpoint import _WithoutClosedLoopNoise


def test_restore_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    state = {"w": jnp.arange(1000.0), "b": jnp.ones(3)}
    with Checkpointer(tmp_path / "ckpt", save_every=1, keep=3) as checkpointer:
        for step in (1, 2, 3):
            checkpointer.save(step, {"w": state["w"] * step, "b": state["b"]})
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
