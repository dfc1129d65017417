"""Data parallelism over every device of every process, with `jax.jit` and named shardings.

One mesh axis, `data`: the batch is split along its leading dimension over all devices and the
parameters are replicated. XLA inserts the gradient all-reduce. Each process feeds only its own
slice of the global batch (`shard_batch`), so the same code runs on one CPU, on eight GPUs of one
host, and on many hosts after `initialize_distributed()`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from thesis_jax.core.errors import ConfigError

DATA_AXIS = "data"
_log = logging.getLogger(__name__)
_distributed_initialized = False


def multihost_environment() -> str | None:
    """Names the multi-process launcher found in the environment, or None for one process."""
    env = os.environ
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return "explicit"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and env.get("SLURM_JOB_ID"):
        return "slurm"
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "openmpi"
    if "," in env.get("TPU_WORKER_HOSTNAMES", "") or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "cloud_tpu"
    if env.get("THESIS_JAX_DISTRIBUTED", "").lower() in ("1", "true", "yes"):
        return "requested"  # e.g. a TPU VM pod slice, which JAX finds through its metadata server
    return None


def initialize_distributed() -> bool:
    """Calls `jax.distributed.initialize()` once when a multi-host launch is detected.

    Must run before anything touches a JAX backend. With `JAX_COORDINATOR_ADDRESS`,
    `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` set, those are passed explicitly; under Slurm,
    Open MPI and Cloud TPU, JAX reads the cluster itself. `THESIS_JAX_DISTRIBUTED=1` asks for
    that auto-detection where no variable shows the launch (TPU VM pod slices started with
    `gcloud compute tpus tpu-vm ssh --worker=all`). Returns True when initialised.
    """
    global _distributed_initialized
    if _distributed_initialized:
        return True
    kind = multihost_environment()
    if kind is None:
        return False
    if kind == "explicit":
        env = os.environ
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(env["JAX_NUM_PROCESSES"]),
            process_id=int(env["JAX_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()
    _distributed_initialized = True
    _log.info(
        "jax.distributed initialised (%s): process %d of %d, %d global devices",
        kind,
        jax.process_index(),
        jax.process_count(),
        jax.device_count(),
    )
    return True


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named `data` over `devices` (default: all devices of all processes)."""
    devices = list(devices) if devices is not None else jax.devices()
    return jax.make_mesh(
        (len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices
    )


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The leading (batch) dimension is split over the `data` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree (parameters, optimizer state) on every device of `mesh`."""
    return jax.device_put(tree, replicated(mesh))


def placed_like(tree: Any, like: Any) -> Any:
    """`tree`'s values on the devices, and with the shardings, of the same-shaped `like` (new
    values for part of a state that may already be sharded over a mesh)."""
    return jax.tree.map(lambda new, old: jax.device_put(new, old.sharding), tree, like)


def check_batch_split(count: int, what: str = "config.batch_size") -> None:
    """Raises ConfigError unless `count` examples split evenly over every device (of every
    process): called by the binaries' config checks, before any work."""
    devices = jax.device_count()
    if count < 1 or count % devices:
        raise ConfigError(
            f"{what} is {count}, which does not split over {devices} devices; use a multiple "
            f"of {devices}"
        )


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This process's share of a global batch; raises ConfigError if it does not split evenly."""
    devices = mesh.devices.size
    if global_batch_size % devices:
        raise ConfigError(
            f"batch_size={global_batch_size} does not split over {devices} devices; "
            f"use a multiple of {devices} (e.g. --config.batch_size="
            f"{max(devices, global_batch_size // devices * devices)})"
        )
    return global_batch_size // jax.process_count()


def process_slice(global_batch: Any) -> Any:
    """This process's contiguous share of every array of a global numpy batch."""

    def cut(x: Any) -> Any:
        x = np.asarray(x)
        count, index = jax.process_count(), jax.process_index()
        if x.shape[0] % count:
            raise ValueError(f"a batch of {x.shape[0]} does not split over {count} processes")
        share = x.shape[0] // count
        return x[index * share : (index + 1) * share]

    return global_batch if jax.process_count() == 1 else jax.tree.map(cut, global_batch)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Turns this process's numpy slice of the batch into global arrays sharded over `data`.

    A single process may also hand over device arrays (a batch made on the accelerator): they
    are resharded in place instead of travelling through host memory."""
    sharding = batch_sharded(mesh)
    local_devices = len(mesh.local_devices)

    def put(x: Any) -> jax.Array:
        on_device = isinstance(x, jax.Array) and jax.process_count() == 1
        if not on_device:
            x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] % local_devices:
            raise ValueError(
                f"a batch array of shape {x.shape} does not split over this process's "
                f"{local_devices} devices: its leading dimension must be a multiple of "
                f"{local_devices}"
            )
        if on_device:  # made on the device: resharded there, no round trip via the host
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, batch)


def jit_update(update: Callable[..., Any], mesh: Mesh, *, donate: bool = True) -> Callable:
    """Jits `update(state, batch) -> (state, metrics)` for data parallelism.

    The state is replicated (and donated, so its buffers are reused), the batch is split over
    `data`, and the new state and the metrics come back replicated.
    """
    return jax.jit(
        update,
        in_shardings=(replicated(mesh), batch_sharded(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def jit_apply(apply: Callable[..., Any], mesh: Mesh) -> Callable:
    """Jits `apply(params, batch) -> per-example outputs`, outputs split over `data`."""
    return jax.jit(
        apply,
        in_shardings=(replicated(mesh), batch_sharded(mesh)),
        out_shardings=batch_sharded(mesh),
    )


def _padded_chunks(arrays: Any, batch_size: int) -> Iterator[tuple[Any, int]]:
    leaves = jax.tree.leaves(arrays)
    total = len(leaves[0])
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        valid = stop - start

        def cut(x: np.ndarray, start: int = start, stop: int = stop, valid: int = valid):
            chunk = np.asarray(x[start:stop])
            if valid < batch_size:
                pad = np.repeat(chunk[-1:], batch_size - valid, axis=0)
                chunk = np.concatenate([chunk, pad], axis=0)
            return chunk

        yield jax.tree.map(cut, arrays), valid


def map_batched(
    apply: Callable[[Any, Any], Any],
    params: Any,
    arrays: Any,
    *,
    batch_size: int,
    mesh: Mesh,
) -> Any:
    """Runs a sharded `apply(params, batch)` over a whole dataset that every process holds.

    The dataset (a pytree of arrays with a common leading dimension) is cut into batches of
    about `batch_size` (a multiple of the device count; the last one padded, the padding dropped
    from the result). Each process feeds its slice of every batch, and the outputs are gathered
    back into numpy arrays on every process. Used for evaluation.
    """
    devices, processes = mesh.devices.size, jax.process_count()
    batch_size = max(devices, batch_size // devices * devices)
    apply = apply if hasattr(apply, "lower") else jit_apply(apply, mesh)
    params = replicate(params, mesh)
    per_process = batch_size // processes
    first = jax.process_index() * per_process
    outputs = []
    for chunk, valid in _padded_chunks(arrays, batch_size):
        local = jax.tree.map(lambda x: x[first : first + per_process], chunk)
        out = apply(params, shard_batch(local, mesh))
        if processes > 1:
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
        outputs.append(jax.tree.map(lambda y, valid=valid: np.asarray(y)[:valid], out))
    return jax.tree.map(lambda *ys: np.concatenate(ys, axis=0), *outputs)
