"""The hand-crafted nearest-neighbour baseline of thesis sec. 3.4 ("SIFT + NNB", table 3.I-A).

"We used SIFT vectors computed over the input M x M patches as descriptors and use these vectors
to perform the nearest-neighbor search in the training dataset": the learned neural code is
replaced by a SIFT descriptor of the 34 x 34 patch, and the rest is N4-Fields unchanged: a
dictionary of training patches (descriptor, 16 x 16 annotation), nearest neighbour, transfer
and averaging (eq. 3.3.1-3.3.2). The thesis reports ODS .59 for it on BSDS500 against .75 for
N4-Fields.

The descriptor (Lowe 2004, computed densely as VLFeat's dsift): grey levels (the mean of the
colour channels), central-difference gradients, the orientation split linearly between the
two nearest of 8 bins and weighted by the gradient magnitude, summed over a 4 x 4 grid of 8 x 8
cells covering the central 32 x 32 pixels of the patch (the gradients there need only the
patch's own pixels), each cell weighted by a Gaussian of sigma = 16 px (half the window) at its
centre, then l2-normalised, clipped at 0.2 and normalised again: 128 dimensions.
`dense_sift` computes the descriptor of the patch centred at every pixel from box sums of the
orientation maps of the mirror-padded image; `sift_descriptors` computes it from patches; the
two agree (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from thesis_jax.n4fields.dictionary import Dictionary
from thesis_jax.n4fields.inference import multiscale, transfer_annotations
from thesis_jax.n4fields.patches import pad_widths, reflect_pad

PATCH = 34
CELLS = 4
CELL = 8
BINS = 8
DESCRIPTOR_DIM = CELLS * CELLS * BINS
_PATCHES_AT_ONCE = 1024


def _orientation_maps(grey: np.ndarray) -> np.ndarray:
    """(..., H, W) grey -> (..., H-2, W-2, BINS) magnitude-weighted soft orientation votes."""
    dy = 0.5 * (grey[..., 2:, 1:-1] - grey[..., :-2, 1:-1])
    dx = 0.5 * (grey[..., 1:-1, 2:] - grey[..., 1:-1, :-2])
    magnitude = np.hypot(dx, dy)
    position = (np.arctan2(dy, dx) % (2 * np.pi)) / (2 * np.pi / BINS)
    floor = np.floor(position)
    upper = (position - floor) * magnitude  # the vote of the next bin up
    lower_bin = floor.astype(np.int64) % BINS
    bins = np.arange(BINS)
    votes = np.where(lower_bin[..., None] == bins, (magnitude - upper)[..., None], 0.0)
    votes += np.where(((lower_bin + 1) % BINS)[..., None] == bins, upper[..., None], 0.0)
    return votes


def _cell_weights() -> np.ndarray:
    centres = (np.arange(CELLS) - (CELLS - 1) / 2) * CELL
    sigma = CELLS * CELL / 2
    weights = np.exp(-(centres[:, None] ** 2 + centres[None, :] ** 2) / (2 * sigma**2))
    return weights[..., None]  # (CELLS, CELLS, 1)


def _normalise(histograms: np.ndarray) -> np.ndarray:
    """(..., CELLS, CELLS, BINS) -> (..., 128): l2, clip at 0.2, l2 (Lowe 2004)."""
    flat = (histograms * _cell_weights()).reshape(*histograms.shape[:-3], DESCRIPTOR_DIM)
    flat = flat / np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), 1e-12)
    flat = np.minimum(flat, 0.2)
    flat = flat / np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), 1e-12)
    return flat.astype(np.float32)


def _grey(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(pixels, np.float64).mean(axis=-1)


def sift_descriptors(patches: np.ndarray) -> np.ndarray:
    """SIFT descriptors of (K, 34, 34, C) patches: (K, 128) float32."""
    patches = np.asarray(patches)
    if patches.ndim != 4 or patches.shape[1:3] != (PATCH, PATCH):
        raise ValueError(f"patches must be (K, {PATCH}, {PATCH}, C), got {patches.shape}")
    cells = []
    for start in range(0, len(patches), _PATCHES_AT_ONCE):  # votes are 64 KB per patch
        votes = _orientation_maps(_grey(patches[start : start + _PATCHES_AT_ONCE]))
        cells.append(votes.reshape(-1, CELLS, CELL, CELLS, CELL, BINS).sum(axis=(2, 4)))
    return _normalise(np.concatenate(cells) if cells else np.zeros((0, CELLS, CELLS, BINS)))


def dense_sift(image: np.ndarray | jax.Array, stride: int = 1) -> np.ndarray:
    """The SIFT descriptor of the (mirror-padded) 34 x 34 patch centred at every `stride`-th
    pixel of an (H, W, C) image: (ceil(H / stride), ceil(W / stride), 128) float32."""
    image = np.asarray(image)
    chex.assert_rank(image, 3)
    height, width = image.shape[:2]
    before, after = pad_widths(PATCH)
    votes = _orientation_maps(reflect_pad(_grey(image), before, after))  # (H+31, W+31, BINS)
    table = np.zeros((votes.shape[0] + 1, votes.shape[1] + 1, BINS), np.float64)
    table[1:, 1:] = votes.cumsum(0).cumsum(1)
    rows = np.arange(0, height, stride)
    cols = np.arange(0, width, stride)
    cells = np.zeros((rows.size, cols.size, CELLS, CELLS, BINS), np.float64)
    for i in range(CELLS):
        top = rows[:, None] + i * CELL  # votes row 0 is padded row 1, the patch's second row
        for j in range(CELLS):
            left = cols[None, :] + j * CELL
            cells[:, :, i, j] = (
                table[top + CELL, left + CELL]
                - table[top, left + CELL]
                - table[top + CELL, left]
                + table[top, left]
            )
    return _normalise(cells)


def build_sift_dictionary(samples: dict[str, np.ndarray]) -> Dictionary:
    """SIFT descriptors of `samples["image"]` with `samples["annotation"]` (from
    `sample_patches(..., rotation="none", flip=False)`)."""
    return Dictionary(
        codes=sift_descriptors(samples["image"]),
        annotations=np.asarray(samples["annotation"], np.float32),
    )


def predict_edges_sift(
    image: np.ndarray | jax.Array,
    dictionary: Dictionary,
    *,
    scales: Sequence[float] = (1.0,),
    stride: int = 1,
    method: str = "exact",
) -> np.ndarray:
    """The SIFT + NNB edge map of one image: (H, W) float32 in [0, 1]."""
    if dictionary.codes.shape[1] != DESCRIPTOR_DIM:
        raise ValueError(f"the dictionary holds {dictionary.codes.shape[1]}-d codes, not SIFT")

    def one_scale(img: jax.Array) -> jax.Array:
        codes = dense_sift(np.asarray(img), stride)
        return transfer_annotations(
            jnp.asarray(codes), dictionary, img.shape[:2], stride=stride, method=method
        )

    return np.clip(np.asarray(multiscale(one_scale, image, scales)), 0.0, 1.0)
