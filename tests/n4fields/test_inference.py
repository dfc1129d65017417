"""Dense inference (sec. 3.3.3) and the averaging transfer of eq. 3.3.1-3.3.2."""

import jax
import numpy as np
import pytest

from tests.n4fields import tiny
from tests.n4fields.tiny import prng_key
from thesis_jax import n4fields
from thesis_jax.n4fields.patches import reflect_pad
from thesis_jax.n4fields.train import init_params


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(7).random((21, 26, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def code_params(tiny_arch):
    return init_params(prng_key(0), tiny_arch)


def _per_patch(params, arch, image, pixels):
    """The patch network on the 34 x 34 mirror-padded patch centred at each pixel."""
    padded = reflect_pad(image, 17, 16)
    patches = np.stack([padded[y : y + 34, x : x + 34] for y, x in pixels])
    return np.asarray(n4fields.N4Net(arch).apply({"params": params}, patches))


def test_dense_codes_equal_per_patch_codes(tiny_arch, code_params, image):
    dense = np.asarray(n4fields.dense_outputs(code_params, image, arch=tiny_arch))
    assert dense.shape == (21, 26, 16)
    pixels = [(0, 0), (0, 25), (20, 0), (20, 25), (10, 13), (3, 17), (17, 4), (11, 22)]
    expected = _per_patch(code_params, tiny_arch, image, pixels)
    assert np.abs(expected).mean() > 0.1  # not a trivially small output
    got = np.stack([dense[y, x] for y, x in pixels])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # row blocks compute the same map
    blocked = n4fields.dense_outputs(code_params, image, arch=tiny_arch, block_rows=6)
    np.testing.assert_allclose(np.asarray(blocked), dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "stride, block_rows",
    [(2, None), (3, None), (4, None), (6, None), (2, 4), (4, 3), (8, 2), (16, None)],
)
def test_strided_dense_codes_are_the_dense_codes_on_the_grid(
    tiny_arch, code_params, image, stride, block_rows
):
    # 8 and 16 (multiples of the total pooling stride 8) run the plain strided network; 3 the
    # dilated one with its fully connected layers on the stride grid; 2, 4 and 6 pool onto
    # grids of step gcd(stride, pooling so far): after the three poolings 2, 2, 2 (stride 2),
    # 2, 4, 4 (stride 4) and 2, 2, 2 (stride 6)
    dense = np.asarray(n4fields.dense_outputs(code_params, image, arch=tiny_arch))
    strided = n4fields.dense_outputs(
        code_params, image, arch=tiny_arch, stride=stride, block_rows=block_rows
    )
    assert strided.shape == (-(-21 // stride), -(-26 // stride), 16)
    np.testing.assert_allclose(np.asarray(strided), dense[::stride, ::stride], rtol=1e-4, atol=1e-5)


def _paste_reference(patches, image_shape, stride):
    """Eq. 3.3.1 written as loops: patch (i, j) centred at pixel (stride i, stride j)."""
    total, count = np.zeros(image_shape), np.zeros(image_shape)
    rows, cols, size, _ = patches.shape
    for i in range(rows):
        for j in range(cols):
            for a in range(size):
                for b in range(size):
                    y, x = stride * i + a - size // 2, stride * j + b - size // 2
                    if 0 <= y < image_shape[0] and 0 <= x < image_shape[1]:
                        total[y, x] += patches[i, j, a, b]
                        count[y, x] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@pytest.mark.parametrize("stride", [1, 3])
def test_paste_average_matches_the_loops_of_eq_3_3_1(stride):
    shape = (13, 11)
    grid = (-(-shape[0] // stride), -(-shape[1] // stride))
    patches = np.random.default_rng(stride).random((*grid, 6, 6)).astype(np.float32)
    got = n4fields.paste_average(patches, shape, stride)
    np.testing.assert_allclose(np.asarray(got), _paste_reference(patches, shape, stride), rtol=1e-5)


def test_paste_average_known_answers():
    pattern = np.arange(256, dtype=np.float32).reshape(16, 16)
    # the same patch at every pixel: inside, the mean over all its pixels (eq. 3.3.1's 1/N^2);
    # pixel (0, 0) is reached by the patches centred at (0..8, 0..8), with their pixels 8..0
    dense = np.asarray(n4fields.paste_average(np.broadcast_to(pattern, (40, 40, 16, 16)), (40, 40)))
    np.testing.assert_allclose(dense[8:32, 8:32], pattern.mean(), rtol=1e-6)
    np.testing.assert_allclose(dense[0, 0], pattern[:9, :9].mean(), rtol=1e-6)
    # patches every 16 pixels tile the image, each centred on its pixel
    tiled = np.asarray(
        n4fields.paste_average(np.broadcast_to(pattern, (3, 3, 16, 16)), (40, 40), 16)
    )
    np.testing.assert_array_equal(tiled[:40, :40], np.tile(pattern, (3, 3))[8:48, 8:48])


def test_transfer_paints_the_nearest_entry(tiny_arch):
    one = np.zeros((16, 16), np.float32)
    one[:, 7] = 1.0  # a vertical line through the patch centre column (offset -1)
    dictionary = n4fields.Dictionary(
        codes=np.array([[-1.0, 0.0], [1.0, 0.0]], np.float32),
        annotations=np.stack([np.zeros((16, 16), np.float32), one]),
    )
    codes = np.zeros((30, 40, 2), np.float32)
    codes[:, :, 0] = np.where(np.arange(40) < 20, -0.9, 0.8)  # left half near entry 0
    out = np.asarray(n4fields.transfer_annotations(codes, dictionary, (30, 40)))
    assert out.shape == (30, 40)
    np.testing.assert_array_equal(out[:, :12], 0.0)  # only entry 0 reaches here
    # far inside the right half every covering patch is `one`: 1/16 of them cover each pixel
    np.testing.assert_allclose(out[10:20, 30:32], 1 / 16, rtol=1e-6)


def test_predict_edges_multiscale_and_committee(tiny_arch, code_params, image):
    constant = np.full((1, 16, 16), 0.3, np.float32)
    dictionary = n4fields.Dictionary(np.zeros((1, 16), np.float32), constant)
    edges = n4fields.predict_edges(
        code_params, image, dictionary, arch=tiny_arch, scales=(0.5, 1.0, 2.0), stride=2
    )
    assert edges.shape == image.shape[:2] and edges.dtype == np.float32
    np.testing.assert_allclose(edges, 0.3, rtol=1e-5)  # a constant transfer at every scale
    # a committee of two networks with their own dictionaries averages their maps
    other = init_params(prng_key(1), tiny_arch)
    zero = n4fields.Dictionary(np.zeros((1, 16), np.float32), np.zeros((1, 16, 16), np.float32))
    committee = n4fields.predict_edges(
        [code_params, other], image, [dictionary, zero], arch=tiny_arch, stride=2
    )
    np.testing.assert_allclose(committee, 0.15, rtol=1e-5)


def test_dense_baselines(image):
    central_arch = tiny.tiny_arch("central")
    params = init_params(prng_key(2), central_arch)
    probability = n4fields.predict_central(params, image, arch=central_arch)
    assert probability.shape == (21, 26)
    padded = reflect_pad(image, 17, 16)
    logit = n4fields.N4Net(central_arch).apply({"params": params}, padded[None, 5:39, 9:43])
    np.testing.assert_allclose(probability[5, 9], jax.nn.sigmoid(logit[0, 0]), rtol=1e-4)
    strided = n4fields.predict_central(params, image, arch=central_arch, stride=2)
    np.testing.assert_allclose(strided[::2, ::2], probability[::2, ::2], rtol=1e-4)

    patch_arch = tiny.tiny_arch("patch")
    params = init_params(prng_key(3), patch_arch)
    logits = n4fields.dense_outputs(params, image, arch=patch_arch)
    expected = n4fields.paste_average(jax.nn.sigmoid(logits).reshape(21, 26, 16, 16), (21, 26), 1)
    edges = n4fields.predict_patch(params, image, arch=patch_arch)
    assert edges.shape == (21, 26) and 0.0 <= edges.min() and edges.max() <= 1.0
    np.testing.assert_allclose(edges, np.asarray(expected), rtol=1e-6)
