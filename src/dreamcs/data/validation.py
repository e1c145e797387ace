"""Object-disjoint evaluation sets of real meshes: the held-out validation set and the tuning split.

    dreamcs data validation --out VAL                      # held-out real objects (never trained or tuned on)
    dreamcs data validation --out TUNE --split tuning      # the same recipe on the licensed, training-side meshes
    dreamcs reward eval --ckpt RUN --data VAL              # every item is in the ``test`` split
    dreamcs data teacher-eval VAL                          # how well the geometric scorer separates them

Each object gives: its clean mesh with its own caption (label 1, preferred), one corrupted copy per
defect kind of ``dreamcs.data.defects.DEFECTS`` at a graded severity (label 0), and the clean mesh
with another object's caption (``wrong_prompt``, label 0). The labels are *given* (by construction,
not by a scorer): a clean item gets 5/5/5, a damaged one alignment 5 and realism = fidelity = 1, a
wrong prompt alignment 0 and realism = fidelity = 5 (overall 3.33, dispreferred).

**Held out** (``HELD_OUT_OBJECTS``): the 45 Greg Turk PLYs and threestudio's nascar and cabin, read at
run time from ``../shared/data/meshes`` (``--meshes`` or ``$DREAMCS_SHARED_DATA``); none of them may
be copied into the project, and none is in the embedded set. Training sets and the prior must leave
them out (``is_held_out``). Several PLYs are z-up; ``UP_AXIS`` turns them y-up (checked by eye on
front/side/top projections).

**Two halves** (``heldout_half``, since session 18): half A of the held-out objects may be looked
at while choosing (a development set beside the training side's own ``val`` splits); half B is only
reported. ``teacher-eval`` and ``reward eval`` print the ROC-AUC of each half.

**Tuning** (``tuning_objects``): the licensed meshes shipped in ``dreamcs/assets/meshpref`` (the
embedded set's objects, training-side), for tuning the scorer without looking at the held-out set.

The result is an ordinary dataset folder (``dreamcs.data.build`` over a manifest, every item in the
``test`` split) plus ``source/``: the prepared meshes and ``manifest.jsonl``, whose lines also carry
``defect``, ``severity`` and ``label`` for ``dreamcs.data.teacher``. Deterministic for a given seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_GREG_TURK = (
    "airplane ant apple balance beethoven big_atc big_dodge big_porsche big_spider canstick chopper cow "
    "cylinder dolphins egret f16 footbones fracttree galleon hammerhead helix hind kerolamp ketchup mug part "
    "pickup_big pump pumpa_tb sandal saratoga scissors shark sphere steeringweel stratocaster street_lamp "
    "teapot tennis_shoe tommygun trashcan turbine urn2 walkman weathervane"
).split()
#: paths (relative to ``../shared/data/meshes``) of the objects kept out of every training and tuning loop
HELD_OUT_OBJECTS: tuple[str, ...] = tuple(f"greg_turk_ply/{n}.ply" for n in _GREG_TURK) + (
    "threestudio_shapes/nascar.obj",
    "threestudio_shapes/cabin.obj",
)
#: meshes whose up axis is +z (the others are y-up); seen on front/side/top projections
UP_AXIS: dict[str, str] = {
    f"greg_turk_ply/{n}.ply": "z"
    for n in ("airplane", "big_spider", "chopper", "dolphins", "egret", "galleon", "hind", "ketchup",
              "pickup_big", "saratoga", "teapot", "trashcan", "weathervane")
}
#: captions that MANIFEST.csv gets wrong (seen on renders of all 47): threestudio's ``cabin.obj`` is
#: a two-door cabinet on feet (flat top, a door seam, no roof; "a small cabin" came from the file
#: name); ``big_atc`` is an all-terrain cycle, not "an armored military vehicle"; ``pump`` is a
#: high-heeled shoe, which "a pump" names only in one of its senses
CAPTION_FIXES: dict[str, str] = {
    "threestudio_shapes/cabin.obj": "a cabinet",
    "greg_turk_ply/big_atc.ply": "an all-terrain vehicle",
    "greg_turk_ply/pump.ply": "a high-heeled shoe",
}
#: severities the damaged copies are spread over (each (object, defect) pair gets one, by a hash)
SEVERITIES = (0.35, 0.6, 0.85)
GIVEN_SCORES = {
    "clean": {"alignment": 5.0, "realism": 5.0, "fidelity": 5.0},
    "defect": {"alignment": 5.0, "realism": 1.0, "fidelity": 1.0},
    "wrong_prompt": {"alignment": 0.0, "realism": 5.0, "fidelity": 5.0},
}


def held_out_ids() -> set[str]:
    """File stems of the held-out objects (``airplane``, ``nascar``, ...)."""
    return {Path(p).stem for p in HELD_OUT_OBJECTS}


def is_held_out(name: str | os.PathLike) -> bool:
    """Whether a mesh path, manifest path or object id names a held-out object."""
    s = str(name).replace("\\", "/")
    return s in HELD_OUT_OBJECTS or any(s.endswith("/" + p) for p in HELD_OUT_OBJECTS) or s in held_out_ids()


def shared_meshes_dir() -> Path:
    """``$DREAMCS_SHARED_DATA/meshes``, else ``../shared/data/meshes`` next to the source checkout."""
    env = os.environ.get("DREAMCS_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return root / "meshes"


@dataclass(frozen=True)
class EvalObject:
    """One object of an evaluation set: ``id`` (unique), mesh ``path``, ``caption``, ``up`` axis."""

    id: str
    path: str
    caption: str
    up: str = "y"


def _clean_caption(text: str) -> str:
    return re.sub(r"\s*\(.*?\)", "", text).strip()  # drop "(caption uncertain)"


def heldout_objects(meshes_dir: str | os.PathLike | None = None) -> list[EvalObject]:
    """The held-out objects, captions from ``MANIFEST.csv``; a missing file is an error naming it."""
    root = Path(meshes_dir) if meshes_dir is not None else shared_meshes_dir()
    manifest = root / "MANIFEST.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: not found (the held-out meshes live in ../shared/data/meshes; pass --meshes DIR)")
    with open(manifest, encoding="utf-8", newline="") as f:
        captions = {r["path"]: _clean_caption(r["caption"]) for r in csv.DictReader(f)}
    out = []
    for rel in HELD_OUT_OBJECTS:
        if rel not in captions:
            raise ValueError(f"{manifest}: no row for held-out mesh {rel}")
        if not (root / rel).is_file():
            raise FileNotFoundError(f"{root / rel}: held-out mesh not found")
        caption = CAPTION_FIXES.get(rel, captions[rel])
        out.append(EvalObject(Path(rel).stem, str(root / rel), caption, UP_AXIS.get(rel, "y")))
    return out


def tuning_objects(root: str | os.PathLike | None = None) -> list[EvalObject]:
    """The licensed meshes of the embedded set (training-side objects), for tuning the scorer."""
    from dreamcs.data.embedded import ASSETS
    from dreamcs.data.sources import _read_cap3d_csv

    root = Path(root) if root is not None else ASSETS
    caps = _read_cap3d_csv(root / "captions.csv")
    return [EvalObject(k, str(root / "meshes" / f"{k}.obj"), caps[k]) for k in sorted(caps)]


def heldout_half(item_id: str) -> str | None:
    """``"A"`` (development) or ``"B"`` (report) for a held-out object or item id (``<object>~<kind>``),
    by the parity of the SHA-1 of the object's name; None for an object that is not held out."""
    obj = str(item_id).split("~", 1)[0]
    if obj not in held_out_ids():
        return None
    return "AB"[int(hashlib.sha1(obj.encode("utf-8")).hexdigest(), 16) % 2]


def _h(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def eval_plan(objects: list[EvalObject], defects: list[str] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The items of an evaluation set: dicts with ``id``, ``object``, ``defect`` (None: clean),
    ``severity``, ``prompt``, ``label``. Pure and deterministic."""
    from dreamcs.data.defects import DEFECTS

    defects = list(DEFECTS.names()) if defects is None else list(defects)
    plan = []
    for k, o in enumerate(objects):
        plan.append({"id": o.id, "object": o, "defect": None, "severity": None, "prompt": o.caption, "label": 1})
        for d in defects:
            sev = SEVERITIES[_h(f"{seed}:{o.id}:{d}") % len(SEVERITIES)]
            plan.append({"id": f"{o.id}~{d}", "object": o, "defect": d, "severity": sev, "prompt": o.caption, "label": 0})
        # another object's caption whose last word (the noun) differs: never a near-synonym
        others = [x.caption for x in objects if x.caption.split()[-1] != o.caption.split()[-1]]
        if others:
            wrong = others[(_h(f"{seed}:{o.id}:prompt") + k) % len(others)]
            plan.append({"id": f"{o.id}~wrong_prompt", "object": o, "defect": "wrong_prompt", "severity": None, "prompt": wrong, "label": 0})
    return plan


def _prepare_object(obj: EvalObject, variants: list[dict[str, Any]], mesh_dir: str, seed: int) -> list[tuple[str, str]]:
    """Write the clean mesh and the object's damaged copies; returns (item id, file name) pairs,
    leaving out a defect that destroys this object (``DefectError``)."""
    from dreamcs.data.defects import DefectError, apply_defect
    from dreamcs.mesh import load_mesh, normalize, save_mesh

    clean = normalize(load_mesh(obj.path), up=obj.up)
    files = {None: f"{obj.id}.ply"}
    save_mesh(clean, Path(mesh_dir) / files[None])
    out = []
    for it in variants:
        d = it["defect"]
        if d is None or d == "wrong_prompt":
            out.append((it["id"], files[None]))
            continue
        try:
            bad = normalize(apply_defect(clean, d, _h(f"{seed}:{it['id']}"), it["severity"]))
        except DefectError:
            continue
        name = f"{obj.id}~{d}.ply"
        save_mesh(bad, Path(mesh_dir) / name)
        out.append((it["id"], name))
    return out


def write_eval_set(
    out: str | os.PathLike, objects: list[EvalObject], *, name: str, seed: int = 0, workers: int = 1,
    defects: list[str] | None = None, progress: bool = True, **build_settings: Any,
) -> dict[str, Any]:
    """Prepare the meshes and manifest of ``objects`` under ``out/source`` and build the dataset at
    ``out`` (all items in the ``test`` split). Returns the build's stats."""
    from dreamcs.data.build import BuildConfig, build
    from dreamcs.utils import atomic_write_text

    out = Path(out)
    mesh_dir = out / "source" / "meshes"
    mesh_dir.mkdir(parents=True, exist_ok=True)
    plan = eval_plan(objects, defects, seed)
    by_obj: dict[str, list[dict[str, Any]]] = {}
    for it in plan:
        by_obj.setdefault(it["object"].id, []).append(it)
    jobs = [(o, by_obj[o.id], str(mesh_dir), seed) for o in objects]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_prepare_object, *zip(*jobs, strict=True)))
    else:
        results = [_prepare_object(*j) for j in jobs]
    files = {iid: f for res in results for iid, f in res}
    lines = []
    for it in (it for it in plan if it["id"] in files):  # a defect that destroys an object is left out
        kind = "clean" if it["defect"] is None else ("wrong_prompt" if it["defect"] == "wrong_prompt" else "defect")
        o = it["object"]
        lines.append(json.dumps({
            "id": it["id"], "path": f"meshes/{files[it['id']]}", "prompt": it["prompt"], "caption": o.caption,
            "object_id": o.id, "source": f"{name}_{kind}", "scores": GIVEN_SCORES[kind],
            "defect": it["defect"], "severity": it["severity"], "label": it["label"],
        }, sort_keys=True))
    manifest = out / "source" / "manifest.jsonl"
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    cfg = BuildConfig(sources=[f"manifest:{manifest}"], split_fractions=[0.0, 0.0, 1.0], seed=seed, **build_settings)
    return build(cfg, out, workers=workers, progress=progress)


def read_eval_manifest(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The manifest lines of an evaluation set (``path`` made absolute)."""
    path = Path(root) / "source" / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {root} a set made by `dreamcs data validation`?")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        r["path"] = str(path.parent / r["path"])
    return rows


def build_validation(
    out: str | os.PathLike, split: str = "heldout", *, meshes_dir: str | os.PathLike | None = None,
    seed: int = 0, workers: int = 1, progress: bool = True, **build_settings: Any,
) -> dict[str, Any]:
    """``split="heldout"``: the held-out validation set; ``"tuning"``: the licensed tuning split."""
    if split == "heldout":
        objects = heldout_objects(meshes_dir)
    elif split == "tuning":
        objects = tuning_objects()
    else:
        raise ValueError(f"unknown split {split!r}; use heldout or tuning")
    return write_eval_set(out, objects, name=split, seed=seed, workers=workers, progress=progress, **build_settings)
