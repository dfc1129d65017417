"""Training batches biased toward large redirections and rare head poses (thesis sec. 4.4.2).

The range of correction angles [-max_angle, max_angle] is split into 15 bins; each bin's pairs
are divided into "easy" and "hard" by the input's tilt (hard: tilt >= 8 degrees). A batch picks 4
distinct bins uniformly at random (among the bins that hold any pair) and samples 24 easy and 8
hard pairs from each: 128 pairs. A bin without hard pairs fills its hard slots with easy ones
(and the other way round). Batches are a pure function of (seed, step), so a resumed run sees
the same data.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class BinnedSampler:
    """Index sampler of sec. 4.4.2 over a dataset's angles (N,) and tilts (N,)."""

    bins: tuple[np.ndarray, ...]  # per angle bin: indices of its easy pairs
    hard_bins: tuple[np.ndarray, ...]  # per angle bin: indices of its hard pairs
    bins_per_batch: int
    easy_per_bin: int
    hard_per_bin: int

    @classmethod
    def create(
        cls,
        angles: np.ndarray,
        tilt: np.ndarray,
        *,
        max_angle: float = 30.0,
        num_bins: int = 15,
        hard_tilt: float = 8.0,
        bins_per_batch: int = 4,
        easy_per_bin: int = 24,
        hard_per_bin: int = 8,
    ) -> BinnedSampler:
        angles = np.asarray(angles, np.float64)
        tilt = np.abs(np.asarray(tilt, np.float64))
        if angles.shape != tilt.shape or angles.ndim != 1 or len(angles) == 0:
            raise ValueError(
                f"angles and tilt must be equal non-empty vectors, got {angles.shape}, {tilt.shape}"
            )
        edges = np.linspace(-max_angle, max_angle, num_bins + 1)
        which = np.clip(np.digitize(angles, edges[1:-1]), 0, num_bins - 1)
        hard = tilt >= hard_tilt
        easy_bins, hard_bins = [], []
        for b in range(num_bins):
            members = which == b
            if members.any():
                easy_bins.append(np.flatnonzero(members & ~hard))
                hard_bins.append(np.flatnonzero(members & hard))
        return cls(
            bins=tuple(easy_bins),
            hard_bins=tuple(hard_bins),
            bins_per_batch=bins_per_batch,
            easy_per_bin=easy_per_bin,
            hard_per_bin=hard_per_bin,
        )

    @property
    def batch_size(self) -> int:
        return self.bins_per_batch * (self.easy_per_bin + self.hard_per_bin)

    def indices(self, step: int, seed: int = 0) -> np.ndarray:
        """The dataset indices of batch `step` (length `batch_size`)."""
        rng = np.random.default_rng([seed, step, 44])
        chosen = rng.choice(
            len(self.bins), self.bins_per_batch, replace=len(self.bins) < self.bins_per_batch
        )
        out = []
        for b in chosen:
            easy, hard = self.bins[b], self.hard_bins[b]
            if len(hard) == 0:
                hard = easy
            if len(easy) == 0:
                easy = hard
            out.append(rng.choice(easy, self.easy_per_bin, replace=True))
            out.append(rng.choice(hard, self.hard_per_bin, replace=True))
        return np.concatenate(out)
