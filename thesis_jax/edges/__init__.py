"""Edge-detection evaluation shared by N4-Fields (thesis ch. 3, sec. 3.4).

- `bsds`: the BSDS500 boundary benchmark (ODS / OIS / AP) re-derived from the BSR reference code
  (Arbeláez et al., 2011), exact to the benchmark's self-test.
- `correspondence`: its pixel matching (`correspondPixels`), an exact minimum-cost assignment.
- `bsds_data`: BSDS500 readers (BSR layout).
- `nms`: edge thinning by the non-maximum suppression of Dollár & Zitnick (2013).
- `drive`: DRIVE vessel segmentation readers and pixel-level PR / ROC evaluation (fig. 3.10).
- `nyud`: NYUD v2 RGBD images with boundary annotations in the BSDS format (`load_nyud`).
- `plots`: PR curves with iso-F contours and scores against the tolerance (fig. 3.5).

Importing this package imports neither JAX nor matplotlib.
"""

from thesis_jax.edges.bsds import (
    average_precision,
    benchmark_thresholds,
    best_f_interpolated,
    boundary_counts,
    collect_boundary_scores,
    evaluate_boundary_image,
    evaluate_bsds,
    f_measure,
    save_bsds_results,
    thin_boundaries,
)
from thesis_jax.edges.bsds_data import (
    bsds_data_dir,
    load_boundary_png,
    load_bsds500,
    load_bsds_ground_truth,
    load_bsds_segmentations,
)
from thesis_jax.edges.correspondence import correspond_pixels
from thesis_jax.edges.drive import evaluate_vessels, load_drive
from thesis_jax.edges.nms import convolve_triangle, edge_nms, edge_orientation
from thesis_jax.edges.nyud import load_nyud
from thesis_jax.edges.plots import (
    edge_picture,
    plot_edge_panels,
    plot_pr_curves,
    plot_tolerance_scores,
)

__all__ = [
    "average_precision",
    "benchmark_thresholds",
    "best_f_interpolated",
    "boundary_counts",
    "bsds_data_dir",
    "collect_boundary_scores",
    "convolve_triangle",
    "correspond_pixels",
    "edge_nms",
    "edge_orientation",
    "edge_picture",
    "evaluate_boundary_image",
    "evaluate_bsds",
    "evaluate_vessels",
    "f_measure",
    "load_boundary_png",
    "load_bsds500",
    "load_bsds_ground_truth",
    "load_bsds_segmentations",
    "load_drive",
    "load_nyud",
    "plot_edge_panels",
    "plot_pr_curves",
    "plot_tolerance_scores",
    "save_bsds_results",
    "thin_boundaries",
]
