r"""N4-Fields experiments (thesis ch. 3): train the models of Table 3.I, evaluate, compare.

    python -m experiments.n4fields                               # offline `shapes` preset
    python -m experiments.n4fields --config=bsds                 # ../shared/data/BSDS500
    python -m experiments.n4fields --config=drive --config.num_steps=20000

For every model in `config.models` (n4, n4_ae, central, patch, sift; see the preset file) the
run trains a committee of networks on random training patches (`<model>/net<k>/`: checkpoints,
metrics.jsonl with the validation error of fig. 3.6), infers every held-out image (committee x
`scales`), thins the maps by NMS and scores them: the BSDS benchmark (ODS, OIS, AP) for edges,
pixel precision/recall inside the field of view for DRIVE. It writes into the workdir:

- `results.md` / `results.json`: the table shaped like Table 3.I (the thesis's figures beside
  ours for the real datasets) with the budget that produced it;
- `pr_curves.png` (fig. 3.10 for DRIVE), `panels.png` (input, ground truth and every model on
  held-out images with the per-image R/P/F in red, fig. 3.7), `tolerance.png` (ODS and OIS
  against the matching tolerance, fig. 3.5);
- `<model>/predictions.npz`: the edge maps before thinning, for other benchmarks;
- `<model>/export.msgpack`: what inference needs (every committee network's parameters, the
  architecture and the PCA), loaded by `thesis_jax.n4fields.load_export`; the dictionary is
  rebuilt from the training images by `build_dictionaries`.

Ctrl-C or SIGTERM keeps the checkpoints; the same command resumes. Finished models are not
trained again, and their predictions are reused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from absl import logging as absl_logging

from thesis_jax import core, edges, n4fields
from thesis_jax.core import parallel
from thesis_jax.core.metrics import is_main_process, progress_bar, write_atomic

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "n4fields.py")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL_NAMES = {
    "n4": "N4-fields",
    "n4_ae": "N4-fields, AE",
    "central": "CNN-central",
    "patch": "CNN-patch",
    "sift": "SIFT + NNB",
}
HEADS = {"n4": "code", "n4_ae": "code", "central": "central", "patch": "patch"}
AE_PCA_SAMPLES = 20_000  # C(256, 2) = 32,640 bytes per AE sample: 650 MB at this count


# ---------------------------------------------------------------------------------------------
# Data.


@dataclasses.dataclass(frozen=True)
class EdgeData:
    """One split: float32 (H, W, C) images in [0, 1] and their annotations.

    annotations: per image an (A, H, W) bool stack (BSDS boundaries, one per annotator; DRIVE
    vessels with A = 1). segmentations: per image (A, H, W) labels, for the AE encoding. masks:
    DRIVE's fields of view.
    """

    images: list[np.ndarray]
    annotations: list[np.ndarray]
    names: list[str]
    segmentations: list[np.ndarray] | None = None
    masks: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def head(self, count: int) -> EdgeData:
        """The first `count` images (all when count is 0)."""
        if not count or count >= len(self):
            return self
        cut = slice(0, count)
        return EdgeData(
            images=self.images[cut],
            annotations=self.annotations[cut],
            names=self.names[cut],
            segmentations=None if self.segmentations is None else self.segmentations[cut],
            masks=None if self.masks is None else self.masks[cut],
        )


def resolve_data_dir(path: str) -> str:
    """`path` with ~ expanded; a relative path missing from the working directory is also
    looked up beside the repository (the presets name ../shared/data/...)."""
    path = os.path.expanduser(path)
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.normpath(os.path.join(_REPO, path))
    return beside if os.path.exists(beside) else path


def _as_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def load_split(
    config: ml_collections.ConfigDict, split: str, count: int, segmentations: bool
) -> EdgeData:
    """One split of `config.dataset`, its first `count` images (0: all)."""
    if config.dataset == "shapes":
        from thesis_jax.data import load_shapes

        data = load_shapes(
            split, num_images=count or None, seed=config.seed, size=tuple(config.shapes_size)
        )
        return EdgeData(
            images=list(data.images),
            annotations=[np.stack(a) for a in data.annotations],
            names=[f"{split}_{i:03d}" for i in range(len(data))],
            segmentations=list(data.annotator_segmentations) if segmentations else None,
        )
    root = resolve_data_dir(config.data_dir)
    if config.dataset in ("bsds", "nyud"):
        if config.dataset == "bsds":
            images, truths, names = edges.load_bsds500(root, split)
        else:
            images, truths, names = edges.load_nyud(root, split)
        data = EdgeData(
            images=[_as_float(im) for im in images],
            annotations=[np.stack(t).astype(bool) for t in truths],
            names=list(names),
        ).head(count)
        if segmentations:
            folder = edges.bsds_data_dir(root) / "groundTruth" / split
            segs = [
                np.stack(edges.load_bsds_segmentations(folder / f"{name}.mat"))
                for name in data.names
            ]
            data = dataclasses.replace(data, segmentations=segs)
        return data
    if config.dataset == "drive":
        if segmentations:
            raise ValueError("DRIVE has no segmentations: the AE encoding (n4_ae) needs them")
        images, vessels, masks, names = edges.load_drive(root, split)
        return EdgeData(
            images=[_as_float(im) for im in images],
            annotations=[v[None] for v in vessels],
            names=list(names),
            masks=list(masks),
        ).head(count)
    raise ValueError(f"unknown dataset {config.dataset!r}; choose shapes, bsds, nyud or drive")


# ---------------------------------------------------------------------------------------------
# Training.


def _check_config(config: ml_collections.ConfigDict) -> None:
    unknown = [m for m in config.models if m not in MODEL_NAMES]
    if unknown or not config.models:
        raise ValueError(
            f"config.models must name some of {tuple(MODEL_NAMES)}, got {tuple(config.models)}"
        )
    if config.committee < 1:
        raise ValueError(f"config.committee must be >= 1, got {config.committee}")
    if not config.scales or any(s <= 0 for s in config.scales):
        raise ValueError(f"config.scales must be positive, got {tuple(config.scales)}")
    if not 1 <= config.stride <= n4fields.ANNOTATION_SIZE // 2:
        raise ValueError(f"config.stride must be in 1..{n4fields.ANNOTATION_SIZE // 2}")


def network_config(
    config: ml_collections.ConfigDict, model: str, channels: int
) -> ml_collections.ConfigDict:
    """The training config of one network of `model`: the AE rate for n4_ae, the baselines'
    rate for central / patch, and as many input channels as the images have (4 for RGBD)."""
    net = ml_collections.ConfigDict(config.to_dict())
    if model == "n4_ae":
        net.learning_rate = config.learning_rate_ae
    elif model in ("central", "patch") and config.learning_rate_baselines:
        net.learning_rate = config.learning_rate_baselines
    net.model.in_channels = int(channels)
    return net


def fit_targets(
    config: ml_collections.ConfigDict, data: EdgeData, model: str
) -> n4fields.PCA | None:
    """The PCA of the code head's targets (sec. 3.3.2 step 1; eq. 3.4.1 for n4_ae)."""
    if HEADS.get(model) != "code":
        return None
    ae = model == "n4_ae"
    count = min(config.pca_samples, AE_PCA_SAMPLES) if ae else config.pca_samples
    samples = n4fields.sample_patches(
        data.images,
        data.annotations,
        np.random.default_rng([config.seed, 17]),
        count,
        segmentations=data.segmentations if ae else None,
        rotation="none",
        flip=False,
        annotator=config.annotator,
    )
    if ae:
        return n4fields.fit_pca(n4fields.pairwise_codes(samples["segmentation"]))
    return n4fields.fit_pca(samples["annotation"])


def _validation_batch(
    config: ml_collections.ConfigDict, data: EdgeData, model: str, pca
) -> dict[str, np.ndarray]:
    samples = n4fields.sample_patches(
        data.images,
        data.annotations,
        np.random.default_rng([config.seed, 23]),
        config.val_patches,
        segmentations=data.segmentations if model == "n4_ae" else None,
        rotation="none",
        flip=False,
        annotator=config.annotator,
    )
    return n4fields.make_batch(
        samples,
        head=HEADS[model],
        pca=pca,
        encoding="pairwise" if model == "n4_ae" else "annotation",
    )


def validation_error(state: core.TrainState, batch: dict[str, np.ndarray]) -> float:
    """The training objective on held-out patches without dropout (fig. 3.6's error)."""
    outputs = n4fields.compute_codes(state.params, batch["image"], apply_fn=state.apply_fn)
    target = batch["target"]
    if state.hparams.head == "code":
        per_patch = np.sum((outputs - target) ** 2, axis=-1)
    else:
        per_patch = np.sum(optax.sigmoid_binary_cross_entropy(outputs, target), axis=-1)
    return float(np.mean(per_patch))


def train_network(
    config: ml_collections.ConfigDict,
    train: EdgeData,
    model: str,
    member: int,
    pca: n4fields.PCA | None,
    val_batch: dict[str, np.ndarray],
    workdir: str,
    mesh: jax.sharding.Mesh,
) -> core.LoopResult:
    """Trains committee member `member` of `model` (sec. 3.3.3) in workdir/<model>/net<k>."""
    net = network_config(config, model, train.images[0].shape[-1])
    head = HEADS[model]
    ae = model == "n4_ae"
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), member)
    bias = None
    if head != "code" and config.prior_bias:  # start the sigmoid at the boundary rate
        rate = float(np.clip(np.mean([a.mean() for a in train.annotations]), 1e-4, 0.5))
        bias = float(np.log(rate / (1 - rate)))
    state = n4fields.init(
        key,
        net,
        head=head,
        channel_mean=n4fields.channel_mean(train.images),
        output_bias=bias,
    )
    parallel.local_batch_size(config.batch_size, mesh)  # fails early on an uneven split
    options = dict(rotation=config.rotation, flip=config.flip, annotator=config.annotator)
    # the device sampler where it can: the AE targets need the segmentations (numpy)
    sampler = None if ae else n4fields.PatchSampler(train.images, train.annotations, **options)

    def batch_fn(step: int) -> dict[str, Any]:
        rng = np.random.default_rng([config.seed, member, step])
        if sampler is not None:
            samples = sampler(rng, config.batch_size)
            if jax.process_count() > 1:  # each process feeds its slice from host memory
                samples = jax.tree.map(np.asarray, samples)
        else:
            samples = n4fields.sample_patches(
                train.images,
                train.annotations,
                rng,
                config.batch_size,
                segmentations=train.segmentations if ae else None,
                **options,
            )
        batch = n4fields.make_batch(
            samples, head=head, pca=pca, encoding="pairwise" if ae else "annotation"
        )
        return parallel.process_slice(batch)

    return core.train(
        state,
        n4fields.update,
        batch_fn,
        num_steps=config.num_steps,
        workdir=os.path.join(workdir, model, f"net{member}"),
        mesh=mesh,
        log_every=config.log_every,
        eval_every=config.eval_every,
        eval_fn=lambda s: {"validation_error": validation_error(s, val_batch)},
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        desc=f"n4fields/{model}/net{member}",
    )


# ---------------------------------------------------------------------------------------------
# Export and reuse of trained models.


DICTIONARY_CHUNK = 16_384


def dictionary_chunks(config: ml_collections.ConfigDict, train: EdgeData):
    """The T dictionary patches (sec. 3.3.2, step 3) as (images, annotations) chunks: random
    training patches, not rotated, drawn on the device so that T = 10^6 never sits in memory
    as 34 x 34 pixels (14 GB) at once."""
    sampler = n4fields.PatchSampler(
        train.images, train.annotations, rotation="none", flip=False, annotator=config.annotator
    )
    for start in range(0, config.dictionary_size, DICTIONARY_CHUNK):
        count = min(DICTIONARY_CHUNK, config.dictionary_size - start)
        chunk = sampler(np.random.default_rng([config.seed, 29, start]), count)
        yield chunk["image"], np.asarray(chunk["annotation"])


def _finish_dictionary(config, codes: np.ndarray, annotations: np.ndarray) -> n4fields.Dictionary:
    if config.search == "pynndescent":
        return n4fields.Dictionary(codes=codes, annotations=annotations).with_index(
            seed=config.seed
        )
    return n4fields.Dictionary(  # kept on the accelerator between images
        codes=jax.device_put(codes), annotations=jax.device_put(annotations)
    )


def build_dictionaries(
    config: ml_collections.ConfigDict,
    train: EdgeData,
    params: Sequence[Any],
    arch: n4fields.Architecture,
) -> list[n4fields.Dictionary]:
    """One dictionary per committee network: the codes of the same T training patches."""
    apply_fn = n4fields.N4Net(arch).apply
    codes: list[list[np.ndarray]] = [[] for _ in params]
    annotations = []
    for images, chunk_annotations in dictionary_chunks(config, train):
        annotations.append(chunk_annotations)
        for member, p in enumerate(params):
            codes[member].append(n4fields.compute_codes(p, images, apply_fn=apply_fn))
    annotations = np.concatenate(annotations)
    return [_finish_dictionary(config, np.concatenate(c), annotations) for c in codes]


def build_sift_dictionary(
    config: ml_collections.ConfigDict, train: EdgeData
) -> n4fields.Dictionary:
    """The SIFT + NNB baseline's dictionary over the same kind of T patches."""
    codes, annotations = [], []
    for images, chunk_annotations in dictionary_chunks(config, train):
        codes.append(n4fields.sift_descriptors(np.asarray(images)))
        annotations.append(chunk_annotations)
    return _finish_dictionary(config, np.concatenate(codes), np.concatenate(annotations))


# ---------------------------------------------------------------------------------------------
# Inference and evaluation.


def predict_model(
    config: ml_collections.ConfigDict,
    model: str,
    images: Sequence[np.ndarray],
    params: Sequence[Any] | None,
    arch: n4fields.Architecture | None,
    dictionaries: Sequence[Any] | None,
) -> list[np.ndarray]:
    """Each image's (H, W) map in [0, 1] by `model`: committee x scales (sec. 3.3.3)."""
    scales = tuple(config.scales)
    out = []
    bar = progress_bar(len(images), desc=f"infer {model}")
    for image in images:
        if model == "sift":
            edge_map = n4fields.predict_edges_sift(
                image, dictionaries[0], scales=scales, stride=config.stride, method=config.search
            )
        elif model in ("n4", "n4_ae"):
            edge_map = n4fields.predict_edges(
                list(params),
                image,
                list(dictionaries),
                arch=arch,
                scales=scales,
                stride=config.stride,
                method=config.search,
            )
        elif model == "central":
            edge_map = n4fields.predict_central(
                list(params), image, arch=arch, scales=scales, stride=config.stride
            )
        else:
            edge_map = n4fields.predict_patch(
                list(params), image, arch=arch, scales=scales, stride=config.stride
            )
        out.append(np.asarray(edge_map, np.float32))
        bar.update(1)
    bar.close()
    return out


def thin(config: ml_collections.ConfigDict, maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Edge maps thinned by NMS for the BSDS benchmark (sec. 3.4); DRIVE maps stay whole."""
    if config.dataset == "drive":
        return list(maps)
    return [np.clip(edges.edge_nms(m), 0.0, 1.0) for m in maps]


def score(
    config: ml_collections.ConfigDict,
    maps: Sequence[np.ndarray],
    data: EdgeData,
    max_dist: float | None = None,
) -> dict[str, Any]:
    """The benchmark of the dataset: BSDS (ODS/OIS/AP) or DRIVE (F1, AUC in the FOV)."""
    if config.dataset == "drive":
        return edges.evaluate_vessels(maps, [a[0] for a in data.annotations], data.masks)
    return edges.evaluate_bsds(
        maps,
        [list(a) for a in data.annotations],
        max_dist=config.max_dist if max_dist is None else max_dist,
        thresholds=config.thresholds,
        workers=config.eval_workers or None,
    )


def summary(config: ml_collections.ConfigDict, result: dict[str, Any]) -> dict[str, float]:
    if config.dataset == "drive":
        keys = ("best_f1", "average_precision", "pr_auc", "roc_auc")
    else:
        keys = ("ods", "ois", "ap", "ods_threshold")
    return {k: float(result[k]) for k in keys}


def results_table(config: ml_collections.ConfigDict, rows: dict[str, dict], budget: str) -> str:
    from experiments.configs.n4fields import THESIS_TABLE

    thesis = THESIS_TABLE.get(config.preset, {})
    lines = [f"# N4-Fields on `{config.preset}`: held-out {config.eval_split} images", ""]
    if config.dataset == "drive":
        lines += ["| model | best F1 | AP | PR AUC | ROC AUC |", "|---|---|---|---|---|"]
        for name, row in rows.items():
            lines.append(
                f"| {MODEL_NAMES[name]} | {row['best_f1']:.3f} | {row['average_precision']:.3f} "
                f"| {row['pr_auc']:.3f} | {row['roc_auc']:.3f} |"
            )
    else:
        head = "| model | ODS | OIS | AP |"
        if thesis:
            head += " thesis ODS / OIS / AP |"
        lines += [head, "|---|---|---|---|" + ("---|" if thesis else "")]
        for name, row in rows.items():
            scores = " | ".join(f"{row[k]:.3f}" for k in ("ods", "ois", "ap"))
            line = f"| {MODEL_NAMES[name]} | {scores} |"
            if thesis:
                ref = thesis.get(name)
                line += (" " + " / ".join(f"{v:.2f}" for v in ref) + " |") if ref else " |"
            lines.append(line)
    lines += ["", budget]
    return "\n".join(lines) + "\n"


def _per_image_caption(config, result: dict[str, Any], count: int) -> list[str]:
    if config.dataset == "drive":
        return [""] * count
    return [f"R {r:.2f} P {p:.2f} F {f:.2f}" for _, r, p, f in result["per_image"][:count]]


def write_report(
    config: ml_collections.ConfigDict,
    data: EdgeData,
    predictions: dict[str, list[np.ndarray]],
    workdir: str,
    budget: str,
) -> dict[str, dict[str, float]]:
    thinned = {m: thin(config, maps) for m, maps in predictions.items()}
    results = {m: score(config, maps, data) for m, maps in thinned.items()}
    rows = {m: summary(config, r) for m, r in results.items()}
    if not is_main_process():
        return rows
    table = results_table(config, rows, budget)
    write_atomic(os.path.join(workdir, "results.md"), table)
    write_atomic(os.path.join(workdir, "results.json"), json.dumps(rows, indent=2))
    labels = {m: MODEL_NAMES[m] for m in results}
    edges.plot_pr_curves(
        {labels[m]: r for m, r in results.items()},
        os.path.join(workdir, "pr_curves.png"),
        title=f"N4-Fields, {config.preset} ({config.eval_split})",
    )
    shown = min(config.num_pictures, len(data))
    if shown:
        truth_title = "vessels (manual)" if config.dataset == "drive" else "ground truth"
        columns = {truth_title: [a.mean(0) for a in data.annotations[:shown]]}
        columns |= {labels[m]: maps[:shown] for m, maps in thinned.items()}
        edges.plot_edge_panels(
            data.images[:shown],
            columns,
            os.path.join(workdir, "panels.png"),
            captions={labels[m]: _per_image_caption(config, r, shown) for m, r in results.items()},
        )
    if config.tolerances and config.dataset != "drive":
        by_tolerance = {
            labels[m]: {
                t: (results[m] if t == config.max_dist else score(config, thinned[m], data, t))
                for t in config.tolerances
            }
            for m in thinned
        }
        edges.plot_tolerance_scores(
            by_tolerance,
            os.path.join(workdir, "tolerance.png"),
            title=f"Scores against the matching tolerance ({config.preset})",
        )
        rows_tol = {
            name: {str(t): {"ods": r["ods"], "ois": r["ois"]} for t, r in by_t.items()}
            for name, by_t in by_tolerance.items()
        }
        write_atomic(os.path.join(workdir, "tolerance.json"), json.dumps(rows_tol, indent=2))
    print(table)
    return rows


def _budget(config: ml_collections.ConfigDict, train: EdgeData, evaluated: EdgeData) -> str:
    return (
        f"Budget: {len(train)} training images ({config.train_split}), {config.num_steps} SGD "
        f"steps of {config.batch_size} patches per network, committee of {config.committee}, "
        f"scales {tuple(config.scales)}, dictionary of {config.dictionary_size} patches "
        f"({config.search} search), stride {config.stride}; {len(evaluated)} evaluated images; "
        f"BSDS tolerance {config.max_dist}, {config.thresholds} thresholds, maps thinned by NMS. "
        f"{jax.device_count()} x {jax.devices()[0].device_kind}."
    )


def qualitative_images(config: ml_collections.ConfigDict) -> list[np.ndarray]:
    """Pictures without annotations to look at (sec. 3.4's qualitative results): the embedded
    photos for the edge presets, scikit-image's fundus photograph for DRIVE (scaled to DRIVE's
    584-pixel height); none for RGBD models."""
    from skimage.transform import resize

    count = config.qualitative_images
    if not count or config.dataset == "nyud":
        return []
    if config.dataset == "drive":
        import skimage.data

        photos = [skimage.data.retina()]
        side = 584
    else:
        from thesis_jax.data.embedded import embedded_photos

        photos = embedded_photos()
        side = 321 if config.dataset == "bsds" else min(config.shapes_size)
    out = []
    for photo in photos[:count]:
        scale = side / min(photo.shape[:2])
        shape = (round(photo.shape[0] * scale), round(photo.shape[1] * scale))
        out.append(resize(_as_float(photo), shape, anti_aliasing=True).astype(np.float32))
    return out


def _load_predictions(path: str, count: int, extra: int) -> tuple[list, list] | None:
    if not os.path.isfile(path):
        return None
    with np.load(path) as archive:
        maps = [archive[k].astype(np.float32) for k in sorted(archive.files) if k[0] == "m"]
        more = [archive[k].astype(np.float32) for k in sorted(archive.files) if k[0] == "q"]
    return (maps, more) if len(maps) == count and len(more) == extra else None


def _save_predictions(path: str, maps: Sequence[np.ndarray], extra: Sequence[np.ndarray]) -> None:
    import io

    arrays = {f"map{i:05d}": m.astype(np.float16) for i, m in enumerate(maps)}
    arrays |= {f"qualitative{i:03d}": m.astype(np.float16) for i, m in enumerate(extra)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def run_model(
    config: ml_collections.ConfigDict,
    model: str,
    train: EdgeData,
    evaluated: EdgeData,
    workdir: str,
    mesh: jax.sharding.Mesh,
    extra_images: Sequence[np.ndarray] = (),
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Trains (or reloads) `model`, then infers the evaluated and the extra (qualitative)
    images; None if interrupted."""
    folder = os.path.join(workdir, model)
    predictions_path = os.path.join(folder, "predictions.npz")
    cached = _load_predictions(predictions_path, len(evaluated), len(extra_images))
    if cached is not None:
        absl_logging.info("%s: reusing %s", model, predictions_path)
        return cached
    images = [*evaluated.images, *extra_images]
    if model == "sift":
        dictionary = build_sift_dictionary(config, train)
        maps = predict_model(config, model, images, None, None, [dictionary])
    else:
        pca = fit_targets(config, train, model)
        val_batch = _validation_batch(config, evaluated, model, pca)
        states = []
        for member in range(config.committee):
            run = train_network(config, train, model, member, pca, val_batch, workdir, mesh)
            if run.interrupted:
                return None
            states.append(run.state)
        arch = states[0].hparams.arch
        params = [jax.device_get(s.params) for s in states]
        if is_main_process():
            n4fields.save_export(os.path.join(folder, "export.msgpack"), params, arch, pca)
        dictionaries = (
            build_dictionaries(config, train, params, arch) if HEADS[model] == "code" else None
        )
        maps = predict_model(config, model, images, params, arch, dictionaries)
    # rounded as predictions.npz stores them, so a rerun that reloads them scores the same
    maps = [m.astype(np.float16).astype(np.float32) for m in maps]
    maps, extra = maps[: len(evaluated)], maps[len(evaluated) :]
    if is_main_process():
        _save_predictions(predictions_path, maps, extra)
    return maps, extra


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str
) -> dict[str, dict[str, float]] | None:
    """Every model of `config.models`, then the report; None if interrupted."""
    _check_config(config)
    core.presets.claim_workdir(
        config,
        workdir,
        may_differ=("log_every", "eval_every", "checkpoint_every", "num_pictures", "tolerances"),
    )
    needs_segmentations = "n4_ae" in config.models
    train = load_split(config, config.train_split, config.train_images, needs_segmentations)
    evaluated = load_split(config, config.eval_split, config.eval_images, needs_segmentations)
    mesh = parallel.data_mesh()
    absl_logging.info(
        "%d training images, %d evaluated images, %d devices",
        len(train),
        len(evaluated),
        mesh.devices.size,
    )
    extra_images = qualitative_images(config)
    predictions, qualitative = {}, {}
    for model in config.models:
        run = run_model(config, model, train, evaluated, workdir, mesh, extra_images)
        if run is None:
            return None
        predictions[model], qualitative[model] = run
    rows = write_report(config, evaluated, predictions, workdir, _budget(config, train, evaluated))
    if extra_images and is_main_process():
        edges.plot_edge_panels(
            extra_images,
            {MODEL_NAMES[m]: thin(config, maps) for m, maps in qualitative.items()},
            os.path.join(workdir, "qualitative.png"),
        )
    return rows


def tour(workdir: str, budget: float = 1.0) -> Any:
    """The N4-Fields section of `experiments.tour`: `shapes`, fewer images, 3 models."""
    from experiments.configs.n4fields import THESIS_TABLE
    from experiments.tour_section import TourSection

    steps = max(10, int(1500 * budget))  # the preset's: fewer leave the baselines at the prior
    models = ("n4", "central", "patch")
    config = core.get_config(
        "shapes",
        _PRESETS,
        {
            "num_steps": steps,
            "models": models,
            "train_images": max(4, int(100 * budget)),
            "eval_images": max(2, int(12 * budget)),
            "dictionary_size": max(2000, int(20_000 * budget)),
            "pca_samples": max(2000, int(10_000 * budget)),
            "val_patches": 512,
            "num_pictures": 3,
            "qualitative_images": 2,
            "tolerances": (),
            "log_every": max(1, steps // 10),
            "eval_every": steps,
            "checkpoint_every": steps,
        },
    )
    results = train_and_evaluate(config, workdir)
    if results is None:
        return None
    thesis = THESIS_TABLE["bsds"]
    return TourSection(
        title="N4-Fields: edges by nearest-neighbour neural codes (thesis ch. 3)",
        summary=(
            "Procedural images of overlapping shapes with exact edge maps. A CNN maps every "
            "34x34 patch to a 16-D code of its 16x16 edge annotation; the nearest neighbour of "
            "the code in a dictionary of training patches supplies the annotation, and the "
            "overlapping annotations are averaged into the edge map (sec. 3.3). CNN-central and "
            f"CNN-patch predict the centre pixel or the whole patch directly. {steps} steps per "
            "model; maps thinned by NMS and scored with the BSDS benchmark."
        ),
        pictures=[
            (
                os.path.join(workdir, "panels.png"),
                "held-out images: input, ground truth, every model (R/P/F, as fig. 3.7)",
            ),
            (os.path.join(workdir, "pr_curves.png"), "precision / recall curves (BSDS benchmark)"),
            (os.path.join(workdir, "qualitative.png"), "photographs the models never saw"),
        ],
        table_header=("model", "ODS / OIS / AP, shapes (ours)", "thesis, BSDS500"),
        table_rows=[
            (
                MODEL_NAMES[name],
                " / ".join(f"{row[k]:.3f}" for k in ("ods", "ois", "ap")),
                " / ".join(f"{v:.2f}" for v in thesis[name]),
            )
            for name, row in results.items()
        ],
        note="Full report: " + os.path.join(workdir, "results.md"),
    )


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    results = train_and_evaluate(config, workdir)
    if results is not None:
        absl_logging.info("report: %s", os.path.join(workdir, "results.md"))


if __name__ == "__main__":
    core.presets.run(main, name="n4fields", preset_file=_PRESETS, default_preset="shapes")
