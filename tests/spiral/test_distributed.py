"""SPIRAL on Ray: the hub, PBT's decision rule, and (slow) real runs of actors and learners."""

import json
import os
import threading
import time

import numpy as np
import pytest

from thesis_jax.spiral import distributed, experiment, pbt, workers
from thesis_jax.spiral.workers import HubCore


def test_hub_queue_is_bounded_and_first_in_first_out():
    hub = HubCore(queue_capacity=2, replay_capacity=4)
    record = lambda i: {"final_canvas": np.full((3, 2, 2, 1), i, np.float32)}
    assert hub.has_room() and hub.put_trajectories(record(0)) and hub.put_trajectories(record(1))
    assert not hub.has_room() and not hub.put_trajectories(record(2))  # full: the actor waits
    assert hub.take_trajectories(3) == []  # fewer queued than asked
    taken = hub.take_trajectories(2)
    assert [r["final_canvas"][0, 0, 0, 0] for r in taken] == [0, 1]
    assert hub.stats()["episodes_painted"] == 6


def test_hub_parameter_store_serves_only_newer_versions():
    hub = HubCore(1, 1)
    assert hub.latest("policy") is None
    hub.publish("policy", 3, "p3")
    hub.publish("policy", 2, "stale")  # an older publish never replaces a newer one
    assert hub.latest("policy") == (3, "p3")
    assert hub.latest("policy", newer_than=3) is None


def test_hub_replay_is_a_ring_buffer():
    hub = HubCore(1, replay_capacity=4, seed=0)
    assert hub.sample_generated(1) is None
    hub.add_generated({"canvas": np.arange(3, dtype=np.float32)[:, None]})
    assert hub.sample_generated(4) is None  # only 3 stored
    hub.add_generated({"canvas": np.arange(3, 6, dtype=np.float32)[:, None]})
    sample = np.concatenate([hub.sample_generated(4)["canvas"][:, 0] for _ in range(50)])
    assert set(sample.tolist()) == {3.0, 4.0, 5.0, 2.0}  # 0 and 1 were overwritten


def test_the_replay_store_survives_a_restart(tmp_path):
    """Saved with the checkpoints and refilled on resume: the restarted hub holds the same
    examples, overwrites the oldest next, and samples as the first would have."""
    from thesis_jax.spiral.workers import load_replay, save_replay

    hub = HubCore(1, replay_capacity=4, seed=3)
    for start in (0, 3):  # a full ring whose write position has wrapped: 4, 5, 2, 3
        hub.add_generated(
            {
                "canvas": np.arange(start, start + 3, dtype=np.float32)[:, None],
                "target": np.arange(start, start + 3, dtype=np.float32)[:, None] + 10,
            }
        )
    assert HubCore(1, 4).replay_snapshot() == {}
    path = str(tmp_path / "critic_learner" / "replay.npz")
    save_replay(path, hub.replay_snapshot(), step=7)
    step, snapshot = load_replay(path)
    restarted = HubCore(1, replay_capacity=4, seed=99)
    assert step == 7 and restarted.restore_replay(snapshot) == 4
    for _ in range(3):
        a, b = hub.sample_generated(2), restarted.sample_generated(2)
        assert set(a) == {"canvas", "target"}
        np.testing.assert_array_equal(a["canvas"], b["canvas"])
        np.testing.assert_array_equal(a["target"], a["canvas"] + 10)
    for store in (hub, restarted):
        store.add_generated({"canvas": np.array([[9.0]]), "target": np.array([[19.0]])})
    for store in (hub, restarted):
        seen = np.concatenate([store.sample_generated(4)["canvas"][:, 0] for _ in range(60)])
        assert set(seen.tolist()) == {3.0, 4.0, 5.0, 9.0}  # the oldest (2) went first
    smaller = HubCore(1, replay_capacity=2)  # another capacity: the newest, oldest first
    assert smaller.restore_replay(snapshot) == 2
    seen = np.concatenate([smaller.sample_generated(2)["canvas"][:, 0] for _ in range(30)])
    assert set(seen.tolist()) == {4.0, 5.0}
    (tmp_path / "damaged.npz").write_bytes(b"not a zip")
    assert load_replay(str(tmp_path / "damaged.npz")) is None
    assert load_replay(str(tmp_path / "missing.npz")) is None


def test_a_non_finite_learner_loss_stops_the_run_naming_the_last_checkpoint(tmp_path):
    (tmp_path / "policy_learner" / "40").mkdir(parents=True)
    stats = {"seconds": 2.0, "queue_size": 0.0, "replay_size": 0.0}
    with pytest.raises(FloatingPointError, match=r"step 50.*last good checkpoint is step 40"):
        distributed._progress_metrics(
            [{"policy/loss": float("nan")}], stats, {"seconds": 1.0}, 2, 50, str(tmp_path)
        )


def test_exploit_and_explore_copies_the_best_and_perturbs():
    rng = np.random.default_rng(0)
    hyper = [{"lr": 1.0}, {"lr": 2.0}, {"lr": 3.0}, {"lr": 4.0}]
    decisions = pbt.exploit_and_explore([0.5, float("nan"), 0.9, 0.1], hyper, rng, fraction=0.5)
    assert sorted(d.member for d in decisions) == [1, 3]  # NaN ranks last, then 0.1
    for d in decisions:
        assert d.source in (0, 2)
        ratio = d.hyperparams["lr"] / hyper[d.source]["lr"]
        assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.25)
    clipped = pbt.exploit_and_explore([0, 1], [{"x": 1.0}, {"x": 1.0}], rng, bounds={"x": (1, 1)})
    assert clipped[0].hyperparams == {"x": 1.0}
    assert pbt.exploit_and_explore([1.0], [{"x": 1.0}], rng) == []


def _tiny(overrides=None):
    from experiments import spiral
    from thesis_jax import core

    config = core.get_config(
        "digits",
        spiral._PRESETS,
        {
            "batch_size": 8,
            "canvas_size": 16,
            "grid_size": 8,
            "episode_length": 4,
            "log_every": 10,
            "eval_every": 1000,
            "sample_every": 1000,
            "checkpoint_every": 20,
            "eval_batch_size": 16,
            "max_examples": 64,
            **(overrides or {}),
        },
    )
    config.policy.update(channels=8, encoder_blocks=1, embedding_size=32, lstm_size=32)
    config.policy.decoder_blocks = 1
    config.critic_channels = (8, 16)
    return config


@pytest.mark.slow  # 20 s; PBT's exploit/explore step is tested above, in the fast suite
def test_pbt_exploits_and_explores_on_a_population_of_two(tmp_path):
    from experiments import spiral

    config = _tiny({"num_steps": 4, "pbt_population": 2, "pbt_rounds": 2, "pbt_fraction": 0.5})
    config.pbt_parallel = False
    result = spiral.run_pbt(config, str(tmp_path))
    rounds = [json.loads(line) for line in open(tmp_path / "pbt.jsonl")]
    assert [r["step"] for r in rounds] == [2, 4]
    (decision,) = rounds[0]["decisions"]
    fitness = rounds[0]["fitness"]
    assert fitness[decision["source"]] >= fitness[decision["member"]]
    for name, value in decision["hyperparams"].items():
        ratio = value / rounds[0]["hyperparams"][decision["source"]][name]
        assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.25)
    assert result.hyperparams[decision["member"]] == decision["hyperparams"]
    assert os.path.exists(tmp_path / "pbt.png")
    for member in range(2):
        assert os.path.isdir(tmp_path / f"member_{member}" / "checkpoints")


def _ray_program(monkeypatch, *, num_steps, num_actors):
    pytest.importorskip("ray")
    # The workers (processes Ray starts from this environment) cache their small programs too.
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    config = _tiny({"num_steps": num_steps, "distributed": True, "num_actors": num_actors})
    config.episodes_per_actor = 4
    config.off_policy = "vtrace"
    config.learner_gpus = 0.0
    train_images, _ = experiment.load_targets(config)
    return experiment.make_program(config, train_images)


@pytest.mark.slow  # four processes compiling on 2 cores: 25-50 s alone, minutes beside others
def test_ray_actors_and_learners_train_with_off_policy_corrections(tmp_path, monkeypatch):
    """Fig. 6.2b on a local Ray instance: one actor, both learners, V-trace, a few steps."""
    program = _ray_program(monkeypatch, num_steps=20, num_actors=1)
    result = distributed.train(
        program,
        distributed.Settings(num_actors=1, chunk_steps=10),
        num_steps=20,
        workdir=str(tmp_path),
        log_every=10,
        checkpoint_every=20,
    )
    assert result.step == 20 and not result.interrupted
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records if "policy/loss" in r] == [10, 20]
    assert all(np.isfinite(r["policy/loss"]) for r in records if "policy/loss" in r)
    assert "policy/importance_ratio" in records[-1] and "policy/lag_mean" in records[-1]
    for learner in ("policy_learner", "critic_learner"):
        assert "20" in os.listdir(tmp_path / learner), learner
    # The hub's replay store was saved with the checkpoints; a restarted system starts with it.
    step, saved = workers.load_replay(str(tmp_path / "critic_learner" / "replay.npz"))
    assert step == 20 and len(saved["replay/canvas"]) > 0
    system = distributed.start(program, distributed.Settings(num_actors=1), str(tmp_path))
    try:
        import ray

        assert ray.get(system.hub.stats.remote())["replay_size"] >= len(saved["replay/canvas"])
    finally:
        system.shutdown()


@pytest.mark.slow  # 200 steps with restarts
def test_ray_actors_and_learners_train_and_survive_killed_workers(tmp_path, monkeypatch):
    import ray

    program = _ray_program(monkeypatch, num_steps=200, num_actors=2)
    killed = {}

    def kill_workers(system):
        def kill():
            while ray.get(system.hub.latest.remote("policy"))[0] < 30:
                time.sleep(0.2)
            ray.kill(system.actors[0], no_restart=False)
            killed["actor"] = True
            while ray.get(system.hub.latest.remote("policy"))[0] < 60:  # after a checkpoint
                time.sleep(0.2)
            ray.kill(system.policy_learner, no_restart=False)
            killed["learner"] = True

        threading.Thread(target=kill, daemon=True).start()

    settings = distributed.Settings(num_actors=2, chunk_steps=10)
    result = distributed.train(
        program,
        settings,
        num_steps=200,
        workdir=str(tmp_path),
        log_every=10,
        checkpoint_every=20,
        on_start=kill_workers,
    )
    assert killed == {"actor": True, "learner": True}
    assert result.step == 200 and not result.interrupted
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert records[-1]["step"] == 200
    assert records[-1]["actors/restarts"] >= 1
    assert records[-1]["policy/learner_restarts"] >= 1
    assert all(np.isfinite(r["policy/loss"]) for r in records)
    assert "policy/importance_ratio" in records[-1] and "policy/lag_mean" in records[-1]
    for learner in ("policy_learner", "critic_learner"):
        steps = sorted(int(s) for s in os.listdir(tmp_path / learner) if s.isdigit())
        assert steps, learner
    assert max(int(s) for s in os.listdir(tmp_path / "policy_learner") if s.isdigit()) == 200
