"""Known-answer tests of thesis_jax.dann.baselines (SA of Fernando et al. 2013, linear SVM)."""

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.svm import LinearSVC

from thesis_jax.dann.baselines import (
    SAResult,
    fit_linear_svm,
    linear_svm_accuracy,
    principal_subspace,
    subspace_alignment,
    subspace_alignment_accuracy,
)


def _axis_cross(stds: tuple[float, ...], permutation: tuple[int, ...]) -> np.ndarray:
    """Points +-stds[k] on axis permutation[k]: zero mean, exactly diagonal covariance."""
    dim = len(stds)
    points = []
    for std, axis in zip(stds, permutation, strict=True):
        for sign in (1.0, -1.0):
            point = np.zeros(dim)
            point[axis] = sign * std
            points.append(point)
    return np.array(points)


def _two_blobs(rng: np.random.Generator, num: int, dim: int, gap: float):
    labels = rng.integers(0, 2, size=num)
    features = rng.normal(size=(num, dim))
    features[:, 0] += gap * (2 * labels - 1)
    return features, labels


def test_alignment_matrix_on_hand_made_subspaces():
    # Source variance along e1 > e2 > e3, target along e3 > e1 > e2; d = 2 gives
    # X_S = [e1, e2], X_T = [e3, e1] (up to signs) and M = X_S^T X_T = [[0, +-1], [0, 0]].
    source = _axis_cross((3.0, 2.0, 0.5), (0, 1, 2))
    target = _axis_cross((3.0, 2.0, 0.5), (2, 0, 1))
    source_basis = principal_subspace(source, 2, standardize=False)
    target_basis = principal_subspace(target, 2, standardize=False)
    np.testing.assert_allclose(np.abs(source_basis), [[1, 0], [0, 1], [0, 0]], atol=1e-12)
    np.testing.assert_allclose(np.abs(target_basis), [[0, 1], [0, 0], [1, 0]], atol=1e-12)
    alignment = source_basis.T @ target_basis
    np.testing.assert_allclose(np.abs(alignment), [[0, 1], [0, 0]], atol=1e-12)

    aligned_source, projected_target = subspace_alignment(source, target, 2, standardize=False)
    np.testing.assert_allclose(aligned_source, source @ source_basis @ alignment, atol=1e-12)
    np.testing.assert_allclose(projected_target, target @ target_basis, atol=1e-12)
    # The source's e1 coordinate lands on the target's e1 axis with the target's sign convention;
    # its e2 coordinate has no counterpart in the target subspace and vanishes.
    np.testing.assert_allclose(aligned_source[:, 0], 0.0, atol=1e-12)
    sign = np.sign(target_basis[0, 1])
    np.testing.assert_allclose(aligned_source[:, 1], sign * source[:, 0], atol=1e-12)
    np.testing.assert_allclose(projected_target[:, 1], sign * target[:, 0], atol=1e-12)


def test_principal_subspace_is_orthonormal_and_ordered_by_variance():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 6)) * np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    basis = principal_subspace(features, 4, standardize=False)
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-12)
    variances = np.var(features @ basis, axis=0)
    assert np.all(np.diff(variances) < 0)
    np.testing.assert_allclose(np.abs(basis), np.eye(6)[:, :4], atol=0.1)


def test_full_dimension_alignment_is_a_common_change_of_basis():
    # With d = D, X_S X_S^T = I, so SA maps source to S X_T and target to T X_T: all inner products
    # of the centred data are kept, including those across domains. In particular SA does not
    # undo a rotation of the target (target = source @ R stays rotated).
    rng = np.random.default_rng(1)
    source = rng.normal(size=(80, 5)) * np.array([3.0, 2.5, 2.0, 1.5, 1.0])
    target = source @ ortho_group.rvs(5, random_state=2)
    aligned_source, projected_target = subspace_alignment(source, target, 5, standardize=False)
    source_c, target_c = source - source.mean(0), target - target.mean(0)
    np.testing.assert_allclose(aligned_source @ aligned_source.T, source_c @ source_c.T, atol=1e-9)
    np.testing.assert_allclose(
        projected_target @ projected_target.T, target_c @ target_c.T, atol=1e-9
    )
    np.testing.assert_allclose(
        aligned_source @ projected_target.T, source_c @ target_c.T, atol=1e-9
    )


@pytest.mark.parametrize("num_components", [2, 3, 6])
def test_alignment_is_invariant_to_pca_sign_flips(num_components):
    # The output depends only on the two subspaces, not on the signs PCA gives the directions:
    # flipping signs of X_S and X_T by hand leaves S X_S M and the cross products unchanged.
    rng = np.random.default_rng(3)
    source = rng.normal(size=(100, 6)) @ rng.normal(size=(6, 6))
    target = rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6))
    aligned_source, projected_target = subspace_alignment(source, target, num_components)
    source_z = (source - source.mean(0)) / source.std(0)
    target_z = (target - target.mean(0)) / target.std(0)
    flips_s = rng.choice([-1.0, 1.0], size=num_components)
    flips_t = rng.choice([-1.0, 1.0], size=num_components)
    source_basis = principal_subspace(source, num_components) * flips_s
    target_basis = principal_subspace(target, num_components) * flips_t
    flipped_source = source_z @ source_basis @ (source_basis.T @ target_basis)
    np.testing.assert_allclose(flipped_source, aligned_source * flips_t, atol=1e-10)
    np.testing.assert_allclose(target_z @ target_basis, projected_target * flips_t, atol=1e-10)


def test_standardised_alignment_undoes_a_per_feature_affine_shift():
    # target = a * source + b per feature (a > 0): after the per-domain z-normalisation of
    # Fernando et al. both domains coincide, so SA maps each target point onto its source twin,
    # and an SVM trained on the aligned source is as good on the target as on the source, while
    # an SVM trained on the raw source fails on the raw target.
    rng = np.random.default_rng(4)
    source, labels = _two_blobs(rng, 400, 8, gap=2.0)
    scales = rng.uniform(0.2, 5.0, size=8)
    offsets = np.concatenate([[12.0], rng.uniform(-3.0, 3.0, size=7)])  # pushes past the margin
    target = source * scales + offsets
    aligned_source, projected_target = subspace_alignment(source, target, 8)
    np.testing.assert_allclose(aligned_source, projected_target, atol=1e-8)

    source_accuracy = linear_svm_accuracy(source, labels, source, labels)
    assert source_accuracy > 0.9
    assert linear_svm_accuracy(source, labels, target, labels) < 0.7
    aligned_accuracy = linear_svm_accuracy(aligned_source, labels, projected_target, labels)
    assert aligned_accuracy == linear_svm_accuracy(aligned_source, labels, aligned_source, labels)
    assert aligned_accuracy > 0.9


def _factor_features(rng: np.random.Generator, num: int) -> tuple[np.ndarray, np.ndarray]:
    """6 features: one nuisance factor on features 0-2, another on 3-4, the class on feature 5.

    After z-normalisation the principal directions are (nuisance A, nuisance B, class, noise...),
    so the class is visible only from d = 3 on.
    """
    labels = rng.integers(0, 2, size=num)
    nuisance_a, nuisance_b = rng.normal(size=(2, num, 1))
    noise = 0.1 * rng.normal(size=(num, 6))
    features = np.concatenate(
        [
            np.repeat(nuisance_a, 3, axis=1),
            np.repeat(nuisance_b, 2, axis=1),
            (2 * labels - 1)[:, None],
        ],
        axis=1,
    )
    return features + noise, labels


def test_subspace_alignment_accuracy_picks_the_smallest_sufficient_d():
    rng = np.random.default_rng(5)
    source, source_labels = _factor_features(rng, 300)
    target, target_labels = _factor_features(rng, 300)
    target = target * rng.uniform(0.5, 2.0, size=6) + rng.uniform(-10.0, 10.0, size=6)
    result = subspace_alignment_accuracy(source, source_labels, target, target_labels)
    assert isinstance(result, SAResult)
    assert list(result.accuracy_per_num_components) == [2, 3, 4, 5, 6]  # d > D = 6 skipped
    assert result.accuracy_per_num_components[2] < 0.7
    assert result.best_accuracy == 1.0
    assert result.best_num_components == 3
    assert result.best_accuracy == max(result.accuracy_per_num_components.values())
    for d, accuracy in result.accuracy_per_num_components.items():
        aligned_source, projected_target = subspace_alignment(source, target, d)
        assert accuracy == linear_svm_accuracy(
            aligned_source, source_labels, projected_target, target_labels
        )


def test_subspace_alignment_accuracy_skips_d_above_sample_counts():
    rng = np.random.default_rng(6)
    source, source_labels = _two_blobs(rng, 30, 40, gap=3.0)
    target, target_labels = _two_blobs(rng, 20, 40, gap=3.0)
    result = subspace_alignment_accuracy(source, source_labels, target, target_labels)
    assert list(result.accuracy_per_num_components) == list(range(2, 21))


def test_linear_svm_is_perfect_on_linearly_separable_data():
    rng = np.random.default_rng(7)
    centres = np.array([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]])
    labels = rng.integers(0, 3, size=300)
    features = centres[labels] + rng.uniform(-1.0, 1.0, size=(300, 3))
    train, test = slice(0, 150), slice(150, 300)
    classifier = fit_linear_svm(features[train], labels[train])
    assert isinstance(classifier, LinearSVC)
    assert classifier.coef_.shape == (3, 3)
    assert linear_svm_accuracy(features[train], labels[train], features[test], labels[test]) == 1.0


def test_linear_svm_is_at_chance_on_unrelated_labels():
    rng = np.random.default_rng(8)
    features = rng.normal(size=(2000, 5))
    labels = rng.integers(0, 2, size=2000)
    accuracy = linear_svm_accuracy(features[:1000], labels[:1000], features[1000:], labels[1000:])
    assert abs(accuracy - 0.5) < 0.06


def test_mismatched_feature_dimensions_are_rejected():
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="same feature dimension"):
        subspace_alignment(rng.normal(size=(10, 4)), rng.normal(size=(10, 5)), 2)
    with pytest.raises(ValueError, match="same feature dimension"):
        linear_svm_accuracy(
            rng.normal(size=(10, 4)), np.arange(10) % 2, rng.normal(size=(10, 5)), np.zeros(10)
        )


def test_too_few_samples_are_rejected():
    with pytest.raises(ValueError, match="at least 2 samples"):
        subspace_alignment(np.ones((1, 4)), np.ones((10, 4)), 1)
    with pytest.raises(ValueError, match="2-D"):
        subspace_alignment(np.ones(4), np.ones((10, 4)), 1)


def test_too_many_components_are_rejected():
    rng = np.random.default_rng(10)
    source, target = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    with pytest.raises(ValueError, match="exceeds the feature dimension 4"):
        subspace_alignment(source, target, 5)
    with pytest.raises(ValueError, match="number of samples"):
        subspace_alignment(source, target[:3], 4)
    with pytest.raises(ValueError, match="at least 1"):
        subspace_alignment(source, target, 0)
    with pytest.raises(ValueError, match="no candidate number of components"):
        subspace_alignment_accuracy(
            source, np.arange(50) % 2, target, np.arange(50) % 2, components=[10, 20]
        )


def test_bad_labels_are_rejected():
    features = np.random.default_rng(11).normal(size=(10, 3))
    with pytest.raises(ValueError, match="one label per sample"):
        fit_linear_svm(features, np.zeros(9))
    with pytest.raises(ValueError, match="two distinct classes"):
        fit_linear_svm(features, np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        fit_linear_svm(np.full((10, 3), np.nan), np.arange(10) % 2)
