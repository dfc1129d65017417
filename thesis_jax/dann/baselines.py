"""Shallow baselines on fixed features: subspace alignment and linear-SVM retraining.

Thesis sec. 5.4.1 compares DANN with *subspace alignment* (SA) of Fernando, Habrard, Sebban and
Tuytelaars, "Unsupervised Visual Domain Adaptation Using Subspace Alignment", ICCV 2013. SA is
applied to the activations of the last hidden layer of a source-only network; the number of
principal components d is picked from {2, ..., 60} to maximise the *target test* accuracy; and for
every method the last layer is retrained with a linear SVM (liblinear, Fan et al. 2008).

SA (Fernando et al. 2013, sec. 3): with X_S, X_T in R^{D x d} the top-d principal directions of
the source sample S and the target sample T, the alignment matrix is M = X_S^T X_T (the minimiser
of ||X_S M - X_T||_F over M); the source is mapped to S X_S M and the target to T X_T.

Preprocessing: Fernando et al. z-normalise each domain separately before PCA (their code calls
`zscore` on each domain). `standardize=True` (the default) does the same: every feature is centred
and divided by its standard deviation, computed on that domain alone. Features that are constant
in a domain (dead ReLU units) are only centred there. `standardize=False` centres each domain by
its own mean and keeps the feature scales.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import sklearn.svm

SVM_MAX_ITER = 10_000


def _feature_matrix(features: np.ndarray, name: str, *, min_samples: int = 2) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (num_samples, num_features) array, got shape {array.shape}"
        )
    if array.shape[0] < min_samples:
        raise ValueError(
            f"{name} needs at least {min_samples} samples, got {array.shape[0]} "
            f"(shape {array.shape})"
        )
    if array.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _feature_pair(
    source: np.ndarray, target: np.ndarray, *, min_samples: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    source = _feature_matrix(source, "source", min_samples=min_samples)
    target = _feature_matrix(target, "target", min_samples=min_samples)
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            "source and target must have the same feature dimension, got "
            f"{source.shape[1]} (source) and {target.shape[1]} (target)"
        )
    return source, target


def _label_vector(labels: np.ndarray, num_samples: int, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != num_samples:
        raise ValueError(
            f"{name} must be a 1-D array with one label per sample ({num_samples}), "
            f"got shape {array.shape}"
        )
    return array


def _standardized(features: np.ndarray, standardize: bool) -> np.ndarray:
    centred = features - features.mean(axis=0)
    if not standardize:
        return centred
    scale = features.std(axis=0)
    return centred / np.where(scale > 0.0, scale, 1.0)


def _principal_directions(centred: np.ndarray, num_components: int) -> np.ndarray:
    _, _, right_vectors = np.linalg.svd(centred, full_matrices=False)
    basis = right_vectors[:num_components].T
    largest = np.argmax(np.abs(basis), axis=0)
    signs = np.sign(basis[largest, np.arange(basis.shape[1])])
    return basis * np.where(signs == 0.0, 1.0, signs)


def _aligned(
    source: np.ndarray, target: np.ndarray, source_basis: np.ndarray, target_basis: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    alignment = source_basis.T @ target_basis  # M = X_S^T X_T (Fernando et al. 2013)
    return source @ source_basis @ alignment, target @ target_basis


def _check_num_components(num_components: int, source: np.ndarray, target: np.ndarray) -> None:
    if isinstance(num_components, bool) or not isinstance(num_components, int | np.integer):
        raise ValueError(f"num_components must be an integer, got {num_components!r}")
    if num_components < 1:
        raise ValueError(f"num_components must be at least 1, got {num_components}")
    if num_components > source.shape[1]:
        raise ValueError(
            f"num_components={num_components} exceeds the feature dimension {source.shape[1]}"
        )
    fewest = min(source.shape[0], target.shape[0])
    if num_components > fewest:
        raise ValueError(
            f"num_components={num_components} exceeds the number of samples in the smaller "
            f"domain ({fewest}); PCA has at most that many components"
        )


def principal_subspace(
    features: np.ndarray, num_components: int, *, standardize: bool = True
) -> np.ndarray:
    """Top principal directions of one domain, the X_S or X_T of Fernando et al. (2013).

    Args:
      features: (num_samples, D) features of one domain.
      num_components: d, the number of directions kept.
      standardize: z-normalise the features before PCA (see the module docstring).

    Returns:
      (D, d) matrix with orthonormal columns, ordered by decreasing variance; each column's sign
      is fixed so that its largest-magnitude entry is positive.
    """
    features = _feature_matrix(features, "features")
    _check_num_components(num_components, features, features)
    return _principal_directions(_standardized(features, standardize), num_components)


def subspace_alignment(
    source: np.ndarray, target: np.ndarray, num_components: int, *, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Subspace alignment of Fernando et al. (2013), the SA baseline of thesis sec. 5.4.1.

    Each domain is standardised on its own statistics (see the module docstring), X_S and X_T are
    its top-d principal directions, M = X_S^T X_T, and the domains are mapped to S X_S M and
    T X_T. The result does not depend on the signs PCA gives the directions.

    SA aligns principal *subspaces* expressed in the shared input coordinates; it does not undo
    a rotation of the data: with d = D it applies one common orthogonal change of basis X_T to
    both standardised domains.

    Args:
      source: (n_s, D) source features.
      target: (n_t, D) target features.
      num_components: d, with 1 <= d <= min(D, n_s, n_t).
      standardize: z-normalise each domain before PCA (the paper's choice) or only centre it.

    Returns:
      (aligned_source, projected_target) of shapes (n_s, d) and (n_t, d).
    """
    source, target = _feature_pair(source, target)
    _check_num_components(num_components, source, target)
    source = _standardized(source, standardize)
    target = _standardized(target, standardize)
    source_basis = _principal_directions(source, num_components)
    target_basis = _principal_directions(target, num_components)
    return _aligned(source, target, source_basis, target_basis)


def fit_linear_svm(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = SVM_MAX_ITER,
) -> sklearn.svm.LinearSVC:
    """Fits the linear SVM that replaces the last layer (thesis sec. 5.4.1, liblinear).

    One-vs-rest L2-regularised squared-hinge SVM with an intercept (sklearn's LinearSVC, which
    wraps liblinear); the primal or dual solver is picked by sklearn ("auto"), and `seed` fixes
    the dual solver's coordinate order.

    Args:
      features: (num_samples, D) features.
      labels: (num_samples,) class labels, at least two distinct classes.
      C: inverse regularisation strength, > 0.
      seed: random state of the solver.
      max_iter: liblinear's iteration cap.

    Returns:
      The fitted LinearSVC.
    """
    features = _feature_matrix(features, "features")
    labels = _label_vector(labels, features.shape[0], "labels")
    if np.unique(labels).size < 2:
        raise ValueError("labels must contain at least two distinct classes to fit an SVM")
    if not C > 0:
        raise ValueError(f"C must be positive, got {C}")
    from sklearn.exceptions import ConvergenceWarning  # sklearn loads in ~1 s: when used
    from sklearn.svm import LinearSVC

    classifier = LinearSVC(C=C, dual="auto", max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        # At large C on unscaled activations liblinear may stop at max_iter; the classifier it
        # has then is still a valid linear classifier, and its held-out accuracy is what counts.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return classifier.fit(features, labels)


def linear_svm_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    C: float = 1.0,
    seed: int = 0,
) -> float:
    """Test accuracy of a linear SVM fitted on (train_x, train_y), see `fit_linear_svm`.

    Features are standardised with the training set's statistics first (an affine map, so the
    class of linear classifiers is unchanged, but liblinear converges on raw ReLU activations
    only after it).
    """
    train_x = _feature_matrix(train_x, "train_x")
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_x = (train_x - mean) / std
    classifier = fit_linear_svm(train_x, train_y, C=C, seed=seed)
    test_x = _feature_matrix(test_x, "test_x", min_samples=1)
    if test_x.shape[1] == mean.shape[0]:
        test_x = (test_x - mean) / std
    if test_x.shape[1] != classifier.n_features_in_:
        raise ValueError(
            "train_x and test_x must have the same feature dimension, got "
            f"{classifier.n_features_in_} and {test_x.shape[1]}"
        )
    test_y = _label_vector(test_y, test_x.shape[0], "test_y")
    return float(np.mean(classifier.predict(test_x) == test_y))


@dataclass(frozen=True)
class SAResult:
    """Outcome of the SA baseline's search over the number of components d.

    Attributes:
      best_accuracy: the highest target accuracy over the d tried.
      best_num_components: the smallest d reaching it.
      accuracy_per_num_components: target accuracy for every d tried, in increasing d.
    """

    best_accuracy: float
    best_num_components: int
    accuracy_per_num_components: Mapping[int, float]


def subspace_alignment_accuracy(
    source_x: np.ndarray,
    source_y: np.ndarray,
    target_x: np.ndarray,
    target_y: np.ndarray,
    *,
    components: Iterable[int] = range(2, 61),
    C: float = 1.0,
    seed: int = 0,
    standardize: bool = True,
) -> SAResult:
    """SA baseline of thesis sec. 5.4.1: align, retrain a linear SVM on the source, test on target.

    For each d in `components`, the features are aligned with `subspace_alignment`, a linear SVM
    is fitted on the aligned labelled source and scored on the projected target. As in the
    thesis, d is the one maximising the *target test* accuracy: an oracle choice that uses the
    target labels and favours the baseline. Values of d above min(D, n_s, n_t) are skipped.

    Args:
      source_x, source_y: labelled source features (n_s, D) and labels (n_s,).
      target_x, target_y: target features (n_t, D) and labels (n_t,), the latter used only for
        scoring.
      components: candidate numbers of principal components.
      C, seed: passed to `fit_linear_svm`.
      standardize: passed to `subspace_alignment`.

    Returns:
      An `SAResult`.
    """
    source_x, target_x = _feature_pair(source_x, target_x)
    source_y = _label_vector(source_y, source_x.shape[0], "source_y")
    target_y = _label_vector(target_y, target_x.shape[0], "target_y")
    candidates = sorted({int(d) for d in components})
    if not candidates or candidates[0] < 1:
        raise ValueError(f"components must be positive integers, got {candidates}")
    largest = min(source_x.shape[1], source_x.shape[0], target_x.shape[0])
    candidates = [d for d in candidates if d <= largest]
    if not candidates:
        raise ValueError(f"no candidate number of components is <= min(D, n_s, n_t) = {largest}")
    source = _standardized(source_x, standardize)
    target = _standardized(target_x, standardize)
    source_basis = _principal_directions(source, candidates[-1])
    target_basis = _principal_directions(target, candidates[-1])
    accuracies = {}
    for d in candidates:
        aligned_source, projected_target = _aligned(
            source, target, source_basis[:, :d], target_basis[:, :d]
        )
        accuracies[d] = linear_svm_accuracy(
            aligned_source, source_y, projected_target, target_y, C=C, seed=seed
        )
    best = max(candidates, key=lambda d: (accuracies[d], -d))
    return SAResult(
        best_accuracy=accuracies[best],
        best_num_components=best,
        accuracy_per_num_components=accuracies,
    )
