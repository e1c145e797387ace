"""What the prior is trained on, and what it must never see.

    items = view_items(ViewDataConfig(procedural=3300))   # licensed real meshes + the procedural library
    verts, faces, caption = load_item(items[0])             # normalised into [-1, 1]^3, y up
    HELD_OUT_PROMPTS                                        # the Chamfer proof's prompts and their meshes
    write_heldout_gt("runs/heldout-gt")                     # gt.json + prompts.txt for `evaluate janus --gt`

Real meshes come from a folder of ``captions.csv`` + ``meshes/<id>.obj``; the default is the
licensed set shipped in ``dreamcs/assets/meshpref`` (the one the ``offline`` data preset uses: every
real mesh of ``../shared/data/meshes`` whose licence allows it, none of
``dreamcs.data.validation.HELD_OUT_OBJECTS``). A folder holding a held-out mesh is refused.
Procedural objects come from ``dreamcs.data.procedural.library`` (round-robin over its 33
categories), their captions from their parameters.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dreamcs.prior.data import ViewDataConfig

#: head nouns that make a poor "a {category}" caption, mapped to a better one
_CATEGORY_FIX = {"frame": "door", "stairs": "staircase", "bear": "teddy bear"}


def category_of(caption: str) -> str:
    """A coarse category from a caption: its head noun (the last word before "with ..."),
    e.g. "a round bar table" -> "table", "a designer chair with a sloped back" -> "chair"."""
    head = re.split(r"\s+(?:with|for|on|in)\s+", caption.strip().lower())[0]
    words = re.findall(r"[a-z0-9][a-z0-9\-]*", head)
    if not words:
        raise ValueError(f"caption {caption!r} has no words to take a category from")
    return _CATEGORY_FIX.get(words[-1], words[-1])


def category_name(category: str) -> str:
    """A procedural category as words: ``street_lamp`` -> ``street lamp``."""
    return category.replace("_", " ")


@dataclass(frozen=True)
class ViewItem:
    """One object to render: ``key`` is the mesh path (real) or ``procedural:CATEGORY:SEED``;
    ``caption`` is None for procedural objects until generated (it comes from their parameters);
    ``up`` the up axis of a real mesh file."""

    id: str
    key: str
    source: str
    category: str
    caption: str | None
    n_views: int
    up: str = "y"


def read_captioned_meshes(root: str | Path | None = None, limit: int | None = None) -> list[tuple[str, str, Path]]:
    """(id, caption, obj path) per row of ``root/captions.csv``, sorted by id; checks every file and
    refuses a held-out mesh (``dreamcs.data.validation.is_held_out``)."""
    from dreamcs.data.embedded import ASSETS
    from dreamcs.data.validation import is_held_out

    root = Path(root) if root is not None else ASSETS
    csv_path = root / "captions.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no captions.csv (expected id,caption rows) in the mesh folder")
    rows = []
    with open(csv_path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(f"{csv_path}: line {n} is not 'id,caption': {row!r}")
            mesh_id, caption = row[0].strip(), ",".join(row[1:]).strip()
            path = root / "meshes" / f"{mesh_id}.obj"
            if not path.is_file():
                raise FileNotFoundError(f"{csv_path}: line {n}: mesh {path} not found")
            if is_held_out(mesh_id):
                raise ValueError(f"{csv_path}: line {n}: {mesh_id!r} is a held-out object "
                                 "(dreamcs.data.validation.HELD_OUT_OBJECTS) and may not be trained on")
            rows.append((mesh_id, caption, path))
    if not rows:
        raise ValueError(f"{csv_path}: no captioned meshes")
    rows.sort()
    return rows[:limit] if limit else rows


def view_items(cfg: ViewDataConfig) -> list[ViewItem]:
    """The real meshes (``cfg.real``, ``cfg.meshes``, ``cfg.limit``; ``cfg.n_views`` each), then
    ``cfg.procedural`` library objects (seed ``cfg.procedural_seed``; ``cfg.procedural_views`` each)."""
    from dreamcs.data.procedural import library_keys

    items = []
    if cfg.real:
        for mesh_id, caption, path in read_captioned_meshes(cfg.meshes, cfg.limit):
            items.append(ViewItem(mesh_id, str(path), "real", category_of(caption), caption, cfg.n_views))
    for category, seed in library_keys(cfg.procedural, cfg.procedural_seed):
        items.append(ViewItem(f"{category}-{seed}", f"procedural:{category}:{seed}", "procedural",
                              category_name(category), None, cfg.procedural_views))
    if not items:
        raise ValueError("view data: no objects (set data.real=true or data.procedural > 0)")
    return items


def load_item(item: ViewItem) -> tuple[np.ndarray, np.ndarray, str]:
    """vertices (V, 3) float64 in [-1, 1]^3 (bounding box centred, longest side 2), faces (F, 3),
    caption."""
    if item.source == "procedural":
        from dreamcs.data.procedural import make_object

        _, category, seed = item.key.split(":")
        obj = make_object(category, int(seed))
        return np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), obj.caption
    from dreamcs.mesh import load_mesh, normalize

    mesh = normalize(load_mesh(item.key), up=item.up)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), str(item.caption)


def items_fingerprint(items: list[ViewItem]) -> str:
    """A hash of what the items render to: real mesh files' bytes, procedural keys and the
    procedural generators' source (a changed generator must not reuse old renders)."""
    import dreamcs.data.procedural as proc

    h = hashlib.sha1()
    if any(it.source == "procedural" for it in items):
        for f in sorted(Path(proc.__file__).parent.glob("*.py")):
            h.update(f.read_bytes())
    for it in items:
        h.update(f"{it.id}\t{it.key}\t{it.caption}\t{it.n_views}\n".encode())
        if it.source == "real":
            h.update(hashlib.sha1(Path(it.key).read_bytes()).digest())
    return h.hexdigest()


# -- the held-out prompts of the Chamfer proof --------------------------------------------------
@dataclass(frozen=True)
class HeldOutPrompt:
    """A known-object prompt whose ground truth (``mesh``, relative to ``../shared/data/meshes``,
    one of ``HELD_OUT_OBJECTS``; its up axis in ``UP_AXIS``) the prior never sees; ``category`` is
    the procedural category the prompt names."""

    prompt: str
    mesh: str
    category: str


#: prompts for "SDS with the prior reaches Chamfer <= 0.08 on held-out objects" (issue 18); the
#: words are the procedural library's synonyms, so the prior knows the category but not the object
HELD_OUT_PROMPTS: tuple[HeldOutPrompt, ...] = (
    HeldOutPrompt("a mug", "greg_turk_ply/mug.ply", "mug"),
    HeldOutPrompt("a street lamp", "greg_turk_ply/street_lamp.ply", "street_lamp"),
    HeldOutPrompt("an urn", "greg_turk_ply/urn2.ply", "vase"),
    HeldOutPrompt("a sports car", "greg_turk_ply/big_porsche.ply", "car"),
    HeldOutPrompt("a pickup truck", "greg_turk_ply/pickup_big.ply", "car"),
    HeldOutPrompt("a race car", "threestudio_shapes/nascar.obj", "car"),
    HeldOutPrompt("a cabinet", "threestudio_shapes/cabin.obj", "cabinet"),  # not a cabin: see CAPTION_FIXES
    HeldOutPrompt("a fighter jet", "greg_turk_ply/f16.ply", "airplane"),
    HeldOutPrompt("an airplane", "greg_turk_ply/airplane.ply", "airplane"),
    HeldOutPrompt("a teapot", "greg_turk_ply/teapot.ply", "teapot"),
    HeldOutPrompt("a sailing ship", "greg_turk_ply/galleon.ply", "boat"),
    HeldOutPrompt("a kerosene lamp", "greg_turk_ply/kerolamp.ply", "lamp"),
)


def write_heldout_gt(out: str | Path, meshes_dir: str | Path | None = None) -> Path:
    """Write ``out/meshes/<stem>.ply`` (each ground truth turned y-up and normalised, so that
    ``evaluate janus --gt`` compares like with like), ``out/gt.json`` ({prompt: mesh}) and
    ``out/prompts.txt``; returns the gt.json path. A missing mesh is an error naming it."""
    from dreamcs.data.validation import UP_AXIS, shared_meshes_dir
    from dreamcs.mesh import load_mesh, normalize, save_mesh
    from dreamcs.utils import atomic_write_text

    root = Path(meshes_dir) if meshes_dir is not None else shared_meshes_dir()
    out = Path(out)
    (out / "meshes").mkdir(parents=True, exist_ok=True)
    gt = {}
    for p in HELD_OUT_PROMPTS:
        src = root / p.mesh
        if not src.is_file():
            raise FileNotFoundError(f"{src}: held-out ground truth not found (pass the shared meshes folder)")
        name = f"meshes/{Path(p.mesh).stem}.ply"
        save_mesh(normalize(load_mesh(src), up=UP_AXIS.get(p.mesh, "y")), out / name)
        gt[p.prompt] = name
    atomic_write_text(out / "prompts.txt", "".join(p.prompt + "\n" for p in HELD_OUT_PROMPTS))
    return atomic_write_text(out / "gt.json", json.dumps(gt, indent=1) + "\n")
