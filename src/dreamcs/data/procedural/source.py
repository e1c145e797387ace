"""The ``procedural:N[:SEED]`` source of ``dreamcs data build``: library objects written as OBJ files.

The files go to ``$DREAMCS_PROCEDURAL_CACHE`` (default: ``<tempdir>/dreamcs-procedural``) under a
folder named by a hash of this package's source, so an edited generator never serves stale meshes;
each OBJ has a ``.json`` sidecar with its caption, so a resumed build reads instead of regenerating.
"""

from __future__ import annotations

import hashlib
import json
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


def _plain(x):
    """numpy scalars in params -> Python numbers for JSON."""
    return x.item() if hasattr(x, "item") else str(x)


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
    from dreamcs.data.procedural import library_keys, make_object
    from dreamcs.mesh.io import save_mesh
    from dreamcs.utils import atomic_write_text

    n, seed = parse_count_seed(spec, rest)
    folder = cache_dir()
    items = []
    for category, obj_seed in library_keys(n, seed):
        object_id = f"{category}-{obj_seed}"
        path, side = folder / f"{object_id}.obj", folder / f"{object_id}.json"
        try:  # the sidecar is written after the mesh, so its presence means both are complete
            caption = json.loads(side.read_text(encoding="utf-8"))["caption"]
        except (OSError, ValueError, KeyError):
            obj = make_object(category, obj_seed)
            save_mesh(obj.mesh, path)
            atomic_write_text(
                side,
                json.dumps(
                    {"caption": obj.caption, "category": category, "params": obj.params}, default=_plain
                ),
            )
            caption = obj.caption
        items.append(
            SourceItem(
                id=f"procedural/{object_id}",
                path=str(path),
                prompt=caption,
                source="procedural",
                object_id=object_id,
                caption=caption,
                extra={"category": category},
            )
        )
    return items
