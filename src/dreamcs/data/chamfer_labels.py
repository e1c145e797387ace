"""Scores from the distance to a ground-truth mesh, for harvested meshes whose prompt has one.

A prompt has a ground truth when it is the caption of exactly one embedded mesh
(``dreamcs.data.embedded.embedded_ground_truth``: the offline demo's known objects), the caption of
a procedural library object (``dreamcs.data.procedural``; ``procedural_references`` writes the
meshes), or an entry of a references JSON file ``{prompt: mesh path}``.

The score is a monotone (non-increasing) map of the Chamfer distance to the reference under the
best rotation about y (``dreamcs.evaluate.geometry.compare_to_reference``, both meshes normalised
into [-1, 1]^3), taken net of the reference's sampling floor (its distance to itself, resampled with
the same number of points: 0.004-0.021 over the 62 embedded objects at 2,048 points, median 0.010),
so that the ground truth itself is at 0 whatever the point count:

    d = max(0, cd - floor)
    score(d) = 5                                  if d <= CD_FREE
             = 5 * exp(-(d - CD_FREE) / CD_TAU)   otherwise

``CD_FREE`` is a small tolerance (a re-tessellated ground truth still scores 5). ``CD_TAU`` is
calibrated so that the initial sphere of a DMTet run (a ball filling [-1, 1]^3 once normalised)
scores 1.5 against the median embedded object: its net distance is 0.323 at the median (0.18-0.44
from the 10th to the 90th percentile; 0.03 to "an icosphere", 0.59 to "a snake"), see
``calibrate_on_embedded``. With the default labels (>= 4 preferred, <= 3.5 dispreferred) a mesh is
preferred at d <= 0.068 and dispreferred at d >= 0.103; the offline generator's better runs reach a
raw Chamfer of 0.10-0.11 (``configs/dmtet-embedded.yaml``), about the dispreferred edge.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from dreamcs.utils import read_prompt_mesh_map

#: Chamfer distance net of the sampling floor (in [-1, 1]^3 units) that still scores 5.
CD_FREE = 0.01
#: decay length of the score: calibrated on the embedded objects (module docstring).
CD_TAU = 0.26


def chamfer_to_score(cd: float, floor: float = 0.0, free: float = CD_FREE, tau: float = CD_TAU) -> float:
    """The documented monotone map of a Chamfer distance (minus the reference's ``floor``) to 0-5 (inf -> 0)."""
    if not math.isfinite(cd):
        return 0.0
    d = max(0.0, cd - floor)
    if d <= free:
        return 5.0
    return 5.0 * math.exp(-(d - free) / tau)


def ground_truth_meshes(references: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{prompt: mesh path}``: the embedded captions and the optional ``references`` JSON file (its
    entries win). Prompts are whitespace-normalised."""
    from dreamcs.data.embedded import embedded_ground_truth

    gt: dict[str, Path] = dict(embedded_ground_truth())
    if references is not None:
        gt.update(read_prompt_mesh_map(references, "references file"))
    return {" ".join(k.split()): Path(v) for k, v in gt.items()}


def procedural_references(n: int, seed: int, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``{caption: OBJ path}`` for the first ``n`` objects of ``dreamcs.data.procedural.library(n, seed)``,
    written once into ``out_dir`` (atomically). A caption shared by two objects keeps the first."""
    try:
        from dreamcs.data.procedural import library_keys, make_object
    except ImportError as e:
        raise ValueError(f"procedural={n}: dreamcs.data.procedural is not available ({e})") from None
    from dreamcs.mesh import save_mesh
    from dreamcs.utils import atomic_write_text

    out: dict[str, Path] = {}
    for category, obj_seed in library_keys(n, seed):
        path, meta = Path(out_dir) / f"{category}-{obj_seed}.obj", Path(out_dir) / f"{category}-{obj_seed}.json"
        if not (path.is_file() and meta.is_file()):
            obj = make_object(category, obj_seed)
            save_mesh(obj.mesh, path)
            atomic_write_text(meta, json.dumps({"caption": obj.caption, "object_id": obj.object_id}) + "\n")
        caption = " ".join(json.loads(meta.read_text(encoding="utf-8"))["caption"].split())
        out.setdefault(caption, path)
    return out


class ChamferLabeler:
    """Scores meshes against one reference: ``label(mesh) -> {"chamfer", "floor", "overall", ...}``.

    The reference is loaded and normalised once, and its sampling floor measured once (the same
    computation as labelling the reference itself, so that scores exactly 5); ``mesh`` is a trimesh.
    """

    def __init__(self, reference: str | os.PathLike, *, points: int = 2048, free: float = CD_FREE,
                 tau: float = CD_TAU) -> None:
        from dreamcs.mesh import load_mesh, normalize

        self.path = Path(reference)
        self.reference = normalize(load_mesh(self.path))
        self.points, self.free, self.tau = int(points), float(free), float(tau)
        self.floor = self._compare(self.reference)["chamfer"]

    def _compare(self, mesh: Any) -> dict[str, float]:
        from dreamcs.evaluate.geometry import compare_to_reference

        return compare_to_reference(mesh, self.reference, n=self.points)

    def label(self, mesh: Any) -> dict[str, float]:
        from dreamcs.mesh import normalize

        res = self._compare(normalize(mesh))
        cd = float(res["chamfer"])
        return {"chamfer": round(cd, 6), "floor": round(self.floor, 6),
                "normal_consistency": round(float(res["normal_consistency"]), 6),
                "overall": round(chamfer_to_score(cd, self.floor, self.free, self.tau), 4)}


def calibrate_on_embedded(points: int = 2048) -> dict[str, Any]:
    """Chamfer of each embedded ground truth to itself (resampled) and to a sphere: the numbers
    behind ``CD_FREE`` and ``CD_TAU``. Returns per-object distances and their medians."""
    import statistics

    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    rows = []
    for prompt, path in sorted(ground_truth_meshes().items()):
        lab = ChamferLabeler(path, points=points)
        rows.append({"prompt": prompt, "self": lab.floor, "sphere": lab.label(sphere)["chamfer"]})
    return {"objects": rows, "median_self": statistics.median(r["self"] for r in rows),
            "median_sphere_net": statistics.median(r["sphere"] - r["self"] for r in rows),
            "max_self": max(r["self"] for r in rows)}
