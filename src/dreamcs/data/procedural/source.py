"""The ``procedural:N[:SEED]`` source of ``dreamcs data build``: library objects written as OBJ files.

The files go to ``$DREAMCS_PROCEDURAL_CACHE`` (default: ``<tempdir>/dreamcs-procedural``) under a
folder named by a hash of this package's source, so an edited generator never serves stale meshes
and a resumed build finds the files it wrote before.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from dreamcs.data.sources import SourceError, SourceItem


def generator_hash() -> str:
    """12 hex digits over every ``.py`` file of this package (names and contents)."""
    h = hashlib.sha1()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    root = os.environ.get("DREAMCS_PROCEDURAL_CACHE") or os.path.join(
        tempfile.gettempdir(), "dreamcs-procedural"
    )
    return Path(root) / generator_hash()


def parse_count_seed(spec: str, rest: str) -> tuple[int, int]:
    """'N' or 'N:SEED' -> (N, SEED); anything else is a ``SourceError`` naming the spec."""
    parts = rest.split(":")
    try:
        if len(parts) > 2:
            raise ValueError
        n, seed = int(parts[0]), int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise SourceError(spec, "expected procedural:N[:SEED] with integers N >= 1 and SEED >= 0") from None
    if n < 1 or seed < 0:
        raise SourceError(spec, "expected procedural:N[:SEED] with integers N >= 1 and SEED >= 0")
    return n, seed


def procedural_items(spec: str, rest: str) -> list[SourceItem]:
    """``N`` items of ``library(N, SEED)``: prompt = caption = the generated caption."""
    from dreamcs.data.procedural import library
    from dreamcs.mesh.io import save_mesh

    n, seed = parse_count_seed(spec, rest)
    folder = cache_dir()
    items = []
    for obj in library(n, seed):
        path = folder / f"{obj.object_id}.obj"
        if not path.is_file():
            save_mesh(obj.mesh, path)
        items.append(
            SourceItem(
                id=f"procedural/{obj.object_id}",
                path=str(path),
                prompt=obj.caption,
                source="procedural",
                object_id=obj.object_id,
                caption=obj.caption,
                extra={"category": obj.category},
            )
        )
    return items
