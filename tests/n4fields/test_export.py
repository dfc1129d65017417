"""save_export / load_export: a committee, its architecture and its PCA in one file."""

import jax
import numpy as np
import pytest

from tests.n4fields import tiny
from thesis_jax import n4fields


def test_export_round_trips_parameters_architecture_and_pca(tmp_path, shapes_data):
    arch = tiny.tiny_arch()
    params = [n4fields.train.init_params(tiny.prng_key(seed), arch) for seed in (0, 1)]
    samples = n4fields.sample_patches(shapes_data.images, shapes_data.annotations, 0, 300)
    pca = n4fields.fit_pca(samples["annotation"], 8)
    for dtype, tolerance in ((np.float32, 0.0), (np.float16, 1e-3)):
        path = str(tmp_path / f"committee_{np.dtype(dtype).name}.msgpack")
        n4fields.save_export(path, params, arch, pca, dtype=dtype)
        loaded, loaded_arch, loaded_pca = n4fields.load_export(path)
        assert loaded_arch == arch and len(loaded) == 2
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded), strict=True):
            assert b.dtype == np.float32
            np.testing.assert_allclose(b, np.asarray(a), atol=tolerance, rtol=tolerance)
        np.testing.assert_array_equal(loaded_pca.components, pca.components)
        assert loaded_pca.shape == pca.shape
    with pytest.raises(FileNotFoundError, match="no exported model"):
        n4fields.load_export(str(tmp_path / "missing.msgpack"))
