"""The user's own images from folders: one subfolder per class (labelled), or loose images.

    classes, (images, labels) = load_labelled_folder("cats_and_dogs/", size=32)
    images = load_image_folder("field_photos/", size=32)       # unlabelled, any nesting

Every image is centre-cropped to a square and resized to `size` x `size` RGB uint8 (PIL,
bilinear). A folder that does not exist or holds no images, a class folder that is empty, fewer
than two classes and a file that is not an image are each a `FolderError` (one line, naming the
folder or the file). Hidden files are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thesis_jax.core.errors import UserError
from thesis_jax.core.files import IMAGE_SUFFIXES, image_files


class FolderError(UserError):
    """A folder of images that cannot be used as asked; the message says which and why."""


def _folder(path: str | Path, what: str) -> Path:
    folder = Path(path).expanduser()
    if not str(path):
        raise FolderError(f"{what} is not set: give a folder of images")
    if not folder.is_dir():
        raise FolderError(f"{what} {folder}: no such folder")
    return folder


def load_image(path: Path, size: int) -> np.ndarray:
    """uint8 (size, size, 3): the centred square of the picture, resized."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture = picture.convert("RGB")
            width, height = picture.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            square = picture.crop((left, top, left + side, top + side))
            return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise FolderError(f"cannot read {path}: not an image PIL can read") from None


def load_images(paths: Sequence[Path], size: int, desc: str) -> np.ndarray:
    """uint8 (N, size, size, 3) of `paths`, with a progress bar for long folders."""
    from thesis_jax.core.metrics import progress_bar

    bar = progress_bar(len(paths), desc=desc, unit="image") if len(paths) > 500 else None
    images = []
    for path in paths:
        images.append(load_image(path, size))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)


def class_folders(path: str | Path, what: str, min_classes: int = 2) -> dict[str, list[Path]]:
    """{class name: its images} of a folder with one subfolder per class, classes sorted."""
    folder = _folder(path, what)
    classes = {
        sub.name: image_files(sub, recursive=True)
        for sub in sorted(folder.iterdir())
        if sub.is_dir() and not sub.name.startswith(".")
    }
    if len(classes) < min_classes:
        found = f"only {next(iter(classes))!r}" if classes else "none"
        least = "at least two" if min_classes == 2 else f"at least {min_classes}"
        raise FolderError(
            f"{what} {folder}: needs one subfolder of images per class, {least} ({found})"
        )
    empty = [name for name, paths in classes.items() if not paths]
    if empty:
        raise FolderError(f"{what} {folder}: the class folder {empty[0]!r} holds no images")
    return classes


def load_labelled_folder(
    path: str | Path, size: int, *, what: str = "folder", classes: Sequence[str] | None = None
) -> tuple[list[str], tuple[np.ndarray, np.ndarray]]:
    """(class names, (uint8 images, int32 labels)) of a class-per-subfolder folder. With
    `classes` given (the source's), the folder's class names must be among them (a test folder
    may hold some of them only)."""
    found = class_folders(path, what, min_classes=2 if classes is None else 1)
    names = list(classes) if classes is not None else list(found)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise FolderError(
            f"{what} {path}: class folder {unknown[0]!r} is not one of the source's classes "
            f"({', '.join(names)})"
        )
    paths = [p for name in found for p in found[name]]
    labels = np.asarray([names.index(name) for name in found for _ in found[name]], np.int32)
    return names, (load_images(paths, size, f"read {what}"), labels)


def load_image_folder(path: str | Path, size: int, *, what: str = "folder") -> np.ndarray:
    """uint8 (N, size, size, 3) of every image under a folder, subfolders included."""
    folder = _folder(path, what)
    paths = image_files(folder, recursive=True)
    if not paths:
        raise FolderError(f"{what} {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    return load_images(paths, size, f"read {what}")
