"""Batches as a pure function of the step, so a resumed run sees exactly the same data.

`epoch_indices(n, batch_size, step, seed)` walks a fresh permutation of `range(n)` every epoch;
the permutation of epoch e depends only on (seed, e), so no iterator state has to be saved in a
checkpoint.
"""

from __future__ import annotations

import numpy as np


def epoch_indices(num_examples: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """The example indices of batch `step`: consecutive slices of per-epoch permutations."""
    if num_examples < 1:
        raise ValueError("cannot sample a batch from an empty dataset")
    start = step * batch_size
    out = np.empty(batch_size, dtype=np.int64)
    filled = 0
    while filled < batch_size:
        epoch, offset = divmod(start + filled, num_examples)
        order = np.random.default_rng([seed, epoch]).permutation(num_examples)
        take = min(batch_size - filled, num_examples - offset)
        out[filled : filled + take] = order[offset : offset + take]
        filled += take
    return out


def random_translate(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shifts each (H, W, C) image by up to `max_shift` pixels each way, edges replicated."""
    if max_shift <= 0:
        return images
    n, height, width = images.shape[:3]
    pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift)) + ((0, 0),) * (images.ndim - 3)
    padded = np.pad(images, pad, mode="edge")
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(height)[None, :]
    cols = dx[:, None] + np.arange(width)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
