"""Known-answer tests of thesis_jax.dann.analysis (proxy A-distance eq. (5.2.2), fig. 5.4 t-SNE)."""

import os

import numpy as np
import pytest
from PIL import Image
from scipy.stats import norm

from thesis_jax.dann.analysis import (
    PANEL_INCHES,
    PLOT_DPI,
    plot_tsne,
    proxy_a_distance,
    tsne_embedding,
)
from thesis_jax.dann.baselines import linear_svm_accuracy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_proxy_a_distance_is_near_zero_for_one_distribution(seed):
    rng = np.random.default_rng(seed)
    source, target = rng.normal(size=(2, 1000, 10))
    assert 0.0 <= proxy_a_distance(source, target, seed=seed) < 0.2


def test_proxy_a_distance_is_two_for_separated_distributions():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(500, 10))
    target = rng.normal(size=(500, 10)) + 5.0
    distance = proxy_a_distance(source, target)
    assert distance > 1.9
    assert distance <= 2.0


def test_proxy_a_distance_grows_with_separation_as_predicted():
    # For N(0, I) vs N(delta e_1, I) the best linear classifier errs with probability
    # Phi(-delta / 2), so eq. (5.2.2) gives zeta = 2 (1 - 2 Phi(-delta / 2)).
    rng = np.random.default_rng(4)
    source = rng.normal(size=(1000, 10))
    noise = rng.normal(size=(1000, 10))
    deltas = [0.0, 0.5, 1.0, 2.0, 4.0]
    distances = []
    for delta in deltas:
        target = noise.copy()
        target[:, 0] += delta
        distances.append(proxy_a_distance(source, target))
    assert np.all(np.diff(distances) > 0)
    expected = 2.0 * (1.0 - 2.0 * norm.cdf(-np.array(deltas) / 2.0))
    np.testing.assert_allclose(distances, expected, atol=0.15)


def test_proxy_a_distance_balances_unequal_samples():
    # 2000 vs 200 draws of one distribution: always answering "source" would err on 200 / 2200
    # points (zeta ~ 1.6) without the balanced subsample; with it the domains are inseparable.
    rng = np.random.default_rng(5)
    distance = proxy_a_distance(rng.normal(size=(2000, 5)), rng.normal(size=(200, 5)))
    assert distance < 0.3


def test_proxy_a_distance_is_deterministic_for_a_seed():
    rng = np.random.default_rng(6)
    source, target = rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 0.7
    assert proxy_a_distance(source, target, seed=7) == proxy_a_distance(source, target, seed=7)


def test_proxy_a_distance_rejects_bad_input():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="same feature dimension"):
        proxy_a_distance(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        proxy_a_distance(rng.normal(size=(1, 3)), rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="2-D"):
        proxy_a_distance(rng.normal(size=10), rng.normal(size=(10, 1)))
    with pytest.raises(ValueError, match="positive"):
        proxy_a_distance(rng.normal(size=(10, 3)), rng.normal(size=(10, 3)), C_values=[0.0])


def test_tsne_embedding_is_deterministic_and_keeps_clusters_apart():
    rng = np.random.default_rng(9)
    labels = np.repeat([0, 1], 100)
    features = rng.normal(size=(200, 20)) + 10.0 * labels[:, None]
    embedding = tsne_embedding(features, seed=3)
    assert embedding.shape == (200, 2)
    np.testing.assert_array_equal(embedding, tsne_embedding(features, seed=3))
    assert linear_svm_accuracy(embedding, labels, embedding, labels) == 1.0


def test_tsne_embedding_rejects_perplexity_above_sample_count():
    with pytest.raises(ValueError, match="perplexity"):
        tsne_embedding(np.random.default_rng(10).normal(size=(20, 3)), perplexity=30.0)


def _domain_pair(rng: np.random.Generator, gap: float) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) + gap


def test_plot_tsne_writes_a_readable_two_colour_figure(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "figures" / "tsne.png"
    panels = [("no adaptation", *_domain_pair(rng, 4.0)), ("DANN", *_domain_pair(rng, 0.0))]
    returned = plot_tsne(panels, str(path), max_points_per_domain=100)
    assert returned == str(path)
    assert os.listdir(path.parent) == ["tsne.png"]  # no temporary file left behind
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(2 * PANEL_INCHES * PLOT_DPI), round(PANEL_INCHES * PLOT_DPI))
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10.0
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert np.sum((blue > red + 60) & (blue > green + 30)) > 100  # source points
    assert np.sum((red > blue + 60) & (red > green + 60)) > 100  # target points


def test_plot_tsne_draws_a_few_points_too(tmp_path):
    rng = np.random.default_rng(3)
    source, target = _domain_pair(rng, 4.0)
    plot_tsne([("few", source[:10], target[:10])], str(tmp_path / "few.png"))  # perplexity 30
    with Image.open(tmp_path / "few.png") as image:
        assert np.asarray(image.convert("L")).std() > 1.0


def test_plot_tsne_replaces_an_existing_file(tmp_path):
    rng = np.random.default_rng(12)
    path = tmp_path / "tsne.png"
    path.write_bytes(b"stale")
    plot_tsne([("panel", *_domain_pair(rng, 1.0))], str(path), max_points_per_domain=60)
    with Image.open(path) as image:
        assert image.size == (round(PANEL_INCHES * PLOT_DPI), round(PANEL_INCHES * PLOT_DPI))
    assert os.listdir(tmp_path) == ["tsne.png"]


def test_plot_tsne_rejects_bad_panels(tmp_path):
    rng = np.random.default_rng(13)
    path = str(tmp_path / "tsne.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_tsne([], path)
    with pytest.raises(ValueError, match="triple"):
        plot_tsne([("title", rng.normal(size=(10, 3)))], path)
    with pytest.raises(ValueError, match="same feature dimension"):
        plot_tsne([("title", rng.normal(size=(50, 3)), rng.normal(size=(50, 4)))], path)
    assert not os.path.exists(path)
