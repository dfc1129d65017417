"""DRIVE retinal vessel segmentation: data and pixel-level evaluation (thesis sec. 3.4, fig. 3.10).

DRIVE (Staal et al., 2004) holds 40 colour fundus images of 565x584 pixels, 20 for training and
20 for testing, each with a manual vessel segmentation (`1st_manual`; the test set also has a
second observer, `2nd_manual`) and a field-of-view (FOV) mask. The thesis reports
recall/precision curves over all test pixels inside the FOV (fig. 3.10). `evaluate_vessels` pools
the FOV pixels of every image and gives the precision/recall and ROC curves over thresholds, the
best F1 with its threshold, the area under the PR curve (average precision and the trapezoidal
area) and under the ROC curve.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thesis_jax.data.errors import DatasetNotFoundError

DRIVE_URL = "https://drive.grand-challenge.org/"

_DRIVE_HOW_TO = f"""\
Download DRIVE (training.zip and test.zip) from {DRIVE_URL} (registration required) and unzip
both into one folder, giving
  DRIVE/training/{{images/*_training.tif, 1st_manual/*_manual1.gif, mask/*_training_mask.gif}}
  DRIVE/test/{{images/*_test.tif, 1st_manual/*_manual1.gif, 2nd_manual/*_manual2.gif,
              mask/*_test_mask.gif}}
Then pass root=<...>/DRIVE.
"""


def _pooled(predictions, ground_truths, masks) -> tuple[np.ndarray, np.ndarray]:
    if not (len(predictions) == len(ground_truths) == len(masks)):
        raise ValueError(
            f"got {len(predictions)} predictions, {len(ground_truths)} ground truths and "
            f"{len(masks)} masks"
        )
    if len(predictions) == 0:
        raise ValueError("predictions must not be empty")
    scores, labels = [], []
    for i, (prediction, truth, mask) in enumerate(
        zip(predictions, ground_truths, masks, strict=True)
    ):
        prediction, truth, mask = np.asarray(prediction), np.asarray(truth), np.asarray(mask)
        if not (prediction.shape == truth.shape == mask.shape) or prediction.ndim != 2:
            raise ValueError(
                f"image {i}: prediction {prediction.shape}, ground truth {truth.shape} and mask "
                f"{mask.shape} must be one 2-D shape"
            )
        inside = mask.astype(bool)
        scores.append(prediction[inside].astype(np.float64))
        labels.append(truth[inside].astype(bool))
    return np.concatenate(scores), np.concatenate(labels)


def _counts_at(scores, labels, thresholds):
    """True and false positives of `score >= t` for each threshold t."""
    order = np.sort(scores[labels])
    negatives = np.sort(scores[~labels])
    tp = order.size - np.searchsorted(order, thresholds, side="left")
    fp = negatives.size - np.searchsorted(negatives, thresholds, side="left")
    return tp.astype(np.float64), fp.astype(np.float64)


def evaluate_vessels(
    predictions: Sequence[np.ndarray],
    ground_truths: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    thresholds: int | Sequence[float] | None = None,
) -> dict[str, Any]:
    """Pixel-level PR / ROC evaluation inside the field of view, pooled over images.

    Args:
      predictions: N (H, W) vessel probabilities (any real scores).
      ground_truths: N (H, W) binary vessel maps.
      masks: N (H, W) binary FOV masks; pixels outside are ignored.
      thresholds: None for every distinct score (exact curves and areas), a count n for
        `linspace(0, 1, n)`, or the thresholds themselves. A pixel is positive when
        `score >= threshold`.

    Returns:
      dict with `thresholds`, `precision`, `recall`, `fpr` (ascending thresholds), `f1`,
      `best_f1`, `best_threshold`, `best_precision`, `best_recall`, `average_precision`
      (sum of precision times recall increments), `pr_auc` (trapezoidal, from recall 0 at the
      first precision), `roc_auc` (trapezoidal, = the Mann-Whitney statistic when exact),
      `positive_rate` and `pixels`.
    """
    scores, labels = _pooled(predictions, ground_truths, masks)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("the FOV pixels must hold both vessel and background pixels")
    if thresholds is None:
        values = np.unique(scores)
    elif isinstance(thresholds, (int, np.integer)):
        values = np.linspace(0.0, 1.0, int(thresholds))
    else:
        values = np.sort(np.asarray(thresholds, dtype=np.float64).reshape(-1))
    tp, fp = _counts_at(scores, labels, values)
    recall = tp / positives
    fpr = fp / negatives
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    total = precision + recall
    f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    best = int(np.argmax(f1))

    # Curves from the highest threshold down: recall rises from (near) 0 to (near) 1.
    r, p = recall[::-1], precision[::-1]
    average_precision = float(np.sum(np.diff(np.concatenate([[0.0], r])) * p))
    pr_auc = float(np.trapezoid(np.concatenate([[p[0]], p]), np.concatenate([[0.0], r])))
    roc_x = np.concatenate([[0.0], fpr[::-1], [1.0]])
    roc_y = np.concatenate([[0.0], recall[::-1], [1.0]])
    roc_auc = float(np.trapezoid(roc_y, roc_x))
    return {
        "thresholds": values,
        "precision": precision,
        "recall": recall,
        "fpr": fpr,
        "f1": f1,
        "best_f1": float(f1[best]),
        "best_threshold": float(values[best]),
        "best_precision": float(precision[best]),
        "best_recall": float(recall[best]),
        "average_precision": average_precision,
        "pr_auc": pr_auc,
        "roc_auc": roc_auc,
        "positive_rate": positives / labels.size,
        "pixels": int(labels.size),
    }


def _read_binary(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 127


def load_drive(
    root: str | os.PathLike, split: str, annotator: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Images, manual vessel maps and FOV masks of a DRIVE split.

    Args:
      root: the DRIVE folder holding training/ and test/.
      split: "training" (ids 21-40) or "test" (ids 01-20); "train" is accepted for "training".
      annotator: 1 (`1st_manual`) or 2 (`2nd_manual`, test only).

    Returns:
      (images, vessels, masks, names): uint8 (N, 584, 565, 3), bool (N, 584, 565) twice, and
      the ids ("21", ...), sorted.
    """
    from PIL import Image

    split = {"train": "training"}.get(split, split)
    if split not in ("training", "test"):
        raise ValueError(f"split must be 'training' or 'test', got {split!r}")
    if annotator not in (1, 2) or (annotator == 2 and split != "test"):
        raise ValueError(f"annotator must be 1, or 2 for the test split; got {annotator}")
    base = Path(root).expanduser() / split
    image_dir = base / "images"
    paths = sorted(image_dir.glob(f"*_{split}.tif")) if image_dir.is_dir() else []
    if not paths:
        raise DatasetNotFoundError(
            f"DRIVE {split} images", [image_dir / f"*_{split}.tif"], _DRIVE_HOW_TO
        )
    images, vessels, masks, names = [], [], [], []
    for path in paths:
        name = path.name.split("_")[0]
        manual = base / f"{annotator}{'st' if annotator == 1 else 'nd'}_manual"
        manual = manual / f"{name}_manual{annotator}.gif"
        mask = base / "mask" / f"{name}_{split}_mask.gif"
        for needed in (manual, mask):
            if not needed.is_file():
                raise DatasetNotFoundError(f"DRIVE file {needed.name}", [needed], _DRIVE_HOW_TO)
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB")))
        vessels.append(_read_binary(manual))
        masks.append(_read_binary(mask))
        if not (images[-1].shape[:2] == vessels[-1].shape == masks[-1].shape):
            raise ValueError(f"DRIVE {name}: image, manual and mask sizes differ")
        names.append(name)
    return np.stack(images), np.stack(vessels), np.stack(masks), names
