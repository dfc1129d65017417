"""BatchedEnv steps many environments like single ones, in process or in worker processes."""

import functools
import os

import numpy as np
import pytest

from thesis_jax.spiral.envs.batched import BatchedEnv, WorkerError
from thesis_jax.spiral.envs.libmypaint import LibMyPaint
from thesis_jax.spiral.envs.spec import (
    Observation,
    PaintConfig,
    make_action_spec,
    observation_spec,
    validate_action,
)


class CountingEnv:
    """A tiny environment: the canvas holds seed + 0.1 * sum of moves; boom=1 raises."""

    def __init__(self, episode_length: int = 5):
        self._spec = make_action_spec({"move": 3, "boom": 2})
        self._episode_length = episode_length
        self._value = 0.0
        self._step = 0

    def action_spec(self):
        return self._spec

    def observation_spec(self):
        return observation_spec(self._spec, 2, 2, 1)

    def reset(self, seed=None):
        self._value, self._step = float(seed or 0), 0
        return self._observation(np.zeros(2, np.int32))

    def step(self, action):
        values = validate_action(action, self._spec)
        if action["boom"] == 1:
            raise ValueError(f"boom requested at step {self._step}")
        self._value += 0.1 * action["move"]
        self._step += 1
        return self._observation(values)

    def _observation(self, last_action):
        return Observation(
            canvas=np.full((2, 2, 1), self._value, np.float32),
            step=np.asarray(self._step, np.int32),
            last_action=last_action,
            done=np.asarray(self._step >= self._episode_length),
        )


class CrashingEnv(CountingEnv):
    """Dies on boom=1 the way a crash in native code ends a process."""

    def step(self, action):
        if action["boom"] == 1:
            os._exit(7)
        return super().step(action)


def failing_env():
    raise OSError("no renderer on this machine")


def random_actions(spec, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.integers(size, size=batch_size) for name, size in spec.items()}


def assert_observations_equal(actual: Observation, expected: Observation) -> None:
    for name, field in expected._asdict().items():
        np.testing.assert_array_equal(getattr(actual, name), field, err_msg=name)


def run(envs: BatchedEnv, seeds, actions) -> list[Observation]:
    return [envs.reset(seeds)] + [envs.step(batch) for batch in actions]


@pytest.fixture(scope="module")
def paint_episode():
    """Seeds and three steps of random paint actions for a batch of 3, and what single envs see."""
    rng = np.random.default_rng(0)
    with LibMyPaint() as env:
        actions = [random_actions(env.action_spec(), 3, rng) for _ in range(3)]
        expected = []
        for b in range(3):
            observations = [env.reset(seed=b)]
            for batch in actions:
                observations.append(env.step({k: int(v[b]) for k, v in batch.items()}))
            expected.append(observations)
    stacked = [
        Observation(*map(np.stack, zip(*step, strict=True))) for step in zip(*expected, strict=True)
    ]
    return [0, 1, 2], actions, stacked


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batch_matches_single_environments(paint_episode, num_workers):
    seeds, actions, expected = paint_episode
    with BatchedEnv(LibMyPaint, batch_size=3, num_workers=num_workers) as envs:
        observations = run(envs, seeds, actions)
    assert observations[-1].canvas.shape == (3, 64, 64, 3)
    assert (observations[-1].canvas < 1).any()
    for actual, wanted in zip(observations, expected, strict=True):
        assert_observations_equal(actual, wanted)


def test_specs_gain_a_batch_axis():
    make_env = functools.partial(LibMyPaint, PaintConfig(grayscale=True))
    with BatchedEnv(make_env, batch_size=4) as envs:
        single = make_env()
        assert dict(envs.action_spec()) == dict(single.action_spec())
        for name, spec in single.observation_spec().items():
            assert envs.observation_spec()[name] == spec._replace(shape=(4, *spec.shape))
        observation = envs.reset()
        for name, spec in envs.observation_spec().items():
            assert getattr(observation, name).shape == spec.shape
            assert getattr(observation, name).dtype == spec.dtype
        single.close()


@pytest.fixture(scope="module")
def counting_pool():
    with BatchedEnv(CountingEnv, batch_size=5, num_workers=2) as envs:
        yield envs


def test_worker_pool_with_uneven_slices_matches_in_process(counting_pool):
    rng = np.random.default_rng(1)
    spec = CountingEnv().action_spec()
    actions = [random_actions(spec, 5, rng) | {"boom": np.zeros(5, int)} for _ in range(4)]
    seeds = np.arange(10, 15)
    with BatchedEnv(CountingEnv, batch_size=5) as local:
        expected = run(local, seeds, actions)
    for actual, wanted in zip(run(counting_pool, seeds, actions), expected, strict=True):
        assert_observations_equal(actual, wanted)
    moves = sum(batch["move"] for batch in actions)
    np.testing.assert_allclose(expected[-1].canvas[:, 0, 0, 0], seeds + 0.1 * moves, rtol=1e-6)
    np.testing.assert_array_equal(expected[-1].step, 4)


def test_worker_exception_carries_the_worker_traceback(counting_pool):
    counting_pool.reset()
    with pytest.raises(WorkerError, match=r"(?s)Traceback.*ValueError: boom requested at step 0"):
        counting_pool.step({"move": np.zeros(5, int), "boom": np.array([0, 0, 0, 1, 0])})
    assert counting_pool.reset(seeds=[1, 2, 3, 4, 5]).canvas[:, 0, 0, 0].tolist() == [1, 2, 3, 4, 5]


def test_worker_crash_raises_instead_of_hanging():
    with BatchedEnv(CrashingEnv, batch_size=2, num_workers=1) as envs:
        envs.reset()
        actions = {"move": np.zeros(2, int), "boom": np.array([0, 1])}
        with pytest.raises(WorkerError, match=r"exited unexpectedly \(exit code 7\)"):
            envs.step(actions)
        with pytest.raises(WorkerError, match=r"exited unexpectedly.*start a new one"):
            envs.step(actions)
    with pytest.raises(RuntimeError, match="closed"):
        envs.reset()
    envs.close()


def test_environment_exception_in_process_is_the_original():
    with BatchedEnv(CountingEnv, batch_size=2) as envs:
        envs.reset()
        with pytest.raises(ValueError, match="boom requested"):
            envs.step({"move": np.zeros(2, int), "boom": np.array([1, 0])})


def test_failing_factory_in_a_worker_raises_at_construction():
    with pytest.raises(WorkerError, match="OSError: no renderer on this machine"):
        BatchedEnv(failing_env, batch_size=2, num_workers=1)


def test_step_after_the_episode_ends_raises_in_workers():
    make_env = functools.partial(LibMyPaint, PaintConfig(episode_length=1, grayscale=True))
    with BatchedEnv(make_env, batch_size=2, num_workers=1) as envs:
        envs.reset()
        actions = {name: np.zeros(2, int) for name in envs.action_spec()}
        assert envs.step(actions).done.all()
        with pytest.raises(WorkerError, match="call reset"):
            envs.step(actions)


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        ({"move": np.zeros(3, int)}, KeyError, r"missing \['boom'\]"),
        ({"move": np.zeros(3, int), "boom": np.zeros(3, int), "x": 0}, KeyError, "unknown"),
        ({"move": np.zeros(2, int), "boom": np.zeros(3, int)}, ValueError, r"shape \(3,\)"),
        ({"move": np.zeros(3), "boom": np.zeros(3, int)}, TypeError, "integers"),
        ({"move": np.array([0, 3, 0]), "boom": np.zeros(3, int)}, ValueError, r"\[1\] = 3"),
        ([0, 0, 0], TypeError, "must map"),
    ],
)
def test_malformed_actions_raise_clear_errors(actions, error, message):
    with BatchedEnv(CountingEnv, batch_size=3) as envs:
        envs.reset()
        with pytest.raises(error, match=message):
            envs.step(actions)
        with pytest.raises(ValueError, match="expected 3 seeds"):
            envs.reset(seeds=[1, 2])
