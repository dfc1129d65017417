"""Fixtures for the N4-Fields tests: a narrow copy of the fig. 3.3 network and a tiny shapes set."""

import numpy as np
import pytest

from tests.n4fields import tiny
from thesis_jax.data import load_shapes
from thesis_jax.n4fields import Architecture


@pytest.fixture(scope="session")
def tiny_arch() -> Architecture:
    return tiny.tiny_arch("code")


@pytest.fixture(scope="session")
def shapes_data():
    """Three 48 x 64 procedural images with five annotators each."""
    return load_shapes("train", num_images=3, size=(48, 64), textures="procedural")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
