"""The user's files in and the command's files out, for the tools that run a trained model on
a user's own data (`experiments.edges`, `experiments.paint`, `experiments.dann_predict`).

`expand_inputs` turns `--input` (a file, a folder or a glob) into a sorted list of files with the
wanted suffixes; `plan_outputs` pairs each with its output: one input writes `--output` itself,
several write `<stem><suffix>` into the `--output` folder. An input is never replaced, an existing
output only with `overwrite`. `read_image` decodes a picture or says in one line why it cannot.
Every problem is a `UserError`: one line, no traceback. `cache_root` is where the project keeps
what it builds once (datasets rendered offline, compiled kernels).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thesis_jax.core.errors import UserError
from thesis_jax.core.metrics import write_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/thesis_jax`; by default `~/.cache/thesis_jax`."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root).expanduser() / "thesis_jax"


class InputError(UserError):
    """A problem with the user's files; the message is shown as is."""


def image_files(
    folder: Path, *, recursive: bool = False, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """The files of `folder` (with its subfolders if `recursive`) with one of `suffixes`,
    sorted; hidden files and folders are skipped."""
    listing = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in listing
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def expand_inputs(
    spec: str | None, suffixes: Sequence[str] = IMAGE_SUFFIXES, *, recursive: bool = False
) -> list[Path]:
    """The files `spec` names: one file (any suffix; decoding says if it is not one), the files
    of a folder with one of `suffixes` (its subfolders' too if `recursive`), or a glob's
    matches, sorted."""
    if not spec:
        raise InputError("--input is required: a file, a folder or a glob such as 'photos/*.jpg'")
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = image_files(path, recursive=recursive, suffixes=suffixes)
        if not found:
            raise InputError(f"--input {spec}: no files ending in {', '.join(suffixes)} in it")
        return found
    if glob.has_magic(spec):
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec)) if Path(p).is_file())
        if not found:
            raise InputError(f"--input {spec}: the pattern matches no file")
        return found
    raise InputError(f"--input {spec}: no such file or folder")


class Skips:
    """The inputs a command could not use. With one input its problem stops the run at once;
    with several each is logged and skipped, and `finish` (after the others are written) ends
    the run with one line that counts them and names the first: "{n} of {total} {what}: ..."."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.messages = total, what, []

    def skip(self, message: str) -> None:
        if self.total == 1:
            raise InputError(message)
        from absl import logging as absl_logging

        self.messages.append(message)
        absl_logging.warning("%s; skipped", message)

    def finish(self) -> None:
        if self.messages:
            count = len(self.messages)
            raise InputError(f"{count} of {self.total} {self.what}: {self.messages[0]}")


def plan_outputs(
    inputs: Sequence[Path],
    output: str | None,
    *,
    suffix: str,
    allowed: Sequence[str],
    overwrite: bool,
) -> list[Path]:
    """Where each input's result goes, checked before any work starts.

    One input: `output` is the file (default `<input stem><suffix>` beside the input); its
    extension must be one of `allowed`. Several inputs: `output` is a folder (made if missing;
    default: one named after the suffix, `edges` for `_edges.png`, beside the first input),
    each result `<input stem><suffix>` in it. Outputs that would replace an input, or land on
    one path twice, are refused; existing ones are refused unless `overwrite`.
    """
    if len(inputs) == 1 and (output is None or not Path(output).is_dir()):
        source = inputs[0]
        target = Path(output) if output else source.with_name(source.stem + suffix)
        if target.suffix.lower() not in allowed:
            raise InputError(f"--output {target}: name a file ending in {', '.join(allowed)}")
        targets = [target]
    else:
        folder = Path(output) if output else inputs[0].parent / suffix.strip("_.").split(".")[0]
        if folder.exists() and not folder.is_dir():
            raise InputError(f"--output {folder}: {len(inputs)} inputs need a folder, not a file")
        targets = [folder / (source.stem + suffix) for source in inputs]
        if len(set(targets)) < len(targets):
            names = sorted({t.name for t in targets if targets.count(t) > 1})
            raise InputError(f"two inputs would write the same output {names[0]}; rename one")
    sources = {p.resolve() for p in inputs}
    for target in targets:
        if target.resolve() in sources:
            raise InputError(f"--output {target} is one of the inputs, which are never replaced")
        if target.is_dir():
            raise InputError(f"--output {target} is a folder; name a file in it")
        if target.exists() and not overwrite:
            raise InputError(f"--output {target} exists; pass --overwrite to replace it")
    for folder in {t.parent for t in targets}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(
                f"--output {folder}: cannot create the folder ({e.strerror})"
            ) from None
    return targets


def resolve_shipped(name_or_path: str, shipped: dict[str, str], what: str, hint: str) -> str:
    """The file of a model shipped in the package by name (`shipped`: name -> path), or
    `name_or_path` itself if it is a file; FileNotFoundError naming what else it can be."""
    if name_or_path in shipped:
        if not os.path.isfile(shipped[name_or_path]):
            raise FileNotFoundError(
                f"the shipped {what} {name_or_path!r} is missing from this install "
                f"({shipped[name_or_path]}): reinstall thesis_jax"
            )
        return shipped[name_or_path]
    path = os.path.expanduser(name_or_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {what} at {name_or_path!r}: give {hint} or a shipped {what}'s name "
            f"({', '.join(shipped)})"
        )
    return path


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """The picture's pixels, uint8 (H, W, 3) for "RGB", (H, W) for "L"; InputError if PIL
    cannot decode the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            return np.asarray(picture.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        reason = "not an image PIL can read" if isinstance(e, UnidentifiedImageError) else str(e)
        raise InputError(f"cannot read {path}: {reason}") from None


def write_image(path: Path, pixels: np.ndarray) -> None:
    """Writes uint8 pixels (or floats in [0, 1]) to `path` atomically (format from the suffix),
    so that an interrupted write never leaves half a picture under the output's name."""
    import io

    from PIL import Image

    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=Image.registered_extensions()[path.suffix.lower()])
    write_atomic(path, buffer.getvalue())
