"""The numbers the thesis reports, beside which the reports put ours.

One table per method, keyed by the preset whose experiment it reproduces. Methods read their own
table; nothing here is computed.
"""

from __future__ import annotations

# Table 5.I: target accuracy of source only, subspace alignment, DANN and train on target.
_MNIST_MNISTM = {"source_only": 0.5225, "sa": 0.5690, "dann": 0.7666, "train_on_target": 0.9596}
DANN = {
    "mnist_mnistm": _MNIST_MNISTM,
    "mnist5k_mnistm": _MNIST_MNISTM,  # the same experiment on 4,000 of MNIST's digits
    "synnum_svhn": {"source_only": 0.8674, "sa": 0.8644, "dann": 0.9109, "train_on_target": 0.9220},
    "svhn_mnist": {"source_only": 0.5490, "sa": 0.5932, "dann": 0.7385, "train_on_target": 0.9942},
    "synsigns_gtsrb": {
        "source_only": 0.7900,
        "sa": 0.8165,
        "dann": 0.8865,
        "train_on_target": 0.9980,
    },
}

# Table 3.I: (ODS, OIS, AP) on the BSDS500 test set (any annotator) and on NYU RGBD.
_BSDS = {
    "sift": (0.59, 0.60, 0.60),
    "central": (0.72, 0.74, 0.75),
    "patch": (0.73, 0.75, 0.74),
    "n4": (0.75, 0.76, 0.77),
    "n4_ae": (0.75, 0.77, 0.78),
}
N4FIELDS = {
    "bsds": _BSDS,
    "bsds_ae": _BSDS,
    "nyud": {
        "central": (0.60, 0.62, 0.55),
        "patch": (0.58, 0.59, 0.49),
        "n4": (0.61, 0.62, 0.56),
        "n4_ae": (0.63, 0.64, 0.58),
    },
}
