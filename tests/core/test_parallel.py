"""The sharded update is the single-device update, split over 8 simulated devices."""

import jax
import numpy as np
import pytest

from tests.core import toy
from thesis_jax.core import parallel


def test_eight_simulated_devices():
    assert jax.device_count() == 8


def test_sharded_update_equals_single_device_update():
    batch = toy.batch_fn(0, batch_size=32)
    single = parallel.jit_update(toy.update, parallel.data_mesh(jax.devices()[:1]), donate=False)
    mesh = parallel.data_mesh()
    sharded = parallel.jit_update(toy.update, mesh, donate=False)

    state1, metrics1 = single(toy.init_state(), batch)
    state8, metrics8 = sharded(
        parallel.replicate(toy.init_state(), mesh), parallel.shard_batch(batch, mesh)
    )

    assert state8.params["Dense_0"]["kernel"].sharding.is_fully_replicated
    np.testing.assert_allclose(metrics8["loss"], metrics1["loss"], rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
        state8.params,
        state1.params,
    )
    # Not a no-op: the parameters moved.
    moved = jax.tree.map(
        lambda a, b: float(np.abs(a - b).max()), state1.params, toy.init_state().params
    )
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_shard_batch_splits_leading_axis_over_devices():
    mesh = parallel.data_mesh()
    x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    sharded = parallel.shard_batch({"x": x}, mesh)["x"]
    assert sharded.shape == (16, 3)
    assert len(sharded.addressable_shards) == 8
    assert {s.data.shape for s in sharded.addressable_shards} == {(2, 3)}
    np.testing.assert_array_equal(np.asarray(sharded), x)


def test_shard_batch_reshards_device_arrays_in_place():
    mesh = parallel.data_mesh()
    x = jax.numpy.arange(16 * 3, dtype=np.float32).reshape(16, 3)  # made on one device
    sharded = parallel.shard_batch({"x": x}, mesh)["x"]
    assert {s.data.shape for s in sharded.addressable_shards} == {(2, 3)}
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(x))
    with pytest.raises(ValueError, match="multiple of 8"):
        parallel.shard_batch({"x": jax.numpy.zeros((12, 3))}, mesh)


def test_batch_not_divisible_by_devices_is_a_clear_error():
    mesh = parallel.data_mesh()
    with pytest.raises(ValueError, match="multiple of 8"):
        parallel.shard_batch({"x": np.zeros((12, 3))}, mesh)
    with pytest.raises(ValueError, match="batch_size=12 does not split over 8 devices"):
        parallel.local_batch_size(12, mesh)


def test_map_batched_covers_every_example_once():
    mesh = parallel.data_mesh()
    data = {"x": np.arange(37, dtype=np.float32)[:, None]}
    out = parallel.map_batched(
        lambda p, b: b["x"][:, 0] * p, np.float32(2.0), data, batch_size=16, mesh=mesh
    )
    np.testing.assert_array_equal(out, 2.0 * np.arange(37))


def test_single_process_is_not_initialised(monkeypatch):
    for var in (
        "JAX_COORDINATOR_ADDRESS",
        "SLURM_NTASKS",
        "OMPI_COMM_WORLD_SIZE",
        "TPU_WORKER_HOSTNAMES",
        "MEGASCALE_COORDINATOR_ADDRESS",
    ):
        monkeypatch.delenv(var, raising=False)
    assert parallel.multihost_environment() is None
    assert parallel.initialize_distributed() is False
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert parallel.multihost_environment() == "slurm"
