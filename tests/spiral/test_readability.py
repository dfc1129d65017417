"""The digit reader that scores SPIRAL's paintings (`thesis_jax.spiral.readability`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.data.mnist5k import load_mnist_5k
from thesis_jax.spiral import readability
from thesis_jax.spiral.envs import jax_paint, spec


@pytest.fixture(scope="module")
def reader():
    return readability.load_reader()


@pytest.fixture(scope="module")
def held_out():
    """The 1,000 real test digits the reader never saw, as SPIRAL targets (64x64, ink dark)."""
    digits, labels = load_mnist_5k("test")
    canvases = 1.0 - digits.astype(np.float32)[..., None] / 255.0
    big = jax.image.resize(canvases, (len(canvases), 64, 64, 1), "linear")
    return np.asarray(big), labels


def _random_strokes(count: int, seed: int) -> np.ndarray:
    """Episodes of 10 uniformly random JaxPaint actions on a 64x64 canvas."""
    config = spec.PaintConfig(canvas_size=64, grid_size=32, episode_length=10, grayscale=True)
    sizes = [n for _, n in spec.paint_action_spec(config).items()]
    state = jax_paint.init_state(config, count)
    render = jax.jit(jax_paint.render_step, static_argnums=0)
    rng = np.random.default_rng(seed)
    for _ in range(10):
        actions = np.stack([rng.integers(0, n, count) for n in sizes], -1)
        actions[:, 2] = 1  # always paint (flag 1), never jump
        state = render(config, state, jnp.asarray(actions, jnp.int32))
    return np.asarray(state.canvas)


def test_shipped_reader_reads_held_out_real_digits(reader, held_out):
    canvases, labels = held_out
    accuracy = float(np.mean(readability.read(reader, canvases) == labels))
    assert accuracy >= 0.97  # 0.981 when it was trained
    assert reader.heldout_accuracy == pytest.approx(accuracy, abs=0.002)


def test_blank_canvases_and_random_strokes_do_not_read_as_digits(reader, held_out):
    _, labels = held_out
    blank = np.ones((100, 64, 64, 1), np.float32)
    strokes = _random_strokes(100, seed=0)
    assert np.mean(strokes < 0.5) > 0.02  # the random episodes did paint
    for canvases in (blank, strokes):
        metrics = readability.reconstruction_metrics(
            reader, canvases, held_out[0][:100], labels[:100]
        )
        assert metrics["readability"] <= 0.2
        assert metrics["readability_targets"] >= 0.95
    assert readability.sample_metrics(reader, blank)["digit_fraction"] == 0.0
    assert readability.sample_metrics(reader, strokes)["digit_fraction"] <= 0.3


def test_perfect_reconstructions_score_the_ceiling_and_samples_their_classes(reader, held_out):
    canvases, labels = held_out
    metrics = readability.reconstruction_metrics(reader, canvases, canvases, labels)
    assert metrics["readability"] == metrics["readability_targets"]
    samples = readability.sample_metrics(reader, canvases)
    assert samples["digit_fraction"] >= 0.97 and samples["digit_confidence"] >= 0.9
    assert samples["class_entropy"] == pytest.approx(np.log2(10), abs=0.05)  # 100 of each
    ones = canvases[labels == 1]
    assert readability.sample_metrics(reader, ones)["class_entropy"] < 0.5  # one class: collapse
    histogram = readability.class_histogram(readability.read(reader, canvases))
    assert histogram.shape == (11,) and histogram.sum() == len(canvases)


def test_reader_takes_any_canvas_size_and_colour(reader, held_out):
    canvases, labels = held_out
    small = np.asarray(jax.image.resize(canvases[:50], (50, 32, 32, 1), "linear"))
    colour = np.repeat(canvases[:50], 3, axis=-1)
    for version in (small, colour):
        assert np.mean(readability.read(reader, version) == labels[:50]) >= 0.9
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        readability.read(reader, canvases[0])


@pytest.mark.slow  # trains the reader twice (about a minute on 2 cores)
def test_training_is_deterministic_and_reads_like_the_shipped_reader(reader, held_out):
    """The same machine trains the same parameters twice. Another CPU rounds XLA's arithmetic
    differently and 3,000 Adam steps carry that into the parameters (on a new 2-core machine the
    retrained parameters missed the shipped ones by more than their 2e-3 float16 tolerance, also
    at the commit that shipped them), so across machines the retrained reader is
    held to the shipped one's behaviour: its accuracy, and the classes it reads in held-out digits
    and in random strokes."""
    first, second = readability.train_reader(0), readability.train_reader(0)
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.heldout_accuracy >= 0.97
    assert abs(first.heldout_accuracy - reader.heldout_accuracy) <= 0.01
    canvases = np.concatenate([held_out[0], _random_strokes(200, seed=3)])
    agreement = np.mean(readability.read(first, canvases) == readability.read(reader, canvases))
    assert agreement >= 0.97, agreement
