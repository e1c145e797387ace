"""The representation floor: how close a recipe's field gets to a ground-truth mesh when told the answer.

    floor = representation_floor(cfg.geometry, mesh)       # {"chamfer": 0.021, "target": "signed", ...}
    result = floor_table(cfg.geometry, gt_map, prompts)      # per prompt, and the mean

SDS never sees the ground truth. Here the recipe's own field (the same grid, parameterisation,
encoding, sphere bias) is fitted by regression to the mesh's SDF at the grid's vertices, extracted
by marching tets, and compared as ``evaluate janus`` compares generated meshes (both normalised,
best rotation about y). What lies between a run's Chamfer and this floor is the guidance's doing,
not the representation's: a floor near a run's Chamfer says "use a finer grid or a richer field",
a floor far below it says "the prior or the SDS schedule is what limits".

Two targets, the floor is the better one: the signed distance (closest-point sign), exact for clean
closed meshes, and a shell ``|d| - cell / 2``, which any mesh has (open, with internal faces, or
self-intersecting, where the closest-point sign flips inside) at the cost of half a cell of
thickness. ``size`` < 1 places the object smaller in the grid, as SDS shapes often are.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh

TARGETS = ("signed", "shell")


def _field_config(geometry: Any, steps: int) -> tuple[Any, int]:
    """(DMTetConfig from the recipe's geometry section without its sphere initialisation, fit steps)."""
    from dreamcs.generate.dmtet import DMTetConfig

    src = dataclasses.asdict(geometry) if dataclasses.is_dataclass(geometry) else dict(geometry)
    if src.get("name", "dmtet") != "dmtet":
        raise ValueError(f"representation floor: geometry {src.get('name')!r} is not a DMTet field "
                         "(a NeRF recipe's mesh is only its density's level set; use its DMTet stage)")
    names = {f.name for f in dataclasses.fields(DMTetConfig)}
    kw = {k: v for k, v in src.items() if k in names}
    # the field starts untrained: the sphere fit would only be undone by the target's
    kw.update(init="sphere", init_steps=0, appearance="none")
    return DMTetConfig(**kw), steps if steps > 0 else src.get("init_steps", 300)


def representation_floor(geometry: Any, mesh: trimesh.Trimesh, *, steps: int = 0, size: float = 1.0,
                         points: int = 2048, seed: int = 0) -> dict[str, Any]:
    """Fit the field of ``geometry`` (a recipe's geometry config) to ``mesh`` and measure the result.

    ``mesh`` is normalised here (longest side 2) and scaled by ``size``; ``steps`` Adam steps of the
    field's own fit (0: the recipe's ``init_steps``). Returns ``chamfer`` (the better target's),
    ``target``, ``chamfer_signed``, ``chamfer_shell``, ``faces`` and ``seconds``."""
    from dreamcs.evaluate.geometry import compare_to_reference
    from dreamcs.generate.dmtet import DMTet
    from dreamcs.generate.mesh_sdf import mesh_sdf
    from dreamcs.mesh import normalize

    if not 0.0 < size <= 1.0:
        raise ValueError(f"representation floor: size must be in (0, 1], got {size}")
    t0 = time.perf_counter()
    cfg, n_steps = _field_config(geometry, steps)
    if cfg.grid_scale < size:
        raise ValueError(f"representation floor: the grid spans +-{cfg.grid_scale}, the object +-{size}")
    reference = normalize(mesh)
    placed = reference.copy()
    placed.apply_scale(size)
    out: dict[str, Any] = {}
    d = None
    for target in TARGETS:
        torch.manual_seed(seed)
        field = DMTet(cfg)
        if d is None:
            d = mesh_sdf(placed, field.base_vertices.detach().cpu().numpy(), seed=seed)
        sdf = d if target == "signed" else np.abs(d) - 0.5 * field.grid.cell_size
        field.fit_sdf(torch.from_numpy(np.ascontiguousarray(sdf, dtype=np.float32)), steps=n_steps)
        with torch.no_grad():
            verts, faces = field()
        if len(faces) == 0:
            out[f"chamfer_{target}"], out[f"faces_{target}"] = float("inf"), 0
            continue
        extracted = normalize(trimesh.Trimesh(verts.cpu().numpy(), faces.cpu().numpy(), process=False))
        out[f"chamfer_{target}"] = compare_to_reference(extracted, reference, n=points, seed=seed)["chamfer"]
        out[f"faces_{target}"] = len(faces)
    best = min(TARGETS, key=lambda t: out[f"chamfer_{t}"])
    return {"chamfer": out[f"chamfer_{best}"], "target": best, "faces": out[f"faces_{best}"],
            "chamfer_signed": out["chamfer_signed"], "chamfer_shell": out["chamfer_shell"],
            "seconds": time.perf_counter() - t0}


def floor_table(geometry: Any, gt: dict[str, Path], prompts: Sequence[str] | None = None, *, steps: int = 0,
                size: float = 1.0, points: int = 2048, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The floor of every prompt of ``prompts`` (default: all of ``gt``) that has a ground truth.

    Returns {"per_prompt": {prompt: floor}, "mean_chamfer", "grid_resolution", "size", "steps"}; a
    mesh that cannot be read or has no faces is an error naming its file."""
    from dreamcs.mesh import MeshError, load_mesh

    cfg, n_steps = _field_config(geometry, steps)  # a recipe without a DMTet field fails before any mesh is read
    wanted = [p for p in (prompts or list(gt)) if p in gt]
    if not wanted:
        raise ValueError("representation floor: no prompt has a ground-truth mesh")
    per_prompt: dict[str, Any] = {}
    for p in wanted:
        try:
            mesh = load_mesh(gt[p])
        except MeshError as e:  # it names the file and the reason
            raise ValueError(f"the ground truth of {p!r}: {e}") from e
        per_prompt[p] = representation_floor(geometry, mesh, steps=steps, size=size, points=points)
        r = per_prompt[p]
        log(f"{p}: floor {r['chamfer']:.4f} ({r['target']}; signed {r['chamfer_signed']:.4f}, "
            f"shell {r['chamfer_shell']:.4f}; {r['seconds']:.0f} s)")
    return {"per_prompt": per_prompt, "mean_chamfer": float(np.mean([r["chamfer"] for r in per_prompt.values()])),
            "grid_resolution": cfg.grid_resolution, "parameterization": cfg.parameterization,
            "size": size, "steps": n_steps}


def floor_markdown(result: dict[str, Any]) -> str:
    """The table of :func:`floor_table` as Markdown."""
    lines = [f"# Representation floor (grid {result['grid_resolution']}, {result['parameterization']} field, "
             f"object size {result['size']}, {result['steps']} fit steps)", "",
             "Chamfer to the ground truth of the recipe's field fitted to it (lower bounds what SDS can reach).", "",
             "| Prompt | Floor | Target | Signed | Shell |", "|---|---|---|---|---|"]
    for p, r in result["per_prompt"].items():
        lines.append(f"| {p} | {r['chamfer']:.4f} | {r['target']} | {r['chamfer_signed']:.4f} | {r['chamfer_shell']:.4f} |")
    lines.append(f"| **mean** | {result['mean_chamfer']:.4f} | | | |")
    return "\n".join(lines) + "\n"
