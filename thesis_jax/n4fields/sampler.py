"""Training patches for the N4-Fields CNN: sampling with augmentation, batches (sec. 3.3.3).

Mean subtraction: `channel_mean` is the per-channel mean of the training images ("across all
images", sec. 3.3.3); `init` makes it a constant of the network, so patches here hold raw
pixel values.

Augmentation (sec. 3.3.3): `sample_patches` draws patch centres uniformly over the training
pixels and turns each patch by a random angle (any angle by default, or multiples of 90 degrees)
and mirrors half of them left-right, the annotation patch turning with it; numpy, deterministic
for a seed. `make_batch` turns the samples into the `{image, target}` batch of `train.loss`.

`PatchSampler` does the same on the accelerator. `sample_patches` cuts every patch with numpy
fancy indexing, about half a millisecond per rotated 34 x 34 patch on a laptop core: 70 ms for
a batch of 128, twenty times the time of a training step on a GPU. `PatchSampler` keeps the
training set on the device (each image and its annotator-averaged annotation mirror-padded,
stacked into one canvas) and does the same work in one jitted call: the random draws stay in
numpy (`draw_patch_transforms`, the very draws of `sample_patches`, so a seed gives the same
patches), only the (K,) centres, angles and flips travel, and the sampling grids and gathers
are computed on the device. The patches equal `sample_patches`'s to float32 rounding (the grid
is computed in float32 rather than float64); the annotation is the annotators' mean ("mean"
mode) or one random annotator per patch ("random"), as there. The pairwise (AE) encoding needs
the segmentations and stays with `sample_patches`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from thesis_jax.n4fields import patches as geometry
from thesis_jax.n4fields import targets

ROTATIONS = ("any", "right_angles", "none")
ANNOTATORS = ("mean", "random")
ENCODINGS = ("annotation", "pairwise")


def channel_mean(images: np.ndarray | Sequence[np.ndarray]) -> tuple[float, ...]:
    """The per-channel mean over all pixels of all images (sec. 3.3.3)."""
    images = list(images) if not isinstance(images, np.ndarray) else images
    total = sum(np.asarray(im, np.float64).reshape(-1, im.shape[-1]).sum(0) for im in images)
    count = sum(int(np.prod(im.shape[:-1])) for im in images)
    return tuple(float(v) for v in total / count)


def _as_generator(rng: int | np.random.Generator) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def draw_patch_transforms(
    rng: int | np.random.Generator,
    sizes: np.ndarray,
    num: int,
    *,
    rotation: str = "any",
    flip: bool = True,
) -> tuple[np.ndarray, ...]:
    """The random draws of `sample_patches`: (image index, row, col, angle or None, flip or
    None, annotator draw in [0, 1)), each (num,); images are drawn in proportion to their area,
    so every training pixel is equally likely to be a centre. `PatchSampler` makes the same
    draws, so both give the same patches for a seed."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    gen = _as_generator(rng)
    sizes = np.asarray(sizes, np.int64)
    areas = sizes.prod(axis=1).astype(np.float64)
    image_index = gen.choice(len(sizes), size=num, p=areas / areas.sum())
    rows = np.floor(gen.random(num) * sizes[image_index, 0]).astype(np.int64)
    cols = np.floor(gen.random(num) * sizes[image_index, 1]).astype(np.int64)
    if rotation == "any":
        angles = gen.uniform(0.0, 2 * np.pi, num)
    elif rotation == "right_angles":
        angles = gen.integers(0, 4, num) * (np.pi / 2)
    else:
        angles = None
    flips = gen.random(num) < 0.5 if flip else None
    annotator_draw = gen.random(num)
    return image_index, rows, cols, angles, flips, annotator_draw


def sample_patches(
    images: np.ndarray | Sequence[np.ndarray],
    annotations: Sequence[Any],
    rng: int | np.random.Generator,
    num: int,
    patch: int = 34,
    target: int = targets.ANNOTATION_SIZE,
    *,
    segmentations: Sequence[np.ndarray] | None = None,
    rotation: str = "any",
    flip: bool = True,
    annotator: str = "mean",
) -> dict[str, np.ndarray]:
    """Random training patches with their annotation patches (sec. 3.3.3 augmentation).

    Args:
      images: (N, H, W, C) or a list of (H, W, C) images (sizes may differ).
      annotations: per image, a (H, W) boundary map, an (A, H, W) stack or a list of A maps.
      rng: a seed or a numpy Generator; the same seed gives the same patches.
      num: how many patches.
      patch: M, the input patch side.
      target: N, the annotation patch side.
      segmentations: per image, a (H, W) or (A, H, W) segmentation (one per annotator, in the
        order of `annotations`), for the alternative encoding.
      rotation: "any" (uniform angle), "right_angles" (multiples of 90 degrees) or "none".
      flip: mirror half of the patches left-right.
      annotator: "mean" (average the annotators' maps) or "random" (one annotator per patch).

    Returns:
      dict with `image` (num, M, M, C) float32, `annotation` (num, N, N) float32 in [0, 1],
      `center` (num, 3) int64 (image, row, col), and, with `segmentations`, `segmentation`
      (num, N, N) int32: one annotator's (the drawn one; a random one for "mean").
    """
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    if annotator not in ANNOTATORS:
        raise ValueError(f"annotator must be one of {ANNOTATORS}, got {annotator!r}")
    images = list(images)
    if len(annotations) != len(images):
        raise ValueError(f"{len(images)} images but {len(annotations)} annotation entries")
    if segmentations is not None and len(segmentations) != len(images):
        raise ValueError(f"{len(images)} images but {len(segmentations)} segmentations")
    sizes = np.array([im.shape[:2] for im in images], np.int64)
    image_index, rows, cols, angles, flips, annotator_draw = draw_patch_transforms(
        rng, sizes, num, rotation=rotation, flip=flip
    )

    channels = images[0].shape[-1]
    out = {
        "image": np.zeros((num, patch, patch, channels), np.float32),
        "annotation": np.zeros((num, target, target), np.float32),
        "center": np.stack([image_index, rows, cols], axis=1),
    }
    if segmentations is not None:
        out["segmentation"] = np.zeros((num, target, target), np.int32)
    margin = geometry.rotation_margin(max(patch, target))
    for index in np.unique(image_index):
        chosen = np.flatnonzero(image_index == index)
        centers = np.stack([rows[chosen], cols[chosen]], axis=1)
        angle = None if angles is None else angles[chosen]
        mirror = None if flips is None else flips[chosen]
        grids = [
            geometry.sampling_grid(centers, size, angle, mirror, pivot_size=patch)
            for size in (patch, target)
        ]
        (image_rows, image_cols), (ann_rows, ann_cols) = (
            (r + margin, c + margin) for r, c in grids
        )
        padded = geometry.reflect_pad(np.asarray(images[index], np.float32), margin)
        gather = geometry.gather_bilinear if rotation == "any" else geometry.gather_nearest
        out["image"][chosen] = gather(padded, image_rows, image_cols)

        stack = geometry.as_annotator_stack(annotations[index]).astype(np.float32)
        picked = np.floor(annotator_draw[chosen] * stack.shape[0]).astype(np.int64)
        maps = geometry.gather_nearest(
            geometry.reflect_pad(stack.transpose(1, 2, 0), margin), ann_rows, ann_cols
        )  # (k, N, N, A)
        if annotator == "mean":
            out["annotation"][chosen] = maps.mean(-1)
        else:
            out["annotation"][chosen] = np.take_along_axis(
                maps, picked[:, None, None, None], axis=-1
            )[..., 0]
        if segmentations is not None:
            seg = geometry.as_annotator_stack(np.asarray(segmentations[index]))
            if seg.shape[0] not in (1, stack.shape[0]):
                raise ValueError(
                    f"image {index}: {seg.shape[0]} segmentations for {stack.shape[0]} annotators"
                )
            labels = geometry.gather_nearest(
                geometry.reflect_pad(seg.transpose(1, 2, 0), margin), ann_rows, ann_cols
            )
            which = np.minimum(picked, seg.shape[0] - 1)
            out["segmentation"][chosen] = np.take_along_axis(
                labels, which[:, None, None, None], axis=-1
            )[..., 0]
    return out


def make_batch(
    samples: Mapping[str, np.ndarray],
    *,
    head: str = "code",
    pca: targets.PCA | None = None,
    encoding: str = "annotation",
    pairs: int | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{image, target} for `loss` from `sample_patches` output.

    Args:
      samples: `image`, `annotation` and, for the pairwise encoding, `segmentation`.
      head: "code" (target = PCA code), "central" (the centre pixel of the annotation, the
        pixel the input patch is centred on) or "patch" (the 256 annotation pixels).
      pca: the fitted PCA (head "code"): on annotation patches, or on `pairwise_codes`.
      encoding: "annotation" (PCA(A(P)), sec. 3.3.2) or "pairwise" (B(P), eq. 3.4.1).
      pairs: the pixel pairs of the pairwise encoding, as given to `pairwise_codes`.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    on_device = isinstance(samples["annotation"], jax.Array)  # from PatchSampler: keep there
    xp = jnp if on_device else np
    annotation = xp.asarray(samples["annotation"], np.float32)
    count, size = annotation.shape[:2]
    if head == "code":
        if pca is None:
            raise ValueError("head 'code' needs the fitted PCA (fit_pca)")
        if encoding == "pairwise":
            bits = targets.pairwise_codes(samples["segmentation"], pairs=pairs)
            target = pca.encode(bits.astype(np.float32))
        else:
            target = pca.encode(annotation)
    elif head == "central":
        target = annotation[:, size // 2, size // 2, None]
    elif head == "patch":
        target = annotation.reshape(count, -1)
    else:
        raise ValueError(f"unknown head {head!r}; choose one of {targets.HEADS}")
    return {"image": xp.asarray(samples["image"], np.float32), "target": target.astype(np.float32)}


class PatchSampler:
    """Draws augmented (patch, annotation) pairs like `sample_patches`, on the device.

    Args:
      images: (N, H, W, C) or a list of (H, W, C) images (sizes may differ).
      annotations: per image a (H, W) map, an (A, H, W) stack or a list of A maps.
      patch, target: M and N, the input and annotation patch sides.
      rotation, flip, annotator: as `sample_patches`.

    Memory: the canvas holds N x (H_max + 2m) x (W_max + 2m) x C float32 pixels (m = 26 for
    34-pixel patches): 230 MB for the 200 BSDS500 training images, plus the annotations
    (one map each in "mean" mode, A_max of them in "random" mode).
    """

    def __init__(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        annotations: Sequence[Any],
        patch: int = 34,
        target: int = targets.ANNOTATION_SIZE,
        *,
        rotation: str = "any",
        flip: bool = True,
        annotator: str = "mean",
    ):
        if annotator not in ANNOTATORS:
            raise ValueError(f"annotator must be one of {ANNOTATORS}, got {annotator!r}")
        images = list(images)
        if len(annotations) != len(images) or not images:
            raise ValueError(f"{len(images)} images but {len(annotations)} annotation entries")
        self.patch, self.target = patch, target
        self.rotation, self.flip, self.annotator = rotation, flip, annotator
        self.sizes = np.array([im.shape[:2] for im in images], np.int64)
        margin = geometry.rotation_margin(max(patch, target))
        self.margin = margin
        height, width = self.sizes.max(axis=0) + 2 * margin
        channels = images[0].shape[-1]
        stacks = [geometry.as_annotator_stack(a).astype(np.float32) for a in annotations]
        depth = 1 if annotator == "mean" else max(s.shape[0] for s in stacks)
        canvas = np.zeros((len(images), height, width, channels), np.float32)
        labels = np.zeros((len(images), height, width, depth), np.float32)
        for i, (image, stack) in enumerate(zip(images, stacks, strict=True)):
            h, w = image.shape[:2]
            if stack.shape[1:] != (h, w):
                raise ValueError(f"image {i}: annotations {stack.shape[1:]} vs image {(h, w)}")
            canvas[i, : h + 2 * margin, : w + 2 * margin] = geometry.reflect_pad(
                np.asarray(image, np.float32), margin
            )
            maps = stack.mean(0, keepdims=True) if annotator == "mean" else stack
            labels[i, : h + 2 * margin, : w + 2 * margin, : maps.shape[0]] = geometry.reflect_pad(
                maps.transpose(1, 2, 0), margin
            )
        self.num_annotators = np.array([s.shape[0] for s in stacks], np.int32)
        self.images = jax.device_put(canvas)
        self.labels = jax.device_put(labels)
        self.padded_sizes = jax.device_put((self.sizes + 2 * margin).astype(np.int32))

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    def __call__(self, rng: int | np.random.Generator, num: int) -> dict[str, jax.Array]:
        """`num` patches: `image` (num, M, M, C) and `annotation` (num, N, N), device arrays."""
        index, rows, cols, angles, flips, draw = draw_patch_transforms(
            rng, self.sizes, num, rotation=self.rotation, flip=self.flip
        )
        picked = np.floor(draw * self.num_annotators[index]).astype(np.int32)
        if self.annotator == "mean":
            picked = np.zeros_like(picked)
        return _gather_patches(
            self.images,
            self.labels,
            self.padded_sizes,
            jnp.asarray(index, jnp.int32),
            jnp.asarray(np.stack([rows, cols], axis=1) + self.margin, jnp.float32),
            jnp.asarray(np.zeros(num) if angles is None else angles, jnp.float32),
            jnp.asarray(np.zeros(num, bool) if flips is None else flips),
            jnp.asarray(picked),
            patch=self.patch,
            target=self.target,
            bilinear=self.rotation == "any",
        )


def _grid(
    centers: jax.Array, angles: jax.Array, flips: jax.Array, size: int, pivot_size: int
) -> tuple[jax.Array, jax.Array]:
    """`patches.sampling_grid` in float32 (the same transform about the same pivot)."""
    offsets = jnp.asarray(geometry.patch_offsets(size), jnp.float32)
    pivot = float(geometry.patch_offsets(pivot_size).mean())
    rel_rows = jnp.broadcast_to(offsets[:, None] - pivot, (size, size))[None]
    rel_cols = jnp.broadcast_to(offsets[None, :] - pivot, (size, size))[None]
    rel_cols = jnp.where(flips[:, None, None], -rel_cols, rel_cols)
    cos, sin = jnp.cos(angles)[:, None, None], jnp.sin(angles)[:, None, None]
    rel_rows, rel_cols = cos * rel_rows - sin * rel_cols, sin * rel_rows + cos * rel_cols
    rows = centers[:, 0, None, None] + pivot + rel_rows
    cols = centers[:, 1, None, None] + pivot + rel_cols
    return rows, cols


@functools.partial(jax.jit, static_argnames=("patch", "target", "bilinear"))
def _gather_patches(
    images, labels, padded_sizes, index, centers, angles, flips, picked, *, patch, target, bilinear
):
    limits = padded_sizes[index][:, None, None, :]  # (K, 1, 1, 2)
    rows, cols = _grid(centers, angles, flips, patch, patch)
    image_of = index[:, None, None]
    if bilinear:
        top = jnp.clip(jnp.floor(rows).astype(jnp.int32), 0, limits[..., 0] - 2)
        left = jnp.clip(jnp.floor(cols).astype(jnp.int32), 0, limits[..., 1] - 2)
        wy = (rows - top)[..., None]
        wx = (cols - left)[..., None]
        pixels = (1 - wy) * (1 - wx) * images[image_of, top, left]
        pixels += (1 - wy) * wx * images[image_of, top, left + 1]
        pixels += wy * (1 - wx) * images[image_of, top + 1, left]
        pixels += wy * wx * images[image_of, top + 1, left + 1]
    else:
        r = jnp.clip(jnp.rint(rows).astype(jnp.int32), 0, limits[..., 0] - 1)
        c = jnp.clip(jnp.rint(cols).astype(jnp.int32), 0, limits[..., 1] - 1)
        pixels = images[image_of, r, c]
    ann_rows, ann_cols = _grid(centers, angles, flips, target, patch)
    r = jnp.clip(jnp.rint(ann_rows).astype(jnp.int32), 0, limits[..., 0] - 1)
    c = jnp.clip(jnp.rint(ann_cols).astype(jnp.int32), 0, limits[..., 1] - 1)
    annotation = labels[image_of, r, c, picked[:, None, None]]
    return {"image": pixels, "annotation": annotation}
