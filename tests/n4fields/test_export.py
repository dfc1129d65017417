"""save_export / load_export: a committee, its architecture and its PCA in one file."""

import jax
import numpy as np
import pytest

from tests.n4fields import tiny
from thesis_jax import n4fields
from thesis_jax.n4fields.export import load_any_edge_model, load_edge_model, save_edge_model


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


def _tiny_edge_model(tmp_path, size=None):
    arch = tiny.tiny_arch()
    params = [n4fields.train.init_params(tiny.prng_key(seed), arch) for seed in (0, 1)]
    rng = np.random.default_rng(0)
    annotations = (rng.random((500, 16, 16)) < 0.1).astype(np.float32) / 3
    dictionaries = [
        n4fields.Dictionary(
            codes=rng.normal(size=(500, 16)).astype(np.float32), annotations=annotations
        )
        for _ in params
    ]
    path = str(tmp_path / "edges.npz")
    save_edge_model(path, params, arch, dictionaries, size=size, meta={"scales": [1.0]})
    return path, params, arch, dictionaries


def test_edge_model_round_trips_in_float16_with_a_subsampled_dictionary(tmp_path):
    path, params, arch, dictionaries = _tiny_edge_model(tmp_path, size=200)
    model = load_edge_model(path)
    assert model.arch == arch and len(model.params) == 2 and len(model.dictionaries) == 2
    assert model.meta == {"scales": [1.0], "dictionary_size": 200}
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(model.params), strict=True):
        np.testing.assert_allclose(b, np.asarray(a), atol=1e-3, rtol=1e-3)
    for full, kept in zip(dictionaries, model.dictionaries, strict=True):
        assert len(kept) == 200  # the first 200 entries: a random subsample of the patches
        np.testing.assert_allclose(kept.codes, full.codes[:200], atol=2e-3, rtol=1e-3)
        np.testing.assert_allclose(kept.annotations, full.annotations[:200], atol=1 / 510)
    # the codes of every network index the same (shared) annotations
    assert model.dictionaries[0].annotations is model.dictionaries[1].annotations
    image = np.random.default_rng(1).random((40, 48, 3)).astype(np.float32)
    edges = model.predict(image, scales=(1.0,))
    assert edges.shape == (40, 48) and 0 <= edges.min() and edges.max() <= 1
    expected = n4fields.predict_edges(
        model.params, image, model.dictionaries, arch=arch, scales=(1.0,)
    )
    np.testing.assert_array_equal(edges, expected)


def test_edge_models_are_refused_clearly(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no edge model at .*a shipped edge model's name \(bsds\)"
    ):
        load_edge_model(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an edge model written by save_edge_model"):
        load_edge_model(str(tmp_path / "other.npz"))
    with pytest.raises(FileNotFoundError, match=r"experiments\.n4fields writes one"):
        load_any_edge_model(str(tmp_path / "run" / "n4" / "export.msgpack"))


def test_large_kernels_are_stored_in_int8_with_a_scale_per_unit():
    from thesis_jax.n4fields.export import _packed, _unpacked

    kernel = np.random.default_rng(0).normal(0, 0.05, (512, 256)).astype(np.float32)
    kernel[:, 3] *= 20  # units of very different sizes keep their own precision
    stored = _packed("fc1/kernel", kernel)
    assert stored["fc1/kernel:int8"].dtype == np.int8 and stored["fc1/kernel:scale"].shape == (256,)
    back = _unpacked(stored)["fc1/kernel"]
    error = np.abs(back - kernel).max(axis=0) / np.abs(kernel).max(axis=0)
    assert error.max() <= 0.5 / 127 + 1e-6  # half a step of each unit's own scale
    assert _packed("conv1/kernel", kernel[:5])["conv1/kernel"].dtype == np.float16  # small: f16
