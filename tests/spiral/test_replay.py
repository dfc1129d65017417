"""The critic's replay of generated samples: ring order, uniform sampling of filled slots, jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.spiral import replay


def test_init_is_empty_with_thesis_capacity():
    state = replay.replay_init(replay.REPLAY_CAPACITY, (64, 64, 3))
    assert state.capacity == 20 * 64
    assert state.data.shape == (1280, 64, 64, 3) and state.data.dtype == jnp.float32
    assert int(state.size) == 0 and int(state.next_index) == 0


def test_add_wraps_around_and_overwrites_the_oldest():
    state = replay.replay_init(5, (), jnp.int32)
    state = replay.replay_add(state, np.array([1, 2, 3], np.int32))
    np.testing.assert_array_equal(state.data, [1, 2, 3, 0, 0])
    assert int(state.size) == 3 and int(state.next_index) == 3
    state = replay.replay_add(state, np.array([4, 5, 6], np.int32))
    np.testing.assert_array_equal(state.data, [6, 2, 3, 4, 5])
    assert int(state.size) == 5 and int(state.next_index) == 1
    state = replay.replay_add(state, np.array([7, 8, 9, 10, 11], np.int32))
    np.testing.assert_array_equal(state.data, [11, 7, 8, 9, 10])
    assert int(state.size) == 5 and int(state.next_index) == 1


def test_add_rejects_mismatched_batches():
    state = replay.replay_init(4, (2,))
    with pytest.raises(ValueError, match="does not fit"):
        replay.replay_add(state, np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="stores examples"):
        replay.replay_add(state, np.zeros((3, 3), np.float32))


def test_sample_draws_uniformly_from_filled_slots_only():
    state = replay.replay_init(10, (), jnp.int32)
    state = replay.replay_add(
        state, np.arange(1, 5, dtype=np.int32)
    )  # slots 0..3 filled, 4..9 hold 0
    sample = jax.jit(replay.replay_sample, static_argnums=2)
    samples = np.asarray(sample(state, jax.random.key(0), 40_000))
    assert set(np.unique(samples)) == {1, 2, 3, 4}
    counts = np.bincount(samples, minlength=5)[1:]
    np.testing.assert_allclose(counts / samples.size, 0.25, atol=0.01)


def test_sample_from_empty_buffer_raises():
    state = replay.replay_init(4, (2,))
    with pytest.raises(ValueError, match="empty"):
        replay.replay_sample(state, jax.random.key(0), 2)


def test_pytree_examples_keep_images_and_targets_aligned():
    example = {
        "image": jax.ShapeDtypeStruct((2, 2, 1), jnp.float32),
        "label": jnp.zeros((), jnp.int32),
    }
    state = replay.replay_init_like(6, example)
    for start in (0, 4, 8):
        labels = np.arange(start, start + 4, dtype=np.int32)
        images = np.broadcast_to(labels[:, None, None, None].astype(np.float32), (4, 2, 2, 1))
        state = replay.replay_add(state, {"image": images, "label": labels})
    batch = replay.replay_sample(state, jax.random.key(1), 100)
    assert batch["image"].shape == (100, 2, 2, 1) and batch["label"].dtype == jnp.int32
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"])
    assert set(np.unique(batch["label"])) <= set(range(6, 12))  # only the 6 newest survive


def test_add_and_sample_under_jit_compile_once():
    state = replay.replay_init(8, (3,))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, batch, key):
        state = replay.replay_add(state, batch)
        return state, replay.replay_sample(state, key, 4)

    for i in range(5):
        batch = np.full((3, 3), i + 1, np.float32)
        state, sample = step(state, batch, jax.random.key(i))
        filled = min(3 * (i + 1), 8)
        assert int(state.size) == filled
        assert np.all(np.asarray(sample) > 0)  # never an unfilled (zero) slot
    assert int(state.next_index) == 15 % 8
