"""The train loop: exact resume after SIGTERM, checkpoint retention, metrics, NaN detection."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.core import toy
from thesis_jax.core import Checkpointer, Periodic, train
from thesis_jax.core.metrics import read_metrics


def _leaves_equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_sigterm_then_resume_is_bit_identical_to_uninterrupted(tmp_path):
    handler_before = signal.getsignal(signal.SIGTERM)
    full = train(
        toy.init_state(),
        toy.update,
        toy.batch_fn,
        num_steps=20,
        workdir=tmp_path / "full",
        checkpoint_every=5,
        log_every=5,
    )
    assert not full.interrupted and full.step == 20

    def batch_fn_with_preemption(step):
        if step == 12:
            os.kill(os.getpid(), signal.SIGTERM)
        return toy.batch_fn(step)

    part = train(
        toy.init_state(),
        toy.update,
        batch_fn_with_preemption,
        num_steps=20,
        workdir=tmp_path / "resumed",
        checkpoint_every=5,
        log_every=5,
    )
    assert part.interrupted and part.step == 13
    assert 13 in Checkpointer(tmp_path / "resumed" / "checkpoints", save_every=5).all_steps()

    resumed = train(
        toy.init_state(seed=99),
        toy.update,
        toy.batch_fn,
        num_steps=20,
        workdir=tmp_path / "resumed",
        checkpoint_every=5,
        log_every=5,
    )
    assert not resumed.interrupted and resumed.step == 20
    assert _leaves_equal(resumed.state.params, full.state.params)
    assert _leaves_equal(resumed.state.opt_state, full.state.opt_state)
    assert _leaves_equal(resumed.state.rng, full.state.rng)
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_checkpoints_keep_the_last_k(tmp_path):
    train(
        toy.init_state(),
        toy.update,
        toy.batch_fn,
        num_steps=12,
        workdir=tmp_path,
        checkpoint_every=2,
        keep_checkpoints=3,
        log_every=4,
    )
    assert Checkpointer(tmp_path / "checkpoints", save_every=2).all_steps() == [8, 10, 12]


def _train_watched(workdir, num_steps, **options):
    """`train` on the toy task with an evaluation and a job every 4 steps; (result, job steps)."""
    seen = []
    result = train(
        toy.init_state(),
        toy.update,
        toy.batch_fn,
        num_steps=num_steps,
        workdir=workdir,
        eval_fn=lambda s: {"step_seen": float(s.step)},
        periodic=[Periodic(every=4, fn=lambda step, s: seen.append(step))],
        **options,
    )
    return result, seen


def test_metrics_eval_and_periodic_jobs(tmp_path):
    result, seen = _train_watched(tmp_path, 10, log_every=5, eval_every=5)
    assert seen == [4, 8, 10]
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    train_steps = [r["step"] for r in records if "train/loss" in r]
    assert train_steps == [5, 10]
    assert all(
        np.isfinite(r["train/loss"]) and r["train/steps_per_sec"] > 0
        for r in records
        if "train/loss" in r
    )
    assert [r["eval/step_seen"] for r in records if "eval/step_seen" in r] == [5.0, 10.0]
    assert result.eval_metrics == {"step_seen": 10.0}


def test_zero_steps_only_evaluates_and_runs_the_end_jobs(tmp_path):
    """num_steps=0 (evaluate a given model, as the SPIRAL binary does with --config.agent)."""
    result, seen = _train_watched(tmp_path, 0)
    assert seen == [0] and result.step == 0
    assert result.eval_metrics == {"step_seen": 0.0}


def test_loss_decreases_on_learnable_task(tmp_path):
    train(toy.init_state(), toy.update, toy.batch_fn, num_steps=100, workdir=tmp_path, log_every=20)
    losses = [r["train/loss"] for r in read_metrics(tmp_path)]
    assert losses[-1] < 0.6 * losses[0]


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    def bad_update(state, batch):
        state, metrics = toy.update(state, batch)
        return state, {"loss": jnp.where(state.step >= 3, jnp.nan, metrics["loss"])}

    with pytest.raises(FloatingPointError, match=r"non-finite .* at step 4.*checkpoint"):
        train(
            toy.init_state(),
            bad_update,
            toy.batch_fn,
            num_steps=10,
            workdir=tmp_path,
            log_every=2,
            checkpoint_every=2,
        )


def test_a_stop_request_no_step_could_honour_is_passed_on_to_the_caller(tmp_path):
    """Ctrl-C while a finished run is resumed must stop the program, not start the next run."""
    from thesis_jax.core.loop import StopRequests

    # Python's own Ctrl-C handler, whatever an earlier test in this worker left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _stop_requests_reach_the_caller(tmp_path, StopRequests)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_requests_reach_the_caller(tmp_path, StopRequests):
    with pytest.raises(KeyboardInterrupt), StopRequests():
        signal.raise_signal(signal.SIGINT)
    with StopRequests() as stop:  # the loop stopped because of it: nothing is passed on
        signal.raise_signal(signal.SIGINT)
        stop.consumed = True
    train(toy.init_state(), toy.update, toy.batch_fn, num_steps=3, workdir=str(tmp_path))

    original = Checkpointer.save

    def save_then_interrupt(self, step, state):
        signal.raise_signal(signal.SIGINT)  # arrives while the finished run is re-saved
        return original(self, step, state)

    Checkpointer.save = save_then_interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train(toy.init_state(), toy.update, toy.batch_fn, num_steps=3, workdir=str(tmp_path))
    finally:
        Checkpointer.save = original
