"""A functional ring buffer of generated samples for the critic learner (sec. 6.3.4, A.3).

SPIRAL decouples the critic's updates from the policy's with a replay buffer between the actors
and the discriminator learner: actors add their final renders, and the critic samples its fake
batches uniformly from the buffer, so it can train at a higher rate than the policy (sec. 6.3.4).
In the thesis the buffer holds 20 batches of 64 (A.3). `REPLAY_CAPACITY` is that size.

The buffer is a pytree (`ReplayState`) updated by pure functions, so it lives inside a jitted
train step. It stores any pytree of arrays with a leading example axis, e.g. the renders alone,
or `{"image": canvas, "target": target}` for conditional runs. Shapes are static: `capacity` and
the batch sizes given to `replay_add` / `replay_sample` fix the compiled shapes, while `size`
and `next_index` are traced scalars.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

REPLAY_CAPACITY = 20 * 64
"""Capacity in examples: 20 batches of 64 (A.3)."""


@struct.dataclass
class ReplayState:
    """A ring buffer over a pytree of arrays.

    Attributes:
      data: pytree of arrays, each [capacity, ...]; slots >= `size` hold the initial zeros.
      size: int32 scalar, the number of filled slots (at most `capacity`).
      next_index: int32 scalar, the slot the next example is written to.
    """

    data: Any
    size: jax.Array
    next_index: jax.Array

    @property
    def capacity(self) -> int:
        """Number of slots (static: the leading dimension of the stored arrays)."""
        return jax.tree.leaves(self.data)[0].shape[0]


def replay_init_like(capacity: int, example: Any) -> ReplayState:
    """An empty buffer holding `capacity` copies of `example`'s structure.

    Args:
      capacity: number of slots (> 0).
      example: pytree of arrays or `jax.ShapeDtypeStruct`s describing ONE example (no batch
        axis); only shapes and dtypes are used.

    Returns:
      An empty `ReplayState` with zero-filled data.
    """
    if capacity <= 0:
        raise ValueError(f"replay capacity must be positive, got {capacity}")
    if not jax.tree.leaves(example):
        raise ValueError("replay example has no arrays")
    data = jax.tree.map(lambda leaf: jnp.zeros((capacity, *leaf.shape), leaf.dtype), example)
    return ReplayState(
        data=data, size=jnp.zeros((), jnp.int32), next_index=jnp.zeros((), jnp.int32)
    )


def replay_init(
    capacity: int, example_shape: Sequence[int], dtype: jnp.dtype = jnp.float32
) -> ReplayState:
    """An empty buffer of `capacity` arrays of shape `example_shape` (one array per example).

    For a pytree of arrays (e.g. renders with their targets) use `replay_init_like`.

    Args:
      capacity: number of slots (`REPLAY_CAPACITY` in the thesis).
      example_shape: shape of one example, e.g. (64, 64, 3).
      dtype: dtype of the stored arrays.

    Returns:
      An empty `ReplayState`.
    """
    return replay_init_like(capacity, jax.ShapeDtypeStruct(tuple(example_shape), dtype))


@jax.jit
def replay_add(state: ReplayState, batch: Any) -> ReplayState:
    """Writes a batch into the ring, overwriting the oldest examples once the buffer is full.

    Jitted; compiles once per batch shape. Leaves are cast to the stored dtypes.

    Args:
      state: the buffer.
      batch: pytree matching `state.data`, each leaf [n, ...] with the same n <= capacity.

    Returns:
      The updated buffer: examples at slots (next_index + i) % capacity, size = min(size + n,
      capacity), next_index advanced by n modulo capacity.
    """
    chex.assert_trees_all_equal_structs(state.data, batch)
    leaves = jax.tree.leaves(batch)
    num_new = leaves[0].shape[0]
    chex.assert_tree_shape_prefix(batch, (num_new,))
    for stored, new in zip(jax.tree.leaves(state.data), leaves, strict=True):
        if stored.shape[1:] != new.shape[1:]:
            raise ValueError(f"replay stores examples {stored.shape[1:]}, got {new.shape[1:]}")
    capacity = state.capacity
    if num_new > capacity:
        raise ValueError(f"batch of {num_new} examples does not fit a replay of {capacity}")
    slots = (state.next_index + jnp.arange(num_new, dtype=jnp.int32)) % capacity
    data = jax.tree.map(
        lambda stored, new: stored.at[slots].set(new.astype(stored.dtype)), state.data, batch
    )
    return ReplayState(
        data=data,
        size=jnp.minimum(state.size + num_new, capacity),
        next_index=(state.next_index + num_new) % capacity,
    )


def replay_sample(state: ReplayState, rng: jax.Array, batch_size: int) -> Any:
    """Draws `batch_size` examples uniformly, with replacement, from the filled slots.

    Slots >= `size` are never drawn. An empty buffer raises `ValueError` when `size` is concrete
    (outside `jax.jit`; the check reads `size` back to the host); under `jax.jit` it cannot
    raise and returns the zero-filled slot 0 `batch_size` times, so a jitted caller should add
    before it samples.

    Args:
      state: the buffer.
      rng: key for the slot indices.
      batch_size: number of examples to draw.

    Returns:
      Pytree like `state.data` with leaves [batch_size, ...].
    """
    try:
        size = int(state.size)
    except jax.errors.ConcretizationTypeError:
        size = None
    if size == 0:
        raise ValueError("cannot sample from an empty replay buffer; add a batch first")
    return _sample_filled(state, rng, batch_size)


@functools.partial(jax.jit, static_argnums=2)
def _sample_filled(state: ReplayState, rng: jax.Array, batch_size: int) -> Any:
    slots = jax.random.randint(rng, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda stored: stored[slots], state.data)
