"""DeepWarp's objectives: l2 (sec. 4.4.2) and the registration loss of eq. 4.4.1 (sec. 4.4.6).

Both return one value per example; the trainer averages them over the batch.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

DISTANCES = ("l2", "l1")


def _distance(output: jax.Array, target: jax.Array, distance: str) -> jax.Array:
    diff = output - target
    if distance == "l2":
        return jnp.mean(diff**2, axis=(-3, -2, -1))
    if distance == "l1":
        return jnp.mean(jnp.abs(diff), axis=(-3, -2, -1))
    raise ValueError(f"unknown distance {distance!r}; choose from {DISTANCES}")


def center_crop(target: jax.Array, margin: int) -> jax.Array:
    """The aligned (H, W) centre of a ground truth enlarged by `margin` on every side."""
    if margin == 0:
        return target
    return target[..., margin:-margin, margin:-margin, :]


def l2_loss(output: jax.Array, target: jax.Array) -> jax.Array:
    """Per-example mean squared error between synthesized and ground-truth images (sec. 4.4.2)."""
    chex.assert_rank(output, 4)
    chex.assert_equal_shape([output, target])
    return _distance(output, target, "l2")


def registration_loss(
    output: jax.Array, enlarged_target: jax.Array, margin: int = 3, distance: str = "l2"
) -> tuple[jax.Array, jax.Array]:
    """Eq. 4.4.1: min over shifts (i, j) of dist(O, O_gt[i:i+H, j:j+W]), per example.

    Args:
      output: (B, H, W, C) synthesized images.
      enlarged_target: (B, H + 2k, W + 2k, C), the ground truth cut from a box enlarged by
        k = `margin` pixels on every side.
      margin: k.
      distance: "l2" (mean squared) or "l1" (mean absolute, sharper results per sec. 4.4.6).

    Returns:
      (loss (B,), best shift (B, 2) as (di, dj) - margin: rows then columns, 0 = aligned).
    """
    chex.assert_rank([output, enlarged_target], 4)
    b, h, w, c = output.shape
    chex.assert_shape(enlarged_target, (b, h + 2 * margin, w + 2 * margin, c))
    shifts = [(i, j) for i in range(2 * margin + 1) for j in range(2 * margin + 1)]
    crops = jnp.stack([enlarged_target[:, i : i + h, j : j + w] for i, j in shifts], axis=1)
    distances = _distance(output[:, None], crops, distance)  # (B, S)
    best = jnp.argmin(distances, axis=1)
    shift = jnp.asarray(shifts, jnp.int32)[best] - margin
    return jnp.min(distances, axis=1), shift
