"""Readers for the traffic-sign domains of thesis sec. 5.4.4: Syn Signs (source) and GTSRB (target).

Both read a local copy in the public archive layout and return uint8 (N, size, size, 3) images
and int32 labels (the 43 GTSRB classes, which Syn Signs shares). The thesis feeds 40x40 crops to
the GTSRB network (the single-CNN baseline of Ciresan et al., 2012).

GTSRB (Stallkamp et al., 2012), from the three official zips
(GTSRB_Final_Training_Images.zip, GTSRB_Final_Test_Images.zip, GTSRB_Final_Test_GT.zip) unzipped
into one folder:

    GTSRB/Final_Training/Images/000NN/*.ppm     39,209 training images, class NN
    GTSRB/Final_Training/Images/000NN/GT-000NN.csv
    GTSRB/Final_Test/Images/*.ppm               12,630 test images
    GTSRB/GT-final_test.csv                     test labels (from GTSRB_Final_Test_GT.zip)

The CSVs are semicolon-separated with the header
`Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`. The ROI corners are inclusive pixel
coordinates of the sign inside a ~10% (at least 5 px) border; images are cropped to the ROI
before resizing. `Final_Test/Images/GT-final_test.test.csv` in the test-images zip has no
ClassId column, so the labels must come from GTSRB_Final_Test_GT.zip.

Syn Signs (Moiseev et al., "Evaluation of traffic sign recognition methods trained on
synthetically generated data", ACIVS 2013; 100,000 images) is distributed as
`synthetic_data.zip`, which unzips to

    synthetic_data/train_labelling.txt          one line per image: "<path> <class id> <n>"
    synthetic_data/train/*.png                  40x40 PNG images, <path> is relative to
                                                synthetic_data/ (e.g. "train/1.png")

The third column is not documented by the distribution and is ignored; the images are already
cropped to the sign, so there is no ROI. Sources for this layout: the README and
`prepare_synsigns.py` of Britefury/self-ensemble-visual-domain-adapt (French et al., ICLR 2018),
which download from http://graphics.cs.msu.ru/en/node/1337/, and other public DANN loaders that
parse lines such as "train/1.png 21 0" the same way.
"""

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from thesis_jax.data.errors import DatasetNotFoundError

GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
GTSRB_ZIPS = (
    "GTSRB_Final_Training_Images.zip",
    "GTSRB_Final_Test_Images.zip",
    "GTSRB_Final_Test_GT.zip",
)
SYN_SIGNS_URL = "http://graphics.cs.msu.ru/en/node/1337/"
NUM_SIGN_CLASSES = 43

_GTSRB_HOW_TO = (
    "Download (on a connected machine)\n"
    + "".join(f"  {GTSRB_URL}{name}\n" for name in GTSRB_ZIPS)
    + "and unzip all three into one folder; pass the `GTSRB` folder (or its parent). Layout:\n"
    "  GTSRB/Final_Training/Images/000NN/{*.ppm, GT-000NN.csv}\n"
    "  GTSRB/Final_Test/Images/*.ppm\n"
    "  GTSRB/GT-final_test.csv"
)
_SYN_SIGNS_HOW_TO = (
    f"Download synthetic_data.zip (Syn Signs, Moiseev et al. 2013) from {SYN_SIGNS_URL}\n"
    "on a connected machine and unzip it; pass the folder that holds `synthetic_data/` (or\n"
    "`synthetic_data` itself). Layout:\n"
    "  synthetic_data/train_labelling.txt  lines '<path> <class id> <n>', e.g. 'train/1.png 21 0'\n"
    "  synthetic_data/train/*.png"
)


def _load_resized(path: Path, size: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        if box is not None:
            image = image.crop(box)
        image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image)


def _check_size(size: int) -> None:
    if not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _read_gtsrb_csv(
    csv_path: Path, image_dir: Path, size: int, crop_to_roi: bool
) -> tuple[list[np.ndarray], list[int]]:
    images, labels = [], []
    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file, delimiter=";"))
    if rows and "ClassId" not in rows[0]:
        raise DatasetNotFoundError(
            f"GTSRB labels (a ClassId column in {csv_path.name})",
            [csv_path],
            _GTSRB_HOW_TO,
        )
    for row in rows:
        box = None
        if crop_to_roi:
            x1, y1, x2, y2 = (int(row[key]) for key in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))
            box = (x1, y1, x2 + 1, y2 + 1)
        image_path = image_dir / row["Filename"]
        if not image_path.is_file():
            raise DatasetNotFoundError(
                f"GTSRB image {row['Filename']} listed in {csv_path.name}",
                [image_path],
                _GTSRB_HOW_TO,
            )
        images.append(_load_resized(image_path, size, box))
        labels.append(int(row["ClassId"]))
    return images, labels


def _stack(images: list[np.ndarray], labels: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0,), np.int32)
    return np.stack(images), np.asarray(labels, np.int32)


def load_gtsrb(
    root: str | Path, split: str = "train", size: int = 40, crop_to_roi: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """GTSRB from a local folder in the official layout (see the module docstring).

    Args:
      root: the `GTSRB` folder (holding `Final_Training/`) or its parent.
      split: "train" (class folders, in class order) or "test" (in CSV order).
      size: output side; each sign is cropped to its ROI, then resized bilinearly.
      crop_to_roi: crop to the annotated ROI first (the usual protocol).

    Returns:
      images: uint8 (N, size, size, 3); labels: int32 (N,) in 0..42.

    Raises:
      DatasetNotFoundError: the split's images or annotation CSVs are missing.
    """
    _check_size(size)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser()
    bases = [root, root / "GTSRB"]
    if split == "train":
        tried = [base / "Final_Training" / "Images" for base in bases]
        for images_dir in tried:
            class_dirs = sorted(path for path in images_dir.glob("[0-9]" * 5) if path.is_dir())
            if not class_dirs:
                continue
            images, labels = [], []
            for class_dir in class_dirs:
                csv_path = class_dir / f"GT-{class_dir.name}.csv"
                if not csv_path.is_file():
                    raise DatasetNotFoundError(
                        f"GTSRB annotations for class {class_dir.name}", [csv_path], _GTSRB_HOW_TO
                    )
                class_images, class_labels = _read_gtsrb_csv(csv_path, class_dir, size, crop_to_roi)
                images += class_images
                labels += class_labels
            return _stack(images, labels, size)
        raise DatasetNotFoundError(
            "GTSRB training images (000NN class folders)", tried, _GTSRB_HOW_TO
        )

    tried = []
    for base in bases:
        images_dir = base / "Final_Test" / "Images"
        candidates = [
            base / "GT-final_test.csv",
            base / "Final_Test" / "GT-final_test.csv",
            images_dir / "GT-final_test.csv",
        ]
        tried += candidates
        if not images_dir.is_dir():
            continue
        for csv_path in candidates:
            if csv_path.is_file():
                images, labels = _read_gtsrb_csv(csv_path, images_dir, size, crop_to_roi)
                return _stack(images, labels, size)
    raise DatasetNotFoundError(
        "GTSRB test set (Final_Test/Images/*.ppm with GT-final_test.csv)", tried, _GTSRB_HOW_TO
    )


def load_syn_signs(root: str | Path, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Syn Signs (100,000 synthetic signs) from a local unzipped `synthetic_data.zip`.

    Args:
      root: the folder holding `synthetic_data/`, or `synthetic_data` itself.
      size: output side (the images are 40x40; other sizes are resized bilinearly).

    Returns:
      images: uint8 (N, size, size, 3) in file order; labels: int32 (N,) in 0..42.

    Raises:
      DatasetNotFoundError: `train_labelling.txt` or an image it lists is missing.
    """
    _check_size(size)
    root = Path(root).expanduser()
    tried = [root / "synthetic_data" / "train_labelling.txt", root / "train_labelling.txt"]
    labelling = next((path for path in tried if path.is_file()), None)
    if labelling is None:
        raise DatasetNotFoundError("Syn Signs (train_labelling.txt)", tried, _SYN_SIGNS_HOW_TO)
    images, labels = [], []
    with open(labelling) as file:
        for number, line in enumerate(file, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or not fields[1].isdigit():
                raise ValueError(
                    f"{labelling}:{number}: expected '<path> <class id> ...': {line!r}"
                )
            image_path = labelling.parent / fields[0]
            if not image_path.is_file():
                raise DatasetNotFoundError(
                    f"Syn Signs image {fields[0]} listed in {labelling.name}",
                    [image_path],
                    _SYN_SIGNS_HOW_TO,
                )
            label = int(fields[1])
            if label >= NUM_SIGN_CLASSES:
                raise ValueError(f"{labelling}:{number}: class id {label} is not in 0..42")
            images.append(_load_resized(image_path, size, None))
            labels.append(label)
    return _stack(images, labels, size)
