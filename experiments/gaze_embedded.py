"""Before / after pictures of gaze correction on the embedded real faces (skimage.data).

    python -m experiments.gaze_embedded                      # -> runs/gaze/embedded/*.png
    python -m experiments.gaze_embedded --checkpoint=runs/deepwarp/eyes_varied

- `astronaut.png`: the astronaut's eyes (zoomed 4x), rows: input, redirected up by `--angle`,
  down by `--angle`; `astronaut_full.png`: the whole photo redirected up, beside the input.
- `lfw.png`: faces of `skimage.data.lfw_subset()` (25 x 25 grayscale) upscaled 8x (bicubic) so
  that MediaPipe can find them; pairs of (input, redirected up) crops around the eyes for the
  first `--lfw` faces it finds. The script prints how many faces were found.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "DeepWarp model (default: shipped).")
_ANGLE = flags.DEFINE_float("angle", 15.0, "Redirection in degrees (up, then down).")
_OUT = flags.DEFINE_string("out", "runs/gaze/embedded", "Output folder.")
_LFW = flags.DEFINE_integer("lfw", 12, "How many LFW faces to show.")


def main(argv: list[str]) -> None:
    del argv
    import skimage.data
    from PIL import Image

    from thesis_jax.core import image_grid, save_png
    from thesis_jax.deepwarp import gaze
    from thesis_jax.deepwarp.landmarks import FaceMesh

    redirector = gaze.GazeRedirector.load(_CHECKPOINT.value)
    os.makedirs(_OUT.value, exist_ok=True)
    angle = _ANGLE.value

    astronaut = skimage.data.astronaut()
    with FaceMesh() as mesh:
        meshes = mesh(astronaut)
    up = redirector.redirect_faces(astronaut, meshes[:1], angle)
    down = redirector.redirect_faces(astronaut, meshes[:1], -angle)
    eyes_region = (slice(80, 125), slice(180, 272))
    rows = [np.repeat(np.repeat(im[eyes_region], 4, 0), 4, 1) for im in (astronaut, up, down)]
    save_png(os.path.join(_OUT.value, "astronaut.png"), image_grid(rows, ncols=1, pad=4))
    save_png(os.path.join(_OUT.value, "astronaut_full.png"), image_grid([astronaut, up], ncols=2))

    faces = skimage.data.lfw_subset()
    tiles, found = [], 0
    with FaceMesh(max_faces=1) as mesh:
        for face in faces:
            big = Image.fromarray((np.clip(face, 0, 1) * 255).astype(np.uint8)).resize(
                (200, 200), Image.Resampling.BICUBIC
            )
            rgb = np.repeat(np.asarray(big)[..., None], 3, axis=-1)
            meshes = mesh(rgb)
            if len(meshes) == 0:
                continue
            found += 1
            if len(tiles) < 2 * _LFW.value:
                out = redirector.redirect_faces(rgb, meshes[:1], angle)
                region = (slice(40, 130), slice(10, 190))
                tiles += [rgb[region], out[region]]
    print(f"lfw_subset: MediaPipe found a face in {found} of {len(faces)} (upscaled 8x)")
    if tiles:
        save_png(os.path.join(_OUT.value, "lfw.png"), image_grid(tiles, ncols=4, pad=4))
    print(f"wrote {_OUT.value}/astronaut.png, astronaut_full.png, lfw.png")


if __name__ == "__main__":
    app.run(main)
