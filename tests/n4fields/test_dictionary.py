"""The dictionary's nearest-neighbour search (eq. 3.3.2): exact blocked search, approximate ones."""

import numpy as np
import pytest

from thesis_jax import n4fields


def _brute_force(queries, keys):
    distances = ((queries[:, None, :].astype(np.float64) - keys[None].astype(np.float64)) ** 2).sum(
        -1
    )
    return distances.argmin(axis=1), distances.min(axis=1)


def test_exact_search_equals_brute_force(rng):
    keys = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = rng.normal(size=(333, 16)).astype(np.float32)
    expected, expected_distance = _brute_force(queries, keys)
    # blocks smaller than the data, neither count a multiple of its block: padding is exercised
    index, distance = n4fields.exact_nearest_neighbors(queries, keys, query_block=64, key_block=96)
    np.testing.assert_array_equal(np.asarray(index), expected)
    np.testing.assert_allclose(np.asarray(distance), expected_distance, rtol=1e-4, atol=1e-4)
    dictionary = n4fields.Dictionary(keys, np.zeros((1000, 16, 16), np.float32))
    np.testing.assert_array_equal(n4fields.nearest_neighbors(queries, dictionary), expected)


def test_exact_search_prefers_the_first_of_equal_keys():
    keys = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], np.float32)
    index, _ = n4fields.exact_nearest_neighbors(np.zeros((3, 2), np.float32), keys, key_block=2)
    np.testing.assert_array_equal(np.asarray(index), [1, 1, 1])


def test_equal_keys_in_other_chunks_and_blocks_lose_to_the_first(rng):
    """The search takes each block's best chunk of 128 keys, then the best key of that chunk:
    a tie between chunks or between blocks goes to the lowest index, as numpy's argmin."""
    keys = rng.normal(size=(2500, 128)).astype(np.float32) + 3.0
    for i in (300, 5, 2100):  # chunk 2, chunk 0, the second block of 2048 keys
        keys[i] = 0.0
    queries = np.concatenate([np.zeros((1, 128)), rng.normal(size=(700, 128))]).astype(np.float32)
    expected, _ = _brute_force(queries, keys)
    assert expected[0] == 5
    for blocks in ({}, {"query_block": 256, "key_block": 256}):  # the CPU's default: 512 x 2048
        index, _ = n4fields.exact_nearest_neighbors(queries, keys, **blocks)
        np.testing.assert_array_equal(np.asarray(index), expected)


def test_recall_at_1():
    assert n4fields.recall_at_1(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError, match="shapes differ"):
        n4fields.recall_at_1(np.zeros(3), np.zeros(4))


@pytest.mark.slow  # building the NN-descent graph compiles numba code: about a minute
def test_pynndescent_recall_on_random_codes(rng):
    keys = rng.normal(size=(5000, 16)).astype(np.float32)
    queries = rng.normal(size=(1000, 16)).astype(np.float32)
    exact = n4fields.nearest_neighbors(queries, keys, method="exact")
    dictionary = n4fields.Dictionary(keys, np.zeros((5000, 16, 16), np.float32))
    indexed = dictionary.with_index(seed=0)
    approx = n4fields.nearest_neighbors(queries, indexed, method="pynndescent")
    assert n4fields.recall_at_1(approx, exact) > 0.9
    # the index is built on the fly when the dictionary has none
    np.testing.assert_array_equal(
        n4fields.nearest_neighbors(queries, keys, method="pynndescent"), approx
    )


def test_dictionary_checks_its_arrays():
    with pytest.raises(ValueError, match="codes but"):
        n4fields.Dictionary(np.zeros((3, 16)), np.zeros((4, 16, 16)))
