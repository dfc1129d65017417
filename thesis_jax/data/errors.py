"""The one error every loader in `thesis_jax.data` raises when a dataset is not on disk.

No machine of this project reaches the internet (ARCHITECTURE.md, Data), so a missing dataset
fails fast with a message that names what is missing, every place that was searched, and the exact
steps that prepare it on a connected machine.
"""

from collections.abc import Sequence
from os import PathLike


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or one of its files) is not where the loader looked.

    Attributes:
      what: the missing thing, e.g. "BSDS500 images, split 'train'".
      looked_in: every path that was searched, in order.
      how_to_prepare: the steps (commands, URLs, expected layout) that fix it.
    """

    def __init__(
        self, what: str, looked_in: Sequence[str | PathLike[str]], how_to_prepare: str
    ) -> None:
        self.what = what
        self.looked_in = tuple(str(path) for path in looked_in)
        self.how_to_prepare = how_to_prepare
        searched = "\n".join(f"  - {path}" for path in self.looked_in) or "  (nowhere)"
        message = f"{what} not found.\nLooked in:\n{searched}\nHow to prepare it:\n" + "\n".join(
            f"  {line}" for line in how_to_prepare.strip().splitlines()
        )
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return type(self), (self.what, self.looked_in, self.how_to_prepare)
