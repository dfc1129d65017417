"""The blocked Metropolis-Hastings baseline of thesis sec. 6.4.6 (fig. 6.10)."""

import math

import numpy as np
import pytest

from thesis_jax.spiral import mcmc
from thesis_jax.spiral import scenes_dataset as sd
from thesis_jax.spiral.envs import mujoco_scenes as ms


@pytest.fixture(scope="module")
def renderer():
    with ms.SceneRenderer(max_objects=20) as scene_renderer:
        yield scene_renderer


@pytest.fixture(scope="module")
def held_out(renderer):
    scenes = sd.sample_dataset_scenes(2, seed=sd.HOLDOUT_SEED)
    padded = np.concatenate([scenes, np.zeros((2, 15, 7), np.int32)], axis=1)
    return padded, np.stack([renderer.render_pixels(scene) for scene in padded])


def test_acceptance_rule_on_known_likelihoods():
    assert mcmc.mh_accept(-10.0, -5.0, 0.999)  # better: always accepted
    assert mcmc.mh_accept(-10.0, -10.0, 0.999)
    ratio = math.exp(-2.0)  # proposal e^2 times less likely: accepted with probability e^-2
    assert mcmc.mh_accept(-10.0, -12.0, ratio - 1e-6)
    assert not mcmc.mh_accept(-10.0, -12.0, ratio + 1e-6)
    rng = np.random.default_rng(0)
    rate = np.mean([mcmc.mh_accept(0.0, -0.5, rng.random()) for _ in range(20_000)])
    assert abs(rate - math.exp(-0.5)) < 0.015


def test_gaussian_likelihood_and_l2():
    target = np.zeros((4, 4, 3), np.float32)
    image = np.full((4, 4, 3), 0.5, np.float32)
    # variance 0.25: -sum(0.5^2) / (2 * 0.25) over 48 values
    assert mcmc.gaussian_log_likelihood(image, target) == pytest.approx(-48 * 0.25 / 0.5)
    assert mcmc.l2_distance(image, target) == pytest.approx(0.25)
    assert mcmc.l2_distance(np.full((4, 4, 3), 255, np.uint8), target) == pytest.approx(1.0)


def test_proposal_redraws_exactly_one_block_within_ranges():
    ranges = ms.attribute_ranges()
    rng = np.random.default_rng(3)
    scene = ms.empty_scene(20)
    seen = np.zeros((7,), bool)
    for _ in range(2000):
        proposal, block = mcmc.propose_block(scene, rng, ranges)
        changed_rows = np.flatnonzero((proposal != scene).any(axis=1))
        assert set(changed_rows) <= {block}
        ms.validate_scene(proposal)
        seen |= proposal[block] == ranges - 1
        scene = proposal
    assert seen.all()  # every attribute reaches the top of its range


def test_short_run_records_a_curve_and_best_so_far_never_increases(renderer, held_out):
    _, targets = held_out
    result = mcmc.blocked_mh(targets[0], 200, np.random.default_rng(0), renderer)
    assert result.l2_history.shape == result.best_l2_history.shape == (200,)
    assert np.all(np.diff(result.best_l2_history) <= 0)
    assert result.best_l2 == pytest.approx(result.best_l2_history[-1])
    assert result.best_l2_history[-1] < result.l2_history[0]  # it does improve on the empty scene
    assert 0.0 < result.acceptance_rate < 1.0
    best_image = renderer.render(result.best_scene)
    assert mcmc.l2_distance(best_image, targets[0]) == pytest.approx(result.best_l2, rel=1e-5)
    assert mcmc.l2_distance(renderer.render(result.final_scene), targets[0]) == pytest.approx(
        result.l2_history[-1], rel=1e-5
    )


def test_starting_from_the_true_scene_gives_zero_l2(renderer, held_out):
    scenes, targets = held_out
    result = mcmc.blocked_mh(targets[1], 30, 1, renderer, initial_scene=scenes[1])
    assert result.l2_history[0] == pytest.approx(0.0, abs=1e-9)
    assert result.best_l2 == pytest.approx(0.0, abs=1e-9)


def test_runs_are_reproducible_and_curves_stack(renderer, held_out):
    _, targets = held_out
    first = mcmc.blocked_mh(targets[0], 40, 7, renderer)
    second = mcmc.blocked_mh(targets[0], 40, 7, renderer)
    np.testing.assert_array_equal(first.l2_history, second.l2_history)
    curves = mcmc.blocked_mh_curves(targets, 25, seed=0, renderer=renderer, progress=False)
    assert curves.shape == (2, 25) and np.isfinite(curves).all()


def test_bad_arguments_raise(renderer, held_out):
    _, targets = held_out
    with pytest.raises(ValueError, match="target_image"):
        mcmc.blocked_mh(targets[0][:32], 10, 0, renderer)
    with pytest.raises(ValueError, match="max_objects"):
        mcmc.blocked_mh(targets[0], 10, 0, renderer, max_objects=21)
    with pytest.raises(ValueError, match="num_evaluations"):
        mcmc.blocked_mh(targets[0], 0, 0, renderer)
