"""Training targets of the N4-Fields CNN (thesis sec. 3.3.2 and the alternative encoding of 3.4).

The CNN is not trained on the N x N annotation A(P) itself, which is high-dimensional and jumps
under small shifts of thin boundaries, but on its PCA projection: "Learn a PCA projection on a
subset of N x N patches extracted from the training image annotations" and train on pairs
(P, PCA(A(P))), with 16 dimensions for 16 x 16 patches (sec. 3.3.2, steps 1-2).

The alternative encoding (AE, eq. 3.4.1) describes a patch by its ground-truth segmentation
S(P) instead: one bit per pair of pixels (p_l, p_m), l < m, of the N x N output patch, set when
both lie in the same segment, L = C(N^2, 2) bits (32,640 for N = 16), and reduces these to 16
dimensions by PCA: B(P) = PCA(v_1, ..., v_L).

Several annotators. BSDS500 has about five human annotations per image and the thesis does not
say how they enter A(P). Here `annotation_patches` averages them (A(P) is the fraction of
annotators who drew a boundary at each pixel, what eq. 3.3.1's averaging estimates and what the
BSDS benchmark rewards); `sample_patches` can also draw one annotator per patch, the choice of
Dollár and Zitnick (2013), whose patch sizes and pair encoding the thesis adopts. A segmentation
cannot be averaged, so the AE bits come from one annotator's segmentation (or are averaged
over a stack of them: the fraction of annotators who put the pair in one segment).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from thesis_jax.n4fields import patches as geometry

ANNOTATION_SIZE = 16
"""N, the side of the annotation patch (sec. 3.3.1, after Dollár and Zitnick 2013)."""
CODE_DIM = 16
"""The dimensionality of the PCA targets and of the neural codes (sec. 3.3.2)."""
HEADS = ("code", "central", "patch")
"""What the CNN regresses: the 16-d code of the annotation patch (N4-Fields), its centre pixel
(CNN-central) or its N^2 pixels (CNN-patch) (sec. 3.4)."""


def annotation_patches(
    boundary_maps: Any,
    centers: np.ndarray,
    size: int = ANNOTATION_SIZE,
) -> np.ndarray:
    """The size x size annotation patches A(P) centred at `centers`, averaged over annotators.

    Args:
      boundary_maps: per image, a (H, W) map, an (A, H, W) stack or a list of A maps (a
        ShapesDataset's `annotations`), as a sequence or one (N, H, W) / (N, A, H, W) array; or a
        single image's (H, W) map, in which case `centers` is (K, 2).
      centers: (K, 3) int (image index, row, col), or (K, 2) (row, col) for a single map.
      size: N, the annotation patch side.

    Returns:
      (K, size, size) float32 in [0, 1]; pixels outside the image are mirrored.
    """
    centers = np.asarray(centers, np.int64)
    if isinstance(boundary_maps, np.ndarray) and boundary_maps.ndim == 2:
        boundary_maps = [boundary_maps]
        if centers.ndim != 2 or centers.shape[1] != 2:
            raise ValueError(f"a single map takes (K, 2) centers, got {centers.shape}")
        centers = np.concatenate([np.zeros_like(centers[:, :1]), centers], axis=1)
    if centers.ndim != 2 or centers.shape[1] != 3:
        raise ValueError(f"centers must be (K, 3) (image, row, col), got {centers.shape}")
    before, after = geometry.pad_widths(size)
    out = np.zeros((centers.shape[0], size, size), np.float32)
    for image in np.unique(centers[:, 0]):
        stack = geometry.as_annotator_stack(boundary_maps[int(image)]).astype(np.float32)
        padded = geometry.reflect_pad(stack.transpose(1, 2, 0), before, after)
        chosen = np.flatnonzero(centers[:, 0] == image)
        rows, cols = geometry.sampling_grid(centers[chosen, 1:], size)
        out[chosen] = geometry.gather_nearest(padded, rows + before, cols + before).mean(-1)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class PCA:
    """A PCA projection: `encode` (K, *shape) -> (K, dim), `decode` back (sec. 3.3.2).

    Attributes:
      mean: (D,) the mean of the fitted samples, D = prod(shape).
      components: (dim, D), orthonormal rows, by decreasing variance; each row's largest
        entry in absolute value is positive (a fixed sign for reproducible codes).
      variance: (dim,) the variance of the samples along each component.
      shape: the shape of one sample, e.g. (16, 16).
    """

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    shape: tuple[int, ...]

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    def encode(self, samples: Any) -> Any:
        """(K, *shape) -> (K, dim) codes (numpy in, numpy out; a jax array gives a jax array)."""
        flat = samples.reshape(samples.shape[0], -1)
        if flat.shape[1] != self.mean.shape[0]:
            raise ValueError(f"samples of shape {samples.shape[1:]}, the PCA expects {self.shape}")
        return (flat - self.mean.astype(np.float32)) @ self.components.T.astype(np.float32)

    def decode(self, codes: Any) -> Any:
        """(K, dim) -> (K, *shape) reconstructions mean + codes @ components."""
        flat = codes @ self.components.astype(np.float32) + self.mean.astype(np.float32)
        return flat.reshape(codes.shape[0], *self.shape)


def _centered_product(x: np.ndarray, mean: np.ndarray, right: np.ndarray, chunk: int) -> np.ndarray:
    """(x - mean) @ right, row chunk by row chunk, without materialising x - mean."""
    out = np.empty((x.shape[0], right.shape[1]), np.float64)
    for start in range(0, x.shape[0], chunk):
        out[start : start + chunk] = x[start : start + chunk].astype(np.float32) @ right
    return out - mean @ right


def _centered_transpose_product(
    x: np.ndarray, mean: np.ndarray, left: np.ndarray, chunk: int
) -> np.ndarray:
    """(x - mean).T @ left, accumulated over row chunks."""
    out = np.zeros((x.shape[1], left.shape[1]), np.float64)
    left32 = left.astype(np.float32)
    for start in range(0, x.shape[0], chunk):
        out += x[start : start + chunk].astype(np.float32).T @ left32[start : start + chunk]
    return out - np.outer(mean, left.sum(0))


def _orthonormal_columns(matrix: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of a tall matrix, from the eigenvectors of its small
    Gram matrix (Cholesky-QR in effect: one tall product instead of a Householder QR)."""
    values, vectors = np.linalg.eigh(matrix.T @ matrix)
    keep = values > values.max() * 1e-12
    return matrix @ (vectors[:, keep] / np.sqrt(values[keep]))


def _principal_axes(
    x: np.ndarray,
    mean: np.ndarray,
    dim: int,
    method: str,
    power_iterations: int,
    seed: int,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(dim, D) leading principal axes of the rows of x and the variance along each."""
    count, size = x.shape
    if method == "covariance":
        centered = x.astype(np.float64) - mean
        values, vectors = np.linalg.eigh(centered.T @ centered / max(count - 1, 1))
        components = vectors[:, ::-1][:, :dim].T
        variance = values[::-1][:dim]
    elif method == "randomized":
        rng = np.random.default_rng(seed)
        width = min(dim + 10, count, size)
        basis = _centered_product(x, mean, rng.normal(size=(size, width)).astype(np.float32), chunk)
        for _ in range(power_iterations):
            basis = _orthonormal_columns(basis)
            back = _orthonormal_columns(_centered_transpose_product(x, mean, basis, chunk))
            basis = _centered_product(x, mean, back.astype(np.float32), chunk)
        basis = _orthonormal_columns(basis)
        small = _centered_transpose_product(x, mean, basis, chunk).T  # Q^T (x - mean)
        values, vectors = np.linalg.eigh(small @ small.T)  # its squared singular values
        values, vectors = values[::-1][:dim], vectors[:, ::-1][:, :dim]
        components = (vectors.T @ small) / np.sqrt(np.maximum(values, 1e-300))[:, None]
        variance = values / max(count - 1, 1)
    return components, variance


def fit_pca(
    samples: np.ndarray,
    dim: int = CODE_DIM,
    *,
    method: str = "auto",
    power_iterations: int = 6,
    seed: int = 0,
    chunk: int = 2048,
) -> PCA:
    """Fits a `dim`-component PCA to (K, *shape) samples (annotation patches or AE bits).

    Args:
      samples: (K, *shape), any real or integer dtype (the AE bits stay uint8 in memory).
      dim: the number of components (16 in the thesis).
      method: "covariance" (eigendecomposition of the D x D covariance, exact), "randomized"
        (Halko et al. 2011 range finder with power iterations, for D in the tens of thousands,
        e.g. the 32,640 AE bits) or "auto" (covariance up to D = 4096).
      power_iterations: passes of the randomized method.
      seed: its random projection.
      chunk: rows per matrix product of the randomized method (bounds memory).
    """
    samples = np.asarray(samples)
    if samples.ndim < 2:
        raise ValueError(f"samples must be (K, ...), got shape {samples.shape}")
    x = samples.reshape(samples.shape[0], -1)
    count, size = x.shape
    if not 0 < dim <= min(count, size):
        raise ValueError(f"dim={dim} must be in 1..min(samples={count}, features={size})")
    mean = x.mean(axis=0, dtype=np.float64)
    if method == "auto":
        method = "covariance" if size <= 4096 else "randomized"
    if method not in ("covariance", "randomized"):
        raise ValueError(f"method must be 'auto', 'covariance' or 'randomized', got {method!r}")
    # small products: BLAS threads only cost (and stall when the cores are busy)
    small = count * size * (dim + 10) < 2**31
    with threadpool_limits(limits=1 if small else None, user_api="blas"):
        components, variance = _principal_axes(x, mean, dim, method, power_iterations, seed, chunk)
    signs = np.sign(components[np.arange(dim), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    return PCA(
        mean=mean.astype(np.float32),
        components=components.astype(np.float32),
        variance=np.maximum(variance, 0.0).astype(np.float32),
        shape=tuple(samples.shape[1:]),
    )


def pair_indices(
    size: int = ANNOTATION_SIZE, pairs: int | np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """(2, L) flat indices (l, m), l < m, of the pixel pairs of a size x size patch.

    `pairs=None` gives all L = C(size^2, 2) pairs in row-major order (eq. 3.4.1); an integer
    draws that many distinct pairs (seeded, sorted), as Dollár and Zitnick (2013) sample 256 of
    them to save memory; an array is returned as given.
    """
    every = np.stack(np.triu_indices(size * size, k=1))
    if pairs is None:
        return every
    if isinstance(pairs, (int, np.integer)):
        if not 0 < pairs <= every.shape[1]:
            raise ValueError(f"pairs must be in 1..{every.shape[1]}, got {pairs}")
        chosen = np.sort(np.random.default_rng(seed).choice(every.shape[1], pairs, replace=False))
        return every[:, chosen]
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[0] != 2:
        raise ValueError(f"pairs must be (2, L), got shape {pairs.shape}")
    return pairs


def pairwise_codes(
    segmentation_patches: np.ndarray,
    *,
    pairs: int | np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The AE bit vectors (v_1, ..., v_L) of eq. 3.4.1, before PCA.

    Args:
      segmentation_patches: (K, N, N) integer segment labels S(P), or (K, A, N, N) with one
        segmentation per annotator (the bits are then averaged over the A annotators).
      pairs: which pixel pairs, see `pair_indices` (default: all C(N^2, 2) of them).
      seed: for a random subset of pairs.

    Returns:
      (K, L) uint8 with v_i = 1{S(P)[p_l] = S(P)[p_m]} for the i-th pair (l, m), or float32
      fractions for a stack of annotators.
    """
    seg = np.asarray(segmentation_patches)
    if seg.ndim not in (3, 4) or seg.shape[-1] != seg.shape[-2]:
        raise ValueError(f"segmentation patches must be (K, N, N) or (K, A, N, N), got {seg.shape}")
    first, second = pair_indices(seg.shape[-1], pairs, seed)
    flat = seg.reshape(*seg.shape[:-2], -1)
    bits = flat[..., first] == flat[..., second]  # eq. (3.4.1)
    if seg.ndim == 4:
        return bits.mean(axis=1, dtype=np.float32)
    return bits.astype(np.uint8)
