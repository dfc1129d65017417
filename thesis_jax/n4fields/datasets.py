"""The images and annotations of the N4-Fields experiments (thesis sec. 3.4).

`load_split` reads one split of a preset's dataset as an `EdgeData`: the procedural `shapes`
(offline, exact boundaries, several annotators), BSDS500 and NYUD v2 (boundaries, one map per
annotator, and for the AE encoding of eq. 3.4.1 the segmentations) or DRIVE (vessels inside the
field of view). `qualitative_images` gives pictures without annotations to look at.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from thesis_jax import edges
from thesis_jax.data.locations import beside_repository

DATASETS = ("shapes", "bsds", "nyud", "drive")


@dataclasses.dataclass(frozen=True)
class EdgeData:
    """One split: float32 (H, W, C) images in [0, 1] and their annotations.

    annotations: per image an (A, H, W) bool stack (BSDS boundaries, one per annotator; DRIVE
    vessels with A = 1). segmentations: per image (A, H, W) labels, for the AE encoding. masks:
    DRIVE's fields of view.
    """

    images: list[np.ndarray]
    annotations: list[np.ndarray]
    names: list[str]
    segmentations: list[np.ndarray] | None = None
    masks: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def head(self, count: int) -> EdgeData:
        """The first `count` images (all when count is 0)."""
        if not count or count >= len(self):
            return self
        cut = slice(0, count)
        return EdgeData(
            images=self.images[cut],
            annotations=self.annotations[cut],
            names=self.names[cut],
            segmentations=None if self.segmentations is None else self.segmentations[cut],
            masks=None if self.masks is None else self.masks[cut],
        )


def as_float(image: np.ndarray) -> np.ndarray:
    """uint8 pixels scaled to [0, 1], other types as float32."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def load_split(
    config: ml_collections.ConfigDict, split: str, count: int, segmentations: bool
) -> EdgeData:
    """One split of `config.dataset`, its first `count` images (0: all). Splits joined by "+"
    ("train+val": the shipped edge model's) are read one after the other.

    `config.data_dir` is read as given, or beside the repository when relative and missing
    (the presets name `../shared/data/...`). A missing dataset raises `DatasetNotFoundError`
    (a FileNotFoundError) that says how to prepare it.
    """
    if "+" in split:
        parts = [load_split(config, part, 0, segmentations) for part in split.split("+")]
        joined = EdgeData(
            images=[im for p in parts for im in p.images],
            annotations=[a for p in parts for a in p.annotations],
            names=[n for p in parts for n in p.names],
            segmentations=None
            if not segmentations
            else [s for p in parts for s in p.segmentations],
            masks=None if parts[0].masks is None else [m for p in parts for m in p.masks],
        )
        return joined.head(count)
    if config.dataset == "shapes":
        from thesis_jax.data import load_shapes

        data = load_shapes(
            split, num_images=count or None, seed=config.seed, size=tuple(config.shapes_size)
        )
        return EdgeData(
            images=list(data.images),
            annotations=[np.stack(a) for a in data.annotations],
            names=[f"{split}_{i:03d}" for i in range(len(data))],
            segmentations=list(data.annotator_segmentations) if segmentations else None,
        )
    root = beside_repository(config.data_dir)
    if config.dataset in ("bsds", "nyud"):
        if config.dataset == "bsds":
            images, truths, names = edges.load_bsds500(root, split)
        else:
            images, truths, names = edges.load_nyud(root, split)
        data = EdgeData(
            images=[as_float(im) for im in images],
            annotations=[np.stack(t).astype(bool) for t in truths],
            names=list(names),
        ).head(count)
        if segmentations:
            folder = edges.bsds_data_dir(root) / "groundTruth" / split
            segs = [
                np.stack(edges.load_bsds_segmentations(folder / f"{name}.mat"))
                for name in data.names
            ]
            data = dataclasses.replace(data, segmentations=segs)
        return data
    if config.dataset == "drive":
        if segmentations:
            raise ValueError("DRIVE has no segmentations: the AE encoding (n4_ae) needs them")
        images, vessels, masks, names = edges.load_drive(root, split)
        return EdgeData(
            images=[as_float(im) for im in images],
            annotations=[v[None] for v in vessels],
            names=list(names),
            masks=list(masks),
        ).head(count)
    raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {DATASETS}")


def qualitative_images(config: ml_collections.ConfigDict) -> list[np.ndarray]:
    """Pictures without annotations to look at (sec. 3.4's qualitative results): the embedded
    photos for the edge presets, scikit-image's fundus photograph for DRIVE (scaled to DRIVE's
    584-pixel height); none for RGBD models."""
    from skimage.transform import resize

    count = config.qualitative_images
    if not count or config.dataset == "nyud":
        return []
    if config.dataset == "drive":
        import skimage.data

        photos = [skimage.data.retina()]
        side = 584
    else:
        from thesis_jax.data.embedded import embedded_photos

        photos = embedded_photos()
        side = 321 if config.dataset == "bsds" else min(config.shapes_size)
    out = []
    for photo in photos[:count]:
        scale = side / min(photo.shape[:2])
        shape = (round(photo.shape[0] * scale), round(photo.shape[1] * scale))
        out.append(resize(as_float(photo), shape, anti_aliasing=True).astype(np.float32))
    return out
