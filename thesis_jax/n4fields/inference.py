"""Dense N4-Fields inference on whole images (thesis sec. 3.3.1, 3.3.3, eq. 3.3.1-3.3.2).

1. Neural codes at every pixel without a forward pass per patch (sec. 3.3.3, "Testing
   Procedure"). The thesis fed the network "a sequence of shifted test images" (shift-and-stitch,
   Sermanet et al. 2013). `dense_outputs` computes the same numbers in one pass by the
   equivalent dilated ("a trous") form of the network (Giusti et al. 2013): the image is mirror-
   padded so that a 34 x 34 patch fits around every pixel; each convolution and pooling runs at
   stride 1 with its taps spread by the product of the pooling strides before it; the first FC
   layer is a convolution whose window is the last feature map (its kernel reshaped), the
   other FC layers are 1 x 1 convolutions. Unpadded convolutions and non-overlapping pooling
   make the output at pixel (y, x) exactly the patch network's output on the patch centred
   there (rows y-17..y+16, the same mirrored pixels `sample_patches` reads); a test checks it.
   The work equals shift-and-stitch's: every feature of every shifted copy is computed once.
   With `stride` s, each layer runs only where an output on the s-grid needs it: a multiple of
   the total pooling stride is the plain strided network, and strides between mix the two.
2. Nearest neighbour (eq. 3.3.2): each code is replaced by the index of the nearest dictionary
   code (`dictionary.nearest_neighbors`, exact on the accelerator or approximate).
3. Transfer and averaging (eq. 3.3.1): the 16 x 16 annotation of that entry is pasted centred
   at the pixel, and each output pixel is the mean of the patches covering it. Eq. 3.3.1
   divides by N^2, the number of covering patches inside the image; `paste_average` divides by
   the actual count, which is the same inside and makes the border (where fewer patches reach)
   and strided evaluation (`stride` s: codes only at pixels (s i, s j), N^2/s^2 patches per
   pixel, about s^2 times less search and pasting) an average too. s <= N/2 keeps every pixel
   covered.
4. Multi-scale and committee (sec. 3.3.3): the edge map is computed at scales 0.5, 1 and 2
   (the image resized bilinearly, the map resized back) and averaged; a committee of networks,
   each with its own dictionary (the codes differ between networks), is averaged too.

The CNN baselines of sec. 3.4 run the same dense network: CNN-central's per-pixel probability
map (`predict_central`), CNN-patch's 16 x 16 predictions pasted and averaged like eq. 3.3.1
(`predict_patch`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from thesis_jax.n4fields.dictionary import Dictionary, nearest_neighbors
from thesis_jax.n4fields.model import Architecture
from thesis_jax.n4fields.patches import pad_widths

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array, dilation: int, stride: int = 1) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        "VALID",
        rhs_dilation=(dilation, dilation),
        dimension_numbers=_DIMENSIONS,
    )


@functools.partial(jax.jit, static_argnames=("arch", "stride"))
def _dense_forward(
    params: Any, padded: jax.Array, arch: Architecture, stride: int = 1
) -> jax.Array:
    """The patch network applied to the windows of `padded` (B, Hp, Wp, C) at every `stride`-th
    pixel offset: (B, (Hp - rf) // stride + 1, (Wp - rf) // stride + 1, D).

    Each layer is computed where some output needs it, and nowhere else. The feature map is kept
    on a grid of step g input pixels (at first 1) and the layer's taps are `spread` = (product of
    the pooling strides so far) / g grid steps apart. An output at pixel stride * i reads
    features at stride * i + (product of the pooling strides) * k, so after each pooling the
    map is subsampled to the grid of step gcd(stride, product): stride 1 gives the dilated
    network at every pixel (Giusti et al. 2013), a multiple of the total pooling stride the
    plain strided network, and the strides between mix the two (stride 2: the first pooling
    strided, the later ones dilated). The first fully connected layer is then a convolution
    with the last feature map's window, spread out, at stride / g.
    """
    x = padded.astype(jnp.float32)
    if arch.channel_mean is not None:
        x = x - jnp.asarray(arch.channel_mean, jnp.float32)
    grid, product = 1, 1  # the map's grid step and the pooling strides so far, in pixels
    layers = zip(arch.conv_kernels, arch.conv_pools, strict=True)
    for i, (_, pool) in enumerate(layers):
        layer = params[f"conv{i + 1}"]
        spread = product // grid
        x = jax.nn.relu(_conv(x, layer["kernel"], spread) + layer["bias"])
        if pool > 1:
            product *= pool
            step = math.gcd(stride, product) // grid
            x = jax.lax.reduce_window(
                x,
                -jnp.inf,
                jax.lax.max,
                (1, pool, pool, 1),
                (1, step, step, 1),
                "VALID",
                window_dilation=(1, spread, spread, 1),
            )
            grid *= step
    names = [f"fc{j + 1}" for j in range(len(arch.fc_features))] + ["output"]
    first = params[names[0]]
    size = arch.feature_size
    kernel = first["kernel"].reshape(size, size, x.shape[-1], -1)  # flatten order (h, w, c)
    x = _conv(x, kernel, product // grid, stride // grid) + first["bias"]
    for name in names[1:]:
        x = jax.nn.relu(x)
        x = jnp.einsum("bhwc,cd->bhwd", x, params[name]["kernel"]) + params[name]["bias"]
    return x


def pad_image(image: jax.Array, patch: int) -> jax.Array:
    """Mirror-pads (H, W, C) so that a `patch` window fits around every pixel."""
    before, after = pad_widths(patch)
    return jnp.pad(image, ((before, after), (before, after), (0, 0)), mode="reflect")


def dense_outputs(
    params: Any,
    image: jax.Array | np.ndarray,
    *,
    arch: Architecture,
    stride: int = 1,
    block_rows: int | None = None,
) -> jax.Array:
    """The network's output for the patch centred at every `stride`-th pixel, in one pass.

    Args:
      params: the network parameters.
      image: (H, W, C) raw pixels (the network subtracts its channel mean).
      arch: the network's architecture.
      stride: evaluate at pixels (stride i, stride j).
      block_rows: evaluate this many output rows per call (bounds memory on large images);
        None = the whole image at once.

    Returns:
      (ceil(H / stride), ceil(W / stride), arch.outputs): codes ("code") or logits.
    """
    image = jnp.asarray(image, jnp.float32)
    chex.assert_rank(image, 3)
    chex.assert_axis_dimension(image, 2, arch.in_channels)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    height, width = image.shape[:2]
    padded = pad_image(image, arch.patch_size)
    rows = -(-height // stride)  # outputs at pixels (stride i, stride j)
    cols = -(-width // stride)
    if block_rows is None or block_rows >= rows:
        out = _dense_forward(params, padded[None], arch, stride)[0]
    else:
        needed = (block_rows - 1) * stride + arch.receptive_field
        total = -(-rows // block_rows) * block_rows
        extra = max(0, (total - 1) * stride + arch.receptive_field - padded.shape[0])
        padded = jnp.pad(padded, ((0, extra), (0, 0), (0, 0)))
        blocks = []
        for start in range(0, rows, block_rows):
            window = jax.lax.dynamic_slice_in_dim(padded, start * stride, needed, axis=0)
            blocks.append(_dense_forward(params, window[None], arch, stride)[0, :block_rows])
        out = jnp.concatenate(blocks, axis=0)
    return out[:rows, :cols]


@functools.partial(jax.jit, static_argnames=("image_shape", "stride"))
def paste_average(patches: jax.Array, image_shape: tuple[int, int], stride: int = 1) -> jax.Array:
    """Eq. 3.3.1: pastes (h, w, N, N) patches centred at pixels (stride i, stride j) and averages
    the overlaps; pixels no patch covers are 0.

    Returns:
      (H, W) = image_shape.
    """
    chex.assert_rank(patches, 4)
    rows, cols, size, _ = patches.shape
    height, width = image_shape
    before = size // 2
    canvas = (
        max((rows - 1) * stride + size, height + size),
        max((cols - 1) * stride + size, width + size),
    )
    flat = patches.reshape(rows, cols, size * size)
    interior = ((0, 0, stride - 1), (0, 0, stride - 1))
    ones = jax.lax.pad(
        jnp.ones((rows, cols), patches.dtype), jnp.zeros((), patches.dtype), interior
    )

    def paste(k: jax.Array, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        total, count = carry
        top, left = k // size, k % size
        plane = jax.lax.dynamic_index_in_dim(flat, k, axis=2, keepdims=False)
        plane = jax.lax.pad(plane, jnp.zeros((), patches.dtype), interior)
        current = jax.lax.dynamic_slice(total, (top, left), plane.shape)
        total = jax.lax.dynamic_update_slice(total, current + plane, (top, left))
        current = jax.lax.dynamic_slice(count, (top, left), ones.shape)
        count = jax.lax.dynamic_update_slice(count, current + ones, (top, left))
        return total, count

    start = (jnp.zeros(canvas, patches.dtype), jnp.zeros(canvas, patches.dtype))
    total, count = jax.lax.fori_loop(0, size * size, paste, start)
    total = total[before : before + height, before : before + width]
    count = count[before : before + height, before : before + width]
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)  # eq. (3.3.1)


def transfer_annotations(
    codes: jax.Array | np.ndarray,
    dictionary: Dictionary,
    image_shape: tuple[int, int],
    *,
    stride: int = 1,
    method: str = "exact",
) -> jax.Array:
    """Eq. 3.3.2 then 3.3.1: each (h, w, D) code -> its nearest dictionary annotation, pasted
    centred at its pixel (stride i, stride j) and averaged: the (H, W) output."""
    chex.assert_rank(codes, 3)
    size = dictionary.annotations.shape[-1]
    if stride > size // 2:
        raise ValueError(f"stride {stride} > N/2 = {size // 2} would leave pixels uncovered")
    rows, cols, dim = codes.shape
    index = nearest_neighbors(jnp.reshape(codes, (rows * cols, dim)), dictionary, method=method)
    annotations = jnp.asarray(dictionary.annotations)[jnp.asarray(index)]
    return paste_average(annotations.reshape(rows, cols, size, size), tuple(image_shape), stride)


def _resize(array: jax.Array, shape: tuple[int, int]) -> jax.Array:
    return jax.image.resize(array, (*shape, *array.shape[2:]), "linear", antialias=True)


def multiscale(
    fn: Callable[[jax.Array], jax.Array], image: jax.Array | np.ndarray, scales: Sequence[float]
) -> jax.Array:
    """The mean over `scales` of fn(image resized by s), each resized back to (H, W) (sec. 3.3.3:
    "we combine detections produced at the original, half and double resolutions")."""
    image = jnp.asarray(image, jnp.float32)
    height, width = image.shape[:2]
    maps = []
    for scale in scales:
        if scale <= 0:
            raise ValueError(f"scales must be positive, got {scale}")
        if scale == 1.0:
            maps.append(fn(image))
            continue
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        maps.append(_resize(fn(_resize(image, shape)), (height, width)))
    return sum(maps) / len(maps)


def _members(params: Any, dictionary: Any = None) -> list[tuple[Any, Any]]:
    """A committee as (params, dictionary) pairs; one network if `params` is not a list."""
    if not isinstance(params, (list, tuple)):
        return [(params, dictionary)]
    if dictionary is None or isinstance(dictionary, Dictionary):
        if dictionary is not None and len(params) > 1:
            raise ValueError("a committee needs one dictionary per network (codes differ)")
        return [(p, dictionary) for p in params]
    if len(dictionary) != len(params):
        raise ValueError(f"{len(params)} networks but {len(dictionary)} dictionaries")
    return list(zip(params, dictionary, strict=True))


def _committee_average(
    members: list[tuple[Any, Any]],
    image: jax.Array | np.ndarray,
    scales: Sequence[float],
    member_map: Callable[[Any, Any, jax.Array], jax.Array],
) -> np.ndarray:
    """The mean over `scales` (sec. 3.3.3) of the committee's mean `member_map(params,
    dictionary, image at that scale)`, clipped to [0, 1]: (H, W) float32."""

    def one_scale(img: jax.Array) -> jax.Array:
        maps = [member_map(p, d, img) for p, d in members]
        return sum(maps) / len(maps)

    return np.clip(np.asarray(multiscale(one_scale, image, scales)), 0.0, 1.0)


def predict_edges(
    params: Any,
    image: jax.Array | np.ndarray,
    dictionary: Dictionary | Sequence[Dictionary],
    *,
    arch: Architecture,
    scales: Sequence[float] = (1.0,),
    stride: int = 1,
    method: str = "exact",
    block_rows: int | None = None,
) -> np.ndarray:
    """The N4-Fields edge map of one image (eq. 3.3.1-3.3.2, multi-scale and committee).

    Args:
      params: one network's parameters, or a list of them (a committee).
      image: (H, W, C) raw pixels.
      dictionary: the network's `Dictionary`, or one per committee member.
      arch: the ("code" head) architecture shared by the committee.
      scales: e.g. (0.5, 1.0, 2.0) as in sec. 3.3.3.
      stride: evaluate codes every `stride` pixels (<= N/2).
      method: nearest-neighbour search, see `nearest_neighbors`.
      block_rows: see `dense_outputs`.

    Returns:
      (H, W) float32 in [0, 1].
    """
    if arch.head != "code":
        raise ValueError(f"predict_edges needs the 'code' head, got {arch.head!r}")

    def member_map(p: Any, d: Dictionary, img: jax.Array) -> jax.Array:
        codes = dense_outputs(p, img, arch=arch, stride=stride, block_rows=block_rows)
        return transfer_annotations(codes, d, img.shape[:2], stride=stride, method=method)

    return _committee_average(_members(params, dictionary), image, scales, member_map)


def _upsample_grid(values: jax.Array, image_shape: tuple[int, int], stride: int) -> jax.Array:
    """Linear interpolation of values on the pixels (stride i, stride j) to every pixel."""
    if stride == 1:
        return values
    rows = jnp.arange(image_shape[0], dtype=jnp.float32) / stride
    cols = jnp.arange(image_shape[1], dtype=jnp.float32) / stride
    grid = jnp.meshgrid(rows, cols, indexing="ij")
    return jax.scipy.ndimage.map_coordinates(values, grid, order=1, mode="nearest")


def predict_central(
    params: Any,
    image: jax.Array | np.ndarray,
    *,
    arch: Architecture,
    scales: Sequence[float] = (1.0,),
    stride: int = 1,
    block_rows: int | None = None,
) -> np.ndarray:
    """CNN-central (sec. 3.4): the boundary probability of the patch centred at each pixel
    (linearly interpolated between evaluated pixels when stride > 1), over scales and a
    committee (a list of parameters). Returns (H, W) in [0, 1]."""
    if arch.head != "central":
        raise ValueError(f"predict_central needs the 'central' head, got {arch.head!r}")

    def member_map(p: Any, _: Any, img: jax.Array) -> jax.Array:
        logits = dense_outputs(p, img, arch=arch, stride=stride, block_rows=block_rows)
        return _upsample_grid(jax.nn.sigmoid(logits[..., 0]), img.shape[:2], stride)

    return _committee_average(_members(params), image, scales, member_map)


def predict_patch(
    params: Any,
    image: jax.Array | np.ndarray,
    *,
    arch: Architecture,
    scales: Sequence[float] = (1.0,),
    stride: int = 1,
    block_rows: int | None = None,
) -> np.ndarray:
    """CNN-patch (sec. 3.4): the predicted 16 x 16 boundary probabilities of every evaluated
    patch, pasted and averaged as eq. 3.3.1, over scales and a committee. Returns (H, W)."""
    if arch.head != "patch":
        raise ValueError(f"predict_patch needs the 'patch' head, got {arch.head!r}")
    size = arch.annotation_size
    if stride > size // 2:
        raise ValueError(f"stride {stride} > N/2 = {size // 2} would leave pixels uncovered")

    def member_map(p: Any, _: Any, img: jax.Array) -> jax.Array:
        logits = dense_outputs(p, img, arch=arch, stride=stride, block_rows=block_rows)
        probs = jax.nn.sigmoid(logits).reshape(*logits.shape[:2], size, size)
        return paste_average(probs, tuple(img.shape[:2]), stride)

    return _committee_average(_members(params), image, scales, member_map)
