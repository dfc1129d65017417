"""NYU Depth v2 (NYUD) in the BSDS500 format: RGBD images and boundary annotations (sec. 3.4).

The thesis also scores N4-Fields on NYUD v2 (Silberman et al., 2012; table 3.I) with the depth
as a fourth input channel (`Architecture(in_channels=4)`), by the BSDS boundary benchmark on the
split of Gupta, Arbeláez & Malik (CVPR 2013): 1449 labelled 640x480 Kinect frames, 381 train,
414 val and 654 test. The boundaries come from the labels, one annotation per frame, stored as
BSDS500 ground truth. The layout read here:

    <root>/images/{train,val,test}/<id>.png        RGB, 8 bits per channel
    <root>/depth/{train,val,test}/<id>.png         one channel: 16-bit depth in millimetres
                                                   (or an 8-bit depth image)
    <root>/groundTruth/{train,val,test}/<id>.mat   groundTruth{k}.Boundaries, as BSDS500

`root/data/...` is accepted too, as `bsds_data_dir` accepts BSR's nesting. HHA encodings of the
depth (Gupta et al., ECCV 2014) are not read: the network is given the depth itself.

`load_nyud` returns float32 (H, W, 4) RGBD images: RGB divided by 255 and the depth divided by
`DEPTH_SCALE_MM` (10 m, about the Kinect's range) for 16-bit maps or by 255 for 8-bit ones, or
by `depth_scale` when given, and clipped to [0, 1], so that all four channels share one range
and `channel_mean` can centre them alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from thesis_jax.data.errors import DatasetNotFoundError
from thesis_jax.edges.bsds_data import load_bsds_ground_truth

NYUD_URL = "http://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
GUPTA_UTILS_URL = "https://github.com/s-gupta/rgbdutils"
NYUD_SPLITS = ("train", "val", "test")
DEPTH_SCALE_MM = 10_000.0
"""Millimetres that map to depth 1.0 for 16-bit depth maps (10 m; farther values clip to 1)."""

_FOLDERS = ("images", "depth", "groundTruth")

_NYUD_HOW_TO = f"""\
NYUD v2 in the BSDS format is not a download of its own; build it on a connected machine:
  1. Get the labelled set of NYU Depth V2 (nyu_depth_v2_labeled.mat: 1449 RGB frames, depth in
     metres, object labels) from {NYUD_URL}
  2. Convert it with the MATLAB scripts of Gupta, Arbelaez & Malik's NYUD benchmark (CVPR 2013:
     split 381 train / 414 val / 654 test, boundaries from the labels), {GUPTA_UTILS_URL},
     writing every frame of a split as
       <root>/images/<split>/<id>.png        RGB, 8-bit
       <root>/depth/<split>/<id>.png         one channel, 16-bit, millimetres
       <root>/groundTruth/<split>/<id>.mat   groundTruth{{k}}.Boundaries, as in BSDS500
     (an hha/ folder beside them is not read).
Then pass root=<root> (or a folder holding data/ with those three folders).
"""


def _nyud_data_dir(root: str | os.PathLike) -> Path:
    """The folder holding images/, depth/ and groundTruth/: `root` or `root/data`.

    A folder with images/ and groundTruth/ but no depth/ is still returned, so that the missing
    depth maps are named precisely by `load_nyud`.
    """
    root = Path(root).expanduser()
    candidates = [root, root / "data"]
    for needed in (_FOLDERS, ("images", "groundTruth")):
        for candidate in candidates:
            if all((candidate / folder).is_dir() for folder in needed):
                return candidate
    raise DatasetNotFoundError(
        "NYUD v2 in the BSDS format (images/, depth/ and groundTruth/)",
        [c / folder for c in candidates for folder in _FOLDERS],
        _NYUD_HOW_TO,
    )


def _read_png(path: Path) -> np.ndarray:
    """The pixels of a PNG as stored (uint8, or uint16 / int32 for 16-bit grey), or ValueError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "P", "LA", "CMYK", "YCbCr"):
                image = image.convert("RGB" if image.mode != "LA" else "L")
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


def _rgb(path: Path) -> np.ndarray:
    """An 8-bit colour image as float32 (H, W, 3) in [0, 1] (grey images are repeated)."""
    pixels = _read_png(path)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"{path}: want an 8-bit RGB image, got {pixels.dtype} {pixels.shape}")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.shape[2] != 3:
        raise ValueError(f"{path}: want 3 colour channels, got shape {pixels.shape}")
    return pixels.astype(np.float32) / 255.0


def _depth(path: Path, depth_scale: float | None) -> np.ndarray:
    """A single-channel depth map as float32 (H, W) in [0, 1]: value / scale, clipped.

    The scale is `depth_scale` if given, else `DEPTH_SCALE_MM` for 16-bit maps (PIL's modes
    I;16 / I) and 255 for 8-bit ones.
    """
    values = _read_png(path)
    if values.ndim != 2:
        raise ValueError(
            f"{path}: a depth map must have one channel, got shape {values.shape} "
            "(HHA or colour-coded depth is not supported)"
        )
    if values.dtype == np.uint8:
        scale = 255.0
    elif values.dtype.kind in "ui" and values.dtype.itemsize in (2, 4):  # I;16, I;16B, I
        scale = DEPTH_SCALE_MM
    else:
        raise ValueError(f"{path}: want an 8- or 16-bit depth PNG, got {values.dtype}")
    scale = scale if depth_scale is None else depth_scale
    return np.clip(values.astype(np.float32) / np.float32(scale), 0.0, 1.0)


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise DatasetNotFoundError(f"NYUD v2 {what} {path.name}", [path], _NYUD_HOW_TO)


def load_nyud(
    root: str | os.PathLike, split: str, depth_scale: float | None = None
) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[str]]:
    """RGBD images, boundary annotations and ids of a NYUD v2 split in the BSDS format.

    Args:
      root: a folder holding images/, depth/ and groundTruth/ (or data/ with them), see the
        module docstring.
      split: "train", "val" or "test".
      depth_scale: the stored depth value that maps to 1.0; None: `DEPTH_SCALE_MM` (10,000 mm)
        for 16-bit depth PNGs and 255 for 8-bit ones. Deeper values are clipped to 1.

    Returns:
      (images, ground_truths, names): float32 (H, W, 4) RGBD images (RGB / 255, then the
      normalised depth, all in [0, 1]), per image the list of boolean boundary maps (one per
      annotator, `groundTruth{k}.Boundaries`), and the ids, sorted. The ids are those with an
      image or a .mat file in the split; each needs all three files.

    Raises:
      DatasetNotFoundError: the folders, or an image, depth map or .mat file of an id, are
        missing (the message says how to prepare the data).
      ValueError: a file is unreadable or of the wrong kind, or the image, depth and boundary
        sizes of an id differ (the message names the file).
    """
    if split not in NYUD_SPLITS:
        raise ValueError(f"split must be one of {NYUD_SPLITS}, got {split!r}")
    if depth_scale is not None and not depth_scale > 0:
        raise ValueError(f"depth_scale must be positive, got {depth_scale}")
    data = _nyud_data_dir(root)
    image_dir, depth_dir, gt_dir = (data / folder / split for folder in _FOLDERS)
    names = sorted(
        {p.stem for p in image_dir.glob("*.png")} | {p.stem for p in gt_dir.glob("*.mat")}
    )
    if not names:
        raise DatasetNotFoundError(
            f"NYUD v2 images, split {split!r}",
            [image_dir / "*.png", gt_dir / "*.mat"],
            _NYUD_HOW_TO,
        )
    if not depth_dir.is_dir():
        raise DatasetNotFoundError(
            f"NYUD v2 depth maps, split {split!r}", [depth_dir / "*.png"], _NYUD_HOW_TO
        )
    images, ground_truths = [], []
    for name in names:
        image_path, depth_path = image_dir / f"{name}.png", depth_dir / f"{name}.png"
        gt_path = gt_dir / f"{name}.mat"
        _require(image_path, "image")
        _require(depth_path, "depth map")
        _require(gt_path, "ground truth")
        rgb, depth = _rgb(image_path), _depth(depth_path, depth_scale)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(
                f"{depth_path}: depth map is {depth.shape}, but image {image_path.name} is "
                f"{rgb.shape[:2]}"
            )
        ground_truth = load_bsds_ground_truth(gt_path)
        if any(g.shape != rgb.shape[:2] for g in ground_truth):
            shapes = sorted({g.shape for g in ground_truth})
            raise ValueError(
                f"{gt_path}: boundary maps are {shapes}, but image {image_path.name} is "
                f"{rgb.shape[:2]}"
            )
        images.append(np.concatenate([rgb, depth[..., None]], axis=2))
        ground_truths.append(ground_truth)
    return images, ground_truths, names
