"""BSDS500 readers (the BSR archive layout): images, boundary maps, segmentations, PNG maps.

The thesis evaluates on BSDS500 (Arbeláez et al., 2011; sec. 3.4): 200 training, 100
validation and 200 test images, each with about five human segmentations stored as
`groundTruth/<split>/<id>.mat` cells holding `Segmentation` and `Boundaries`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from thesis_jax.data.errors import DatasetNotFoundError

BSR_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"

_BSDS_HOW_TO = f"""\
On a connected machine:
  wget {BSR_URL}
  tar xzf BSR_bsds500.tgz          # -> BSR/BSDS500/data/{{images,groundTruth}}/{{train,val,test}}
Then pass root=<...>/BSR (or BSR/BSDS500/data, or any folder holding images/ and groundTruth/).
"""


def _load_mat_field(mat_path: str | os.PathLike, field: str) -> list[np.ndarray]:
    path = Path(mat_path)
    if not path.is_file():
        raise DatasetNotFoundError(f"BSDS500 ground truth {path.name}", [path], _BSDS_HOW_TO)
    try:
        cells = scipy.io.loadmat(str(path))["groundTruth"]
        maps = [np.asarray(cells.flat[k][field][0, 0]) for k in range(cells.size)]
    except Exception as error:
        raise ValueError(f"{path}: not a BSDS500 groundTruth .mat file ({error})") from error
    if not maps or any(m.ndim != 2 for m in maps):
        raise ValueError(f"{path}: groundTruth{{k}}.{field} must be non-empty 2-D arrays")
    return maps


def load_bsds_ground_truth(mat_path: str | os.PathLike) -> list[np.ndarray]:
    """The annotators' boundary maps (`groundTruth{k}.Boundaries`) of one image, as bool."""
    return [m.astype(bool) for m in _load_mat_field(mat_path, "Boundaries")]


def load_bsds_segmentations(mat_path: str | os.PathLike) -> list[np.ndarray]:
    """The annotators' label maps (`groundTruth{k}.Segmentation`, 1-based) of one image."""
    return [m.astype(np.int32) for m in _load_mat_field(mat_path, "Segmentation")]


def load_boundary_png(path: str | os.PathLike) -> np.ndarray:
    """An edge map stored as an 8-bit PNG, as the benchmark reads it: `double(imread) / 255`."""
    from PIL import Image

    with Image.open(path) as image:
        values = np.asarray(image)
    if values.ndim != 2:
        raise ValueError(f"{path}: a boundary PNG must be grayscale, got shape {values.shape}")
    return values.astype(np.float64) / (65535.0 if values.dtype == np.uint16 else 255.0)


def bsds_data_dir(root: str | os.PathLike) -> Path:
    """The folder holding images/ and groundTruth/ under `root` (BSR/, BSR/BSDS500/data or it)."""
    root = Path(root).expanduser()
    candidates = [root, root / "data", root / "BSDS500" / "data", root / "BSR" / "BSDS500" / "data"]
    for candidate in candidates:
        if (candidate / "images").is_dir() and (candidate / "groundTruth").is_dir():
            return candidate
    raise DatasetNotFoundError(
        "BSDS500 (images/ and groundTruth/)", [c / "groundTruth" for c in candidates], _BSDS_HOW_TO
    )


def load_bsds500(
    root: str | os.PathLike, split: str
) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[str]]:
    """Images, boundary annotations and ids of a BSDS500 split.

    Args:
      root: `BSR/`, `BSR/BSDS500/data`, or a folder with images/ and groundTruth/.
      split: "train", "val" or "test".

    Returns:
      (images, ground_truths, names): uint8 (H, W, 3) images (481x321 or 321x481), per image
      the list of boolean boundary maps (one per annotator), and the image ids, sorted.
    """
    from PIL import Image

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    data = bsds_data_dir(root)
    image_dir, gt_dir = data / "images" / split, data / "groundTruth" / split
    names = sorted(p.stem for p in image_dir.glob("*.jpg")) if image_dir.is_dir() else []
    if not names:
        raise DatasetNotFoundError(
            f"BSDS500 images, split {split!r}", [image_dir / "*.jpg"], _BSDS_HOW_TO
        )
    images, ground_truths = [], []
    for name in names:
        with Image.open(image_dir / f"{name}.jpg") as image:
            images.append(np.asarray(image.convert("RGB")))
        ground_truth = load_bsds_ground_truth(gt_dir / f"{name}.mat")
        if any(g.shape != images[-1].shape[:2] for g in ground_truth):
            raise ValueError(f"{gt_dir / name}.mat: boundary maps do not match the image size")
        ground_truths.append(ground_truth)
    return images, ground_truths, names
