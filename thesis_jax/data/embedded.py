"""Real images that ship inside installed packages, plus the BSDS500 photo reader.

These feed the offline DANN presets (thesis sec. 5.4.4): `sklearn_digits` is an MNIST-like source
domain available without downloads, `embedded_photos` are colour photos for MNIST-M style blends
without BSDS500, and `bsds_photos` reads the BSDS500 photos the thesis blends MNIST-M from.

`sklearn_digits` follows the MNIST convention (LeCun et al., 1998): the digit fills a 20x20 box
centred in a 28x28 frame. scikit-learn's 8x8 digits already fill their box, so each one is
upsampled bilinearly (no anti-aliasing; scikit-image `resize(order=1)`) to `round(size * 20 / 28)`
pixels and zero-padded to `size x size` with the box centred. MNIST centres the digit's centre of
mass rather than its box; for these digits the two differ by under a pixel on average (about
0.8 px vertically, 0.6 px horizontally at size 28).
"""

from pathlib import Path

import numpy as np
from PIL import Image

from thesis_jax.data.errors import DatasetNotFoundError

SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "motorcycle",
)
"""Colour photos of `skimage.data` that ship with scikit-image (no download).

`retina` and `hubble_deep_field` are left out: most of their area is black, and a black patch
turns an MNIST-M blend back into a plain MNIST digit.
"""

BSDS500_URL = (
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
)
BSDS500_SPLITS = ("train", "val", "test")
_BSDS500_LAYOUTS = (
    Path("images"),
    Path("BSR") / "BSDS500" / "data" / "images",
    Path("data") / "images",
)


def sklearn_digits(size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits, placed like MNIST digits.

    Args:
      size: side of the output images; the digit box is `round(size * 20 / 28)` pixels.

    Returns:
      images: float32 (1797, size, size) in [0, 1], ink is 1.
      labels: int32 (1797,) in 0..9.
    """
    if not isinstance(size, int | np.integer) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float64) / 16.0
    box = round(size * 20 / 28)
    upsampled = resize(
        small, (small.shape[0], box, box), order=1, anti_aliasing=False, preserve_range=True
    )
    images = np.zeros((small.shape[0], size, size), np.float32)
    top = (size - box) // 2
    images[:, top : top + box, top : top + box] = np.clip(upsampled, 0.0, 1.0)
    return images, digits.target.astype(np.int32)


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def embedded_photos() -> list[np.ndarray]:
    """Colour photos from scikit-image (`SKIMAGE_PHOTOS`) and scikit-learn (china, flower).

    Only photos that load from the installed packages are returned; nothing is downloaded.

    Returns:
      A list of uint8 (H, W, 3) arrays, each at least 300 pixels on a side.
    """
    from sklearn.datasets import load_sample_images

    photos = []
    for name in SKIMAGE_PHOTOS:
        try:
            photo = _skimage_photo(name)
        except (ImportError, OSError, ValueError, AttributeError):
            continue
        if photo.ndim == 3 and photo.shape[-1] == 3 and photo.dtype == np.uint8:
            photos.append(np.ascontiguousarray(photo))
    photos.extend(np.ascontiguousarray(photo) for photo in load_sample_images().images)
    return photos


def bsds_photos(root: str | Path, split: str = "train") -> list[np.ndarray]:
    """The BSDS500 photos of one split, read in place from a local copy.

    Accepts the folder that holds `images/<split>/*.jpg`, the folder the BSR archive extracts to
    (`BSR/BSDS500/data/images/<split>`), or `BSR/BSDS500` itself (`data/images/<split>`).

    Args:
      root: the local BSDS500 folder.
      split: "train" (200 photos, the ones MNIST-M is blended from), "val" (100) or "test" (200).

    Returns:
      uint8 (H, W, 3) arrays (321x481 or 481x321), sorted by file name.

    Raises:
      DatasetNotFoundError: no folder of jpgs for `split` under `root`.
    """
    if split not in BSDS500_SPLITS:
        raise ValueError(f"split must be one of {BSDS500_SPLITS}, got {split!r}")
    root = Path(root).expanduser()
    tried = [root / layout / split for layout in _BSDS500_LAYOUTS]
    for folder in tried:
        files = sorted(folder.glob("*.jpg"))
        if files:
            return [_read_rgb(path) for path in files]
    raise DatasetNotFoundError(
        f"BSDS500 photos (split {split!r}, *.jpg)",
        tried,
        f"Download {BSDS500_URL} (on a connected machine), extract it with\n"
        f"`tar xzf BSR_bsds500.tgz`, copy the resulting folder here and pass it as the BSDS500\n"
        f"root (`BSR`'s parent, or any folder holding `images/{split}/*.jpg`).",
    )


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
