"""N4-Fields: neural network nearest neighbour fields for image transforms (thesis ch. 3).

A patch CNN maps each 34 x 34 patch to a 16-d neural code; the code's nearest neighbour in a
dictionary of training codes gives a 16 x 16 annotation patch, and the overlapping transferred
patches are averaged (eq. 3.3.1-3.3.2). The CNN trains through pure functions over pytrees, the
same four as every method of the package:

    state = n4fields.init(rng, config, channel_mean=...)                    # TrainState
    value, (metrics, model_state) = n4fields.loss(params, batch, rng,
                                                  apply_fn=..., hparams=state.hparams)
    state, metrics = jax.jit(n4fields.update)(state, batch)                # SGD, momentum 0.9
    outputs = n4fields.predict(params, {"image": patches}, apply_fn=...)   # {"output": codes}

A batch holds `image`, (B, 34, 34, C) raw pixels, and `target`, (B, D): the PCA code of the
patch's annotation (D = 16), or for the CNN baselines its centre pixel (1) or its 256 pixels.
The state's static `hparams` say which (the head) and the max-norm of the first layer.

The whole method on numpy images:

    from thesis_jax import n4fields
    from thesis_jax.data import load_shapes

    data = load_shapes("train")
    fixed = {"rotation": "none", "flip": False}
    pca_samples = n4fields.sample_patches(data.images, data.annotations, 0, 20_000, **fixed)
    pca = n4fields.fit_pca(pca_samples["annotation"], 16)          # sec. 3.3.2, step 1
    state = n4fields.init(rng, config, channel_mean=n4fields.channel_mean(data.images))
    update = jax.jit(n4fields.update)
    for step in range(num_steps):                                    # step 2
        samples = n4fields.sample_patches(data.images, data.annotations, step, 128)
        state, metrics = update(state, n4fields.make_batch(samples, pca=pca))
    dict_samples = n4fields.sample_patches(data.images, data.annotations, 1, 100_000, **fixed)
    dictionary = n4fields.build_dictionary(state.params, dict_samples,
                                           apply_fn=state.apply_fn)  # step 3, T patches
    edges = n4fields.predict_edges(state.params, image, dictionary, arch=state.hparams.arch,
                                   scales=(0.5, 1.0, 2.0))          # (H, W) in [0, 1]

Approximate search on CPU: `dictionary = dictionary.with_index()` (pynndescent, the `nn` extra)
and `predict_edges(..., method="pynndescent")`; the default "exact" is a blocked brute force
under jax.jit, meant for an accelerator.

The alternative encoding (eq. 3.4.1): `fit_pca(pairwise_codes(samples["segmentation"]), 16)` and
`make_batch(..., encoding="pairwise")`. The baselines of sec. 3.4: `init(..., head="central")`
or `head="patch"` with `predict_central` / `predict_patch`, and SIFT + NNB
(`build_sift_dictionary`, `predict_edges_sift`).

The experiments of sec. 3.4 (what `python -m experiments.n4fields` runs): `load_split` reads a
preset's dataset, `run_model` trains and infers one model of Table 3.I (`MODELS`) as a
committee, `report.write_report` scores and draws them.

Modules, each depending only on those above it: `patches`, `targets` (geometry, PCA, the
pairwise encoding), `sampler` (patch sampling, batches), `model` (the CNN), `train` (the pure
functions), `dictionary`, `inference`, `descriptor_baseline`, `export`, `datasets`,
`committee`, `experiment`, `report`.
"""

from thesis_jax.n4fields import report
from thesis_jax.n4fields.committee import (
    MODELS,
    Model,
    build_dictionaries,
    dictionary_chunks,
    predict_model,
    sift_dictionary,
)
from thesis_jax.n4fields.datasets import EdgeData, load_split, qualitative_images
from thesis_jax.n4fields.descriptor_baseline import (
    DESCRIPTOR_DIM,
    build_sift_dictionary,
    dense_sift,
    predict_edges_sift,
    sift_descriptors,
)
from thesis_jax.n4fields.dictionary import (
    METHODS,
    Dictionary,
    build_dictionary,
    compute_codes,
    exact_nearest_neighbors,
    nearest_neighbors,
    recall_at_1,
)
from thesis_jax.n4fields.experiment import (
    check_config,
    fit_targets,
    init_network,
    network_config,
    run_model,
    train_network,
    validation_batch,
    validation_error,
)
from thesis_jax.n4fields.export import load_export, save_export
from thesis_jax.n4fields.inference import (
    dense_outputs,
    multiscale,
    paste_average,
    predict_central,
    predict_edges,
    predict_patch,
    transfer_annotations,
)
from thesis_jax.n4fields.model import HEADS, Architecture, N4Net, network
from thesis_jax.n4fields.sampler import (
    PatchSampler,
    channel_mean,
    draw_patch_transforms,
    make_batch,
    sample_patches,
)
from thesis_jax.n4fields.targets import (
    ANNOTATION_SIZE,
    CODE_DIM,
    PCA,
    annotation_patches,
    fit_pca,
    pair_indices,
    pairwise_codes,
)
from thesis_jax.n4fields.train import (
    Hparams,
    anneal_learning_rate,
    init,
    loss,
    make_architecture,
    predict,
    update,
)

__all__ = [
    "ANNOTATION_SIZE",
    "CODE_DIM",
    "DESCRIPTOR_DIM",
    "HEADS",
    "METHODS",
    "MODELS",
    "PCA",
    "Architecture",
    "Dictionary",
    "EdgeData",
    "Hparams",
    "Model",
    "N4Net",
    "PatchSampler",
    "anneal_learning_rate",
    "annotation_patches",
    "build_dictionaries",
    "build_dictionary",
    "build_sift_dictionary",
    "channel_mean",
    "check_config",
    "compute_codes",
    "dense_outputs",
    "dense_sift",
    "dictionary_chunks",
    "draw_patch_transforms",
    "exact_nearest_neighbors",
    "fit_pca",
    "fit_targets",
    "init",
    "init_network",
    "load_export",
    "load_split",
    "loss",
    "make_architecture",
    "make_batch",
    "multiscale",
    "nearest_neighbors",
    "network",
    "network_config",
    "pair_indices",
    "pairwise_codes",
    "paste_average",
    "predict",
    "predict_central",
    "predict_edges",
    "predict_edges_sift",
    "predict_model",
    "predict_patch",
    "qualitative_images",
    "recall_at_1",
    "report",
    "run_model",
    "sample_patches",
    "save_export",
    "sift_descriptors",
    "sift_dictionary",
    "train_network",
    "transfer_annotations",
    "update",
    "validation_batch",
    "validation_error",
]
