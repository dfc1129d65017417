"""Face and eye landmarks on real images, offline: MediaPipe's face mesh with iris refinement.

The legacy `mediapipe.solutions.face_mesh` graph (MediaPipe 0.10.21, the last release whose
wheel carries its models) finds faces and returns 478 points per face: the 468-point mesh plus
5 points per iris. `thesis_jax.deepwarp.gaze` maps them to the 7 landmarks per eye of sec. 4.3.1.

MediaPipe 0.10.21 declares numpy<2 and protobuf<5, which this project's JAX (numpy>=2.2) and
TensorFlow (protobuf>=6.31) exclude, so pip cannot install it with its dependencies here. It runs
with the newer ones: install it with `--no-deps` (the `gaze` extra carries what it needs:
OpenCV, flatbuffers, attrs) and `FaceMesh` patches the one place its Python code uses a protobuf
attribute that protobuf 6 removed (`FieldDescriptor.label`, when it sets calculator options).

    mesh = FaceMesh(max_faces=4)
    points = mesh(rgb_uint8_image)          # (F, 478, 2) (x, y) image pixels, largest face first
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

MEDIAPIPE_VERSION = "0.10.21"
NUM_MESH_POINTS = 478
INSTALL_HINT = (
    f"pip install 'thesis_jax[gaze]' && pip install --no-deps mediapipe=={MEDIAPIPE_VERSION}"
)


class MissingMediaPipeError(ImportError):
    """MediaPipe (or its face mesh) is not installed; the message says how to install it."""


def import_mediapipe() -> ModuleType:
    """Imports MediaPipe lazily, with the protobuf patch; a clear error naming the install."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        # Its C++ extension prints a harmless protobuf AttributeError at import; keep it quiet.
        with contextlib.redirect_stderr(io.StringIO()):
            import mediapipe
            from mediapipe.python import solution_base
            from mediapipe.python.solutions import face_mesh  # noqa: F401
    except ImportError as e:
        raise MissingMediaPipeError(
            f"face landmarks need MediaPipe {MEDIAPIPE_VERSION} with its face mesh ({e}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    from google.protobuf import descriptor

    if not hasattr(descriptor.FieldDescriptor, "label"):
        solution_base.SolutionBase._modify_calculator_options = _modify_calculator_options
    return mediapipe


def _modify_calculator_options(
    self: Any, graph_config: Any, calculator_params: Mapping[str, Any]
) -> None:
    """`SolutionBase._modify_calculator_options` for protobuf >= 6 (`is_repeated`, no `label`)."""
    from mediapipe.python import solution_base

    by_node: dict[str, list[tuple[str, Any]]] = {}
    for compound, value in calculator_params.items():
        node_name, _, field = compound.partition(".")
        by_node.setdefault(node_name, []).append((field, value))

    def set_fields(options: Any, fields: Iterable[tuple[str, Any]]) -> None:
        for field, value in fields:
            if value is None:
                options.ClearField(field)
            elif options.DESCRIPTOR.fields_by_name[field].is_repeated:
                options.ClearField(field)
                getattr(options, field).extend(value)
            else:
                setattr(options, field, value)

    modified = 0
    for node in graph_config.node:
        if node.name not in by_node:
            continue
        options_type = solution_base.CALCULATOR_TO_OPTIONS.get(node.calculator)
        if options_type is None:
            raise ValueError(f"modifying the calculator options of {node.name} is not supported")
        if node.node_options:
            for element in node.node_options:
                if element.type_url.split("/")[-1] == options_type.DESCRIPTOR.full_name:
                    options = options_type.FromString(element.value)
                    set_fields(options, by_node[node.name])
                    element.value = options.SerializeToString()
                    break
            else:
                options = options_type()
                set_fields(options, by_node[node.name])
                node.node_options.add().Pack(options)
        else:
            set_fields(node.options.Extensions[options_type.ext], by_node[node.name])
        modified += 1
    if modified < len(by_node):
        raise ValueError("not all calculator params are valid")


class FaceMesh:
    """Owns one MediaPipe face-mesh graph (478 points per face, irises refined).

    Args:
      max_faces: at most this many faces per image.
      video: track faces from frame to frame (faster; frames must come in order); False treats
        every image on its own.
      min_confidence: MediaPipe's detection and tracking confidence thresholds.
    """

    def __init__(self, *, max_faces: int = 4, video: bool = False, min_confidence: float = 0.5):
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        mediapipe = import_mediapipe()
        self._graph = mediapipe.solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Faces in an RGB uint8 image (H, W, 3): (F, 478, 2) float64 (x, y) pixel positions
        (pixel centres at integers), largest face (by the area of its points' box) first."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"FaceMesh expects an RGB uint8 (H, W, 3) image, got "
                             f"{image.dtype} {image.shape}")  # fmt: skip
        height, width = image.shape[:2]
        result = self._graph.process(np.ascontiguousarray(image))
        faces = result.multi_face_landmarks or []
        points = np.array(
            [[(p.x * width - 0.5, p.y * height - 0.5) for p in face.landmark] for face in faces],
            np.float64,
        ).reshape(len(faces), NUM_MESH_POINTS, 2)
        return points[np.argsort(-face_areas(points), kind="stable")]

    def close(self) -> None:
        self._graph.close()

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def face_areas(points: np.ndarray) -> np.ndarray:
    """Area (F,) of the box around each face's points (F, N, 2)."""
    points = np.asarray(points, np.float64)
    if points.shape[0] == 0:
        return np.zeros(0)
    extent = points.max(axis=1) - points.min(axis=1)
    return extent[:, 0] * extent[:, 1]
