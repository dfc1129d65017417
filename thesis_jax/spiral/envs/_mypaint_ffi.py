"""ctypes bindings to the part of libmypaint's 1.x C API the paint environment uses.

Declared after the public headers of libmypaint 1.5/1.6 (soname `libmypaint-1.5.so.1`, Debian
package `libmypaint-1.5-1`): `mypaint-brush.h`, `mypaint-surface.h`, `mypaint-tiled-surface.h`
and `mypaint-fixed-tiled-surface.h`. Two details differ from libmypaint's unreleased 2.x API and
matter for the ABI:

- `mypaint_brush_stroke_to` takes eight arguments, the last a `double dtime` (2.x added view
  zoom, view rotation and barrel rotation). Its sibling `mypaint_brush_stroke_to_2` takes those
  three as well but draws on a `MyPaintSurface2`, which the fixed tiled surface is not.
- Tiles hold `uint16_t` premultiplied RGBA in fix15 (`1 << 15` is 1.0), 64 x 64 pixels, row-major
  (2.x moved to float tiles).

Brush setting ids are looked up by name with `mypaint_brush_setting_from_cname` rather than
copied from the generated enum, so they always agree with the loaded library.
"""

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

LIBRARY_ENV_VAR = "THESIS_JAX_LIBMYPAINT"
LIBRARY_NAME = "libmypaint-1.5.so.1"
INSTALL_COMMAND = "sudo apt-get install libmypaint-1.5-1 mypaint-brushes"
TILE_SIZE = 64
FIX15_ONE = 1 << 15


class LibMyPaintUnavailableError(OSError):
    """The libmypaint shared library could not be loaded."""


class _Brush(ctypes.Structure):
    """Opaque `MyPaintBrush`."""


class _Surface(ctypes.Structure):
    """Opaque `MyPaintSurface` (the first member of every surface struct)."""


class _TiledSurface(ctypes.Structure):
    """Opaque `MyPaintTiledSurface` (the first member of `MyPaintFixedTiledSurface`)."""


class _FixedTiledSurface(ctypes.Structure):
    """Opaque `MyPaintFixedTiledSurface`."""


BrushPointer = ctypes.POINTER(_Brush)
SurfacePointer = ctypes.POINTER(_Surface)
TiledSurfacePointer = ctypes.POINTER(_TiledSurface)
FixedTiledSurfacePointer = ctypes.POINTER(_FixedTiledSurface)


class TileRequest(ctypes.Structure):
    """`MyPaintTileRequest` of libmypaint 1.x (`gboolean` is a C `int`)."""

    _fields_ = (
        ("tx", ctypes.c_int),
        ("ty", ctypes.c_int),
        ("readonly", ctypes.c_int),
        ("buffer", ctypes.POINTER(ctypes.c_uint16)),
        ("context", ctypes.c_void_p),
        ("thread_id", ctypes.c_int),
        ("mipmap_level", ctypes.c_int),
    )


_float = ctypes.c_float
_PROTOTYPES = {
    # name: (restype, argtypes)
    "mypaint_fixed_tiled_surface_new": (FixedTiledSurfacePointer, (ctypes.c_int, ctypes.c_int)),
    "mypaint_fixed_tiled_surface_interface": (SurfacePointer, (FixedTiledSurfacePointer,)),
    "mypaint_surface_unref": (None, (SurfacePointer,)),
    "mypaint_surface_begin_atomic": (None, (SurfacePointer,)),
    # The second argument is `MyPaintRectangle *roi`; NULL is allowed (the tiled surface checks).
    "mypaint_surface_end_atomic": (None, (SurfacePointer, ctypes.c_void_p)),
    "mypaint_tile_request_init": (
        None,
        (ctypes.POINTER(TileRequest), ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int),
    ),
    "mypaint_tiled_surface_tile_request_start": (
        None,
        (TiledSurfacePointer, ctypes.POINTER(TileRequest)),
    ),
    "mypaint_tiled_surface_tile_request_end": (
        None,
        (TiledSurfacePointer, ctypes.POINTER(TileRequest)),
    ),
    "mypaint_brush_new": (BrushPointer, ()),
    "mypaint_brush_unref": (None, (BrushPointer,)),
    "mypaint_brush_from_defaults": (None, (BrushPointer,)),
    "mypaint_brush_from_string": (ctypes.c_int, (BrushPointer, ctypes.c_char_p)),
    "mypaint_brush_reset": (None, (BrushPointer,)),
    "mypaint_brush_new_stroke": (None, (BrushPointer,)),
    "mypaint_brush_set_base_value": (None, (BrushPointer, ctypes.c_int, _float)),
    "mypaint_brush_get_base_value": (_float, (BrushPointer, ctypes.c_int)),
    "mypaint_brush_stroke_to": (
        ctypes.c_int,
        (BrushPointer, SurfacePointer, _float, _float, _float, _float, _float, ctypes.c_double),
    ),
    "mypaint_brush_setting_from_cname": (ctypes.c_int, (ctypes.c_char_p,)),
}


def _candidate_paths() -> list[str]:
    override = os.environ.get(LIBRARY_ENV_VAR)
    if override:
        return [override]
    found = ctypes.util.find_library("mypaint-1.5")
    return [LIBRARY_NAME] + ([found] if found and found != LIBRARY_NAME else [])


def load_library() -> ctypes.CDLL:
    """The libmypaint shared library with typed prototypes.

    `$THESIS_JAX_LIBMYPAINT`, when set, names the library file to load instead of the system one.

    Raises:
      LibMyPaintUnavailableError: no candidate loads; the message says what to install.
    """
    return _load(tuple(_candidate_paths()))


@functools.cache
def _load(candidates: tuple[str, ...]) -> ctypes.CDLL:
    errors = []
    for path in candidates:
        try:
            library = ctypes.CDLL(path)
        except OSError as error:
            errors.append(f"{path}: {error}")
            continue
        missing = [name for name in _PROTOTYPES if not hasattr(library, name)]
        if missing:
            errors.append(f"{path}: not the libmypaint 1.x API (lacks {', '.join(missing)})")
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            function = getattr(library, name)
            function.restype = restype
            function.argtypes = argtypes
        return library
    raise LibMyPaintUnavailableError(
        "the SPIRAL paint environment needs libmypaint 1.5/1.6, which could not be loaded "
        f"({'; '.join(errors)}). Install it with `{INSTALL_COMMAND}` (Debian/Ubuntu), or set "
        f"{LIBRARY_ENV_VAR} to the path of {LIBRARY_NAME}."
    )


def setting_id(library: ctypes.CDLL, cname: str) -> int:
    """The `MyPaintBrushSetting` value of a setting's canonical name, e.g. "radius_logarithmic"."""
    value = library.mypaint_brush_setting_from_cname(cname.encode())
    if value < 0:
        raise ValueError(f"libmypaint has no brush setting named {cname!r}")
    return value


@contextmanager
def tile(
    library: ctypes.CDLL, surface: TiledSurfacePointer, tx: int, ty: int, *, readonly: bool
) -> Iterator[np.ndarray]:
    """The fix15 RGBA pixels of tile (tx, ty), a uint16 [64, 64, 4] view valid inside the block."""
    request = TileRequest()
    library.mypaint_tile_request_init(ctypes.byref(request), 0, tx, ty, int(readonly))
    library.mypaint_tiled_surface_tile_request_start(surface, ctypes.byref(request))
    try:
        if not request.buffer:
            raise RuntimeError(f"libmypaint returned no buffer for tile ({tx}, {ty})")
        yield np.ctypeslib.as_array(request.buffer, shape=(TILE_SIZE, TILE_SIZE, 4))
    finally:
        library.mypaint_tiled_surface_tile_request_end(surface, ctypes.byref(request))
