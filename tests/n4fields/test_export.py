"""save_export / load_export, and the trained committees shipped in checkpoints/."""

import jax
import numpy as np
import pytest

from tests.conftest import ROOT
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


@pytest.mark.parametrize(
    ("name", "members"), [("n4fields_bsds.msgpack", 3), ("n4fields_drive.msgpack", 1)]
)
def test_shipped_checkpoints_load_as_thesis_networks(name, members):
    params, arch, pca = n4fields.load_export(str(ROOT / "checkpoints" / name))
    assert len(params) == members
    assert arch.head == "code" and arch.conv_features == (32, 64, 128) and arch.in_channels == 3
    assert pca.dim == 16 and pca.shape == (16, 16)
    codes = n4fields.predict(params[0], np.zeros((2, 34, 34, 3), np.float32),
                             apply_fn=n4fields.N4Net(arch).apply)  # fmt: skip
    assert codes.shape == (2, 16) and np.all(np.isfinite(codes))
