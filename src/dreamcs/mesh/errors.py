"""The one error type of the mesh core."""

from __future__ import annotations

import os


class MeshError(ValueError):
    """A mesh that cannot be read or used, with the file it came from and why.

    ``path`` is the file (or a label such as ``"<mesh>"`` for an in-memory mesh); ``reason`` is a
    short human-readable explanation. ``str(err)`` is ``"<path>: <reason>"``.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = str(path) if path is not None else "<mesh>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across a process pool
        return (type(self), (self.path, self.reason))
