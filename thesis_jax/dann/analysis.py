"""Feature-distribution diagnostics for domain adaptation: proxy A-distance and t-SNE plots.

`proxy_a_distance` implements the proxy H-divergence of thesis sec. 5.2.2, eq. (5.2.2):
zeta = 2 (1 - 2 eps), where eps is the held-out error of a linear classifier trained to tell
source (label 0) from target (label 1) features (Ben-David et al. 2006; Blitzer et al. 2008).

`tsne_embedding` and `plot_tsne` draw fig. 5.4 / sec. 5.4.3: a t-SNE projection (van der Maaten
2013) of the features of both domains, source in blue and target in red, one panel per model
(e.g. "no adaptation" next to "DANN").
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass

from thesis_jax.core.metrics import save_figure
from thesis_jax.dann.baselines import _feature_matrix, _feature_pair, fit_linear_svm

PAD_C_VALUES = tuple(float(c) for c in np.logspace(-5, 4, 10))
SOURCE_COLOR = "#1f4fd1"
TARGET_COLOR = "#d62020"
PANEL_INCHES = 4.0
PLOT_DPI = 100
TSNE_PCA_DIMS = 50
PAD_SVM_MAX_ITER = 2000


def proxy_a_distance(
    source: np.ndarray,
    target: np.ndarray,
    *,
    seed: int = 0,
    C_values: Sequence[float] = PAD_C_VALUES,
) -> float:
    """Proxy A-distance between two feature samples, thesis eq. (5.2.2).

    Protocol (after the authors' public DANN code): both domains are subsampled to the size of
    the smaller one (a random subset, fixed by `seed`); each is split in half at random; a linear
    SVM (`fit_linear_svm`) learns source (0) vs target (1) on the first halves and eps is its
    error on the second halves, minimised over `C_values` (the authors' grid
    logspace(-5, 4, 10)). So C is picked on the held-out half, as in their code, which makes
    zeta a slightly optimistic estimate. Features are standardised with statistics of the pooled
    training half, an affine map that leaves the class of linear classifiers unchanged.

    eps is clipped to [0, 0.5], so zeta lies in [0, 2]: a classifier worse than chance counts as
    chance (the authors instead replace eps > 0.5 by 1 - eps, which inflates zeta for identical
    domains).

    Args:
      source: (n_s, D) source features, n_s >= 2.
      target: (n_t, D) target features, n_t >= 2.
      seed: seed of the subsampling, the split and the SVM solver.
      C_values: SVM regularisation constants to try, all > 0.

    Returns:
      zeta in [0, 2]: ~0 for indistinguishable domains, 2 for linearly separable ones.
    """
    source, target = _feature_pair(source, target)
    C_values = [float(c) for c in C_values]
    if not C_values or min(C_values) <= 0.0:
        raise ValueError(f"C_values must be a non-empty sequence of positive numbers: {C_values}")
    rng = np.random.default_rng(seed)
    per_domain = min(source.shape[0], target.shape[0])
    num_train = per_domain // 2
    source = source[rng.permutation(source.shape[0])[:per_domain]]
    target = target[rng.permutation(target.shape[0])[:per_domain]]
    train_x = np.concatenate([source[:num_train], target[:num_train]])
    test_x = np.concatenate([source[num_train:], target[num_train:]])
    train_y = np.repeat([0, 1], num_train)
    test_y = np.repeat([0, 1], per_domain - num_train)
    from sklearn.preprocessing import StandardScaler  # sklearn loads in ~1 s: when used

    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    errors = [
        np.mean(
            fit_linear_svm(train_x, train_y, C=C, seed=seed, max_iter=PAD_SVM_MAX_ITER).predict(
                test_x
            )
            != test_y
        )
        for C in C_values
    ]
    error = float(np.clip(min(errors), 0.0, 0.5))
    return 2.0 * (1.0 - 2.0 * error)  # eq. (5.2.2)


def tsne_embedding(features: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE embedding (sklearn, PCA initialisation, fixed seed) of (n, D) features.

    Args:
      features: (n, D) features, n > perplexity.
      seed: random state of t-SNE; the same seed and input give the same embedding.
      perplexity: t-SNE perplexity, > 0 and < n.

    Returns:
      (n, 2) float64 embedding.
    """
    features = _feature_matrix(features, "features", min_samples=3)
    if not 0.0 < perplexity < features.shape[0]:
        raise ValueError(
            f"perplexity must be in (0, num_samples={features.shape[0]}), got {perplexity}"
        )
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if features.shape[1] > TSNE_PCA_DIMS and features.shape[0] > TSNE_PCA_DIMS:
        # The usual t-SNE preprocessing (van der Maaten): PCA to 50 dimensions first; it keeps
        # the neighbourhoods and makes the affinities several times cheaper.
        features = PCA(TSNE_PCA_DIMS, random_state=seed).fit_transform(features)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    )
    return np.asarray(tsne.fit_transform(features), dtype=np.float64)


def _subsample(features: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    if features.shape[0] <= max_points:
        return features
    return features[np.sort(rng.choice(features.shape[0], size=max_points, replace=False))]


def plot_tsne(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    path: str,
    *,
    seed: int = 0,
    max_points_per_domain: int = 500,
    perplexity: float = 30.0,
) -> str:
    """Fig. 5.4 of the thesis: t-SNE of source (blue) and target (red) features, side by side.

    Each panel embeds its source and target features jointly with `tsne_embedding` after
    subsampling each domain to at most `max_points_per_domain` points (random, fixed by `seed`).
    The figure is PANEL_INCHES x PANEL_INCHES inches per panel at PLOT_DPI dots per inch, drawn
    with the Agg backend (no pyplot state), and written atomically: to a temporary file in the
    destination directory, then renamed over `path`. The format follows the extension of `path`
    (PNG when it has none).

    Args:
      panels: (title, source_features, target_features) per panel, left to right.
      path: destination file; missing parent directories are created.
      seed: seed of the subsampling and of t-SNE.
      max_points_per_domain: cap on the points drawn per domain and panel, >= 2.
      perplexity: t-SNE perplexity; a panel of few points (under 91) uses a third of their number.

    Returns:
      `path`.
    """
    if len(panels) == 0:
        raise ValueError("panels must contain at least one (title, source, target) triple")
    if max_points_per_domain < 2:
        raise ValueError(f"max_points_per_domain must be at least 2, got {max_points_per_domain}")
    checked = []
    for index, panel in enumerate(panels):
        if len(panel) != 3:
            raise ValueError(
                f"panel {index} must be a (title, source, target) triple, got {len(panel)} items"
            )
        title, source, target = panel
        source, target = _feature_pair(source, target)
        checked.append((str(title), source, target))

    rng = np.random.default_rng(seed)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(PANEL_INCHES * len(checked), PANEL_INCHES), dpi=PLOT_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(checked), squeeze=False)[0]
    for axis, (title, source, target) in zip(axes, checked, strict=True):
        source = _subsample(source, max_points_per_domain, rng)
        target = _subsample(target, max_points_per_domain, rng)
        points = np.concatenate([source, target])
        # a few dozen points (a user's small folders): t-SNE's usual cap, a third of them
        usable = min(perplexity, max(1.0, (points.shape[0] - 1) / 3))
        embedding = tsne_embedding(points, seed=seed, perplexity=usable)
        source_xy, target_xy = embedding[: source.shape[0]], embedding[source.shape[0] :]
        axis.scatter(*source_xy.T, s=4, c=SOURCE_COLOR, alpha=0.7, linewidths=0, label="source")
        axis.scatter(*target_xy.T, s=4, c=TARGET_COLOR, alpha=0.7, linewidths=0, label="target")
        axis.set_title(title)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(loc="upper right", markerscale=3, fontsize="small")
    figure.tight_layout()
    return save_figure(figure, path, dpi=PLOT_DPI)
