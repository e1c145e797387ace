"""How well the Janus decision (``geometry.JANUS_THRESHOLD``) separates labelled cases.

Labelled cases, all normalised into [-1, 1]^3 with the front facing +z:

- positives: the defect synthesiser's Janus (``dreamcs.data.defects.janus``: the front half and a
  turned, resized, shifted mirror copy of it as the back) of the shipped 3D-MeshPref meshes;
- negatives: the same meshes clean;
- real objects that are front-back symmetric by nature (spheres, cylinders, urns, ... from
  ``../shared/data``, read there and never copied): a geometric detector flags them, so they count
  as negatives only with a reference, as ``evaluate janus --gt`` uses one (``flag_with_reference``:
  a Janus is a mirror copy where the ground truth has none).

    report = validate(names=None, shared=Path("../shared/data"))
    report["accuracy"], report["tpr"], report["tnr"], report["per_case"]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: real, front-back symmetric objects of ../shared/data/meshes (y-up, research/test use only)
SYMMETRIC_SHARED = ("greg_turk_ply/sphere.ply", "greg_turk_ply/cylinder.ply", "greg_turk_ply/urn2.ply",
                    "greg_turk_ply/apple.ply", "greg_turk_ply/canstick.ply", "greg_turk_ply/kerolamp.ply")


def flag_with_reference(score: float, reference_score: float, threshold: float | None = None) -> bool:
    """The Janus decision against a ground truth: the asset is a mirror copy and the reference is not."""
    from dreamcs.evaluate.geometry import JANUS_THRESHOLD

    t = JANUS_THRESHOLD if threshold is None else threshold
    return score >= t and reference_score < t


def validate(names: list[str] | None = None, shared: str | os.PathLike | None = None, *, n: int = 2048,
             seed: int = 1, threshold: float | None = None) -> dict[str, Any]:
    """Scores and decisions on the labelled cases; ``names`` picks shipped meshes (default: all).

    Returns ``tpr`` (synthetic Janus flagged), ``tnr`` (clean meshes not flagged), ``accuracy``
    (over both), ``symmetric_flagged`` (share of the real symmetric objects flagged without a
    reference), ``symmetric_tnr_with_reference``, ``tpr_objects_with_a_front`` (synthetic Janus of
    the meshes whose clean version is not flagged: those with a front to duplicate) and
    ``per_case`` rows (name, kind, score, flag)."""
    from dreamcs.data.defects import apply_defect
    from dreamcs.data.embedded import ASSETS
    from dreamcs.evaluate.geometry import JANUS_THRESHOLD, janus_score
    from dreamcs.mesh import load_mesh, normalize

    t = JANUS_THRESHOLD if threshold is None else threshold
    paths = sorted((ASSETS / "meshes").glob("*.obj"))
    if names is not None:
        paths = [p for p in paths if p.stem in set(names)]
    rows: list[dict[str, Any]] = []
    for p in paths:
        clean = normalize(load_mesh(p))
        for kind, mesh in (("clean", clean), ("janus", normalize(apply_defect(clean, "janus", seed)))):
            s = janus_score(mesh, n=n)["janus_score"]
            rows.append({"name": p.stem, "kind": kind, "score": s, "flag": s >= t})
    sym = []
    if shared is not None:
        for rel in SYMMETRIC_SHARED:
            f = Path(shared) / "meshes" / rel
            if f.is_file():
                s = janus_score(normalize(load_mesh(f)), n=n)["janus_score"]
                # its own ground truth: the same object (what a --gt map would hold for it)
                sym.append({"name": rel, "kind": "symmetric", "score": s, "flag": s >= t,
                            "flag_with_reference": flag_with_reference(s, s, t)})
    pos = [r for r in rows if r["kind"] == "janus"]
    neg = [r for r in rows if r["kind"] == "clean"]
    tp, tn = sum(r["flag"] for r in pos), sum(not r["flag"] for r in neg)
    clean_score = {r["name"]: r["score"] for r in neg}
    for r in pos:  # the clean mesh as the ground truth of its Janus
        r["flag_with_reference"] = flag_with_reference(r["score"], clean_score[r["name"]], t)
    front = [r for r in pos if clean_score[r["name"]] < t]  # objects with a front to duplicate
    return {
        "tpr_objects_with_a_front": sum(r["flag"] for r in front) / len(front) if front else None,
        "n_objects_with_a_front": len(front),
        "threshold": t,
        "tpr": tp / len(pos) if pos else None,
        "tnr": tn / len(neg) if neg else None,
        "accuracy": (tp + tn) / len(rows) if rows else None,
        "symmetric_flagged": sum(r["flag"] for r in sym) / len(sym) if sym else None,
        "symmetric_tnr_with_reference": sum(not r["flag_with_reference"] for r in sym) / len(sym) if sym else None,
        "per_case": rows + sym,
    }


if __name__ == "__main__":  # the numbers quoted in docs: python -m dreamcs.evaluate.janus_validation [SHARED]
    import json
    import sys

    rep = validate(shared=sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps({k: v for k, v in rep.items() if k != "per_case"}, indent=1))
    for r in rep["per_case"]:
        print(f"{r['kind']:9s} {r['score']:.3f} {'JANUS' if r['flag'] else '-':5s} {r['name']}")
