"""Teacher figures RewardCS reads off the mesh itself (``RewardCSConfig.exact_figures``).

The figure head predicts the geometric teacher's penalty ramps from the fused patch tokens; a
floater keeps too few faces in that layout to be predicted (held-out floaters at chance), and the
layout cannot tell a torn boundary from one side of an unwelded seam (the other side lies a hair
away). Where the caller has the mesh, the ramp is computed on it instead: values (T + E,) in the
head's figure order, NaN where the head's reading stays, then the E figures that no head predicts
(``MESH_ONLY_FIGURES``: scorer v5's ``self_crossing``, ``normal_anisotropy``, ``soft_share``), NaN where not read:
those are weighed by the current scorer (``mesh_only_penalties``) and count only where read. In
generation the floaters' value carries a gradient (their area share, ``dreamcs.mesh.parts``), passed
straight through the ramp's clip so that a floater past the full penalty is still pushed away; the
others (the scorer's own figures, on the mesh normalised into [-1, 1]^3) are constants.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor


@cache  # read at every scored generation step
def _ramp_bounds(name: str) -> tuple[float, float]:
    from dreamcs.data.scorers.geometric import GeometricScorerConfig

    cfg = GeometricScorerConfig()
    lo, hi, _ = {**cfg.realism, **cfg.fidelity}[name]
    return float(lo), float(hi)


@cache
def _mesh_only_weights() -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The scorer's weights of ``MESH_ONLY_FIGURES`` and their groups (0 realism, 1 fidelity)."""
    from dreamcs.data.teacher_figures import MESH_ONLY_FIGURES, scorer_weights

    weights, groups = scorer_weights(MESH_ONLY_FIGURES)
    return tuple(weights), tuple(groups)


def mesh_only_penalties(names: list[str], values: Tensor, n_slots: int) -> Tensor:
    """Ramps (B, E) of ``MESH_ONLY_FIGURES`` (NaN: not read) -> their weighed penalties in the teacher
    score's group slots (B, n_slots): realism in slot 0, fidelity in slot 1; only ``names`` count."""
    from dreamcs.data.teacher_figures import MESH_ONLY_FIGURES

    weights, groups = _mesh_only_weights()
    out = values.new_zeros(values.shape[:-1] + (n_slots,))
    for j, k in enumerate(MESH_ONLY_FIGURES):
        if k in names and j < values.shape[-1]:
            out[..., groups[j]] += weights[j] * torch.nan_to_num(values[..., j], nan=0.0)
    return out


@cache
def _gap() -> float:
    from dreamcs.data.scorers.geometric import GeometricScorerConfig

    return float(GeometricScorerConfig().gap)


def exact_mask(names: list[str], n_figures: int) -> Tensor:
    """(T,) bool: which of the head's ``n_figures`` figures are read off the mesh."""
    from dreamcs.data.teacher_figures import TEACHER_FIGURES

    mask = torch.zeros(n_figures, dtype=torch.bool)
    if names and n_figures == len(TEACHER_FIGURES):
        for k in names:
            if k in TEACHER_FIGURES:  # the others have no head slot (MESH_ONLY_FIGURES)
                mask[TEACHER_FIGURES.index(k)] = True
    return mask


def exact_figure_values(names: list[str], vertices: Tensor, faces: Tensor) -> Tensor | None:
    """The ramps of ``names`` for a mesh (V, 3) (any scale), faces (F, 3) -> (T + E,) (the head's T,
    then ``MESH_ONLY_FIGURES``), NaN elsewhere; differentiable in ``vertices``. None when ``names`` is empty."""
    from dreamcs.data.teacher_figures import MESH_ONLY_FIGURES, TEACHER_FIGURES
    from dreamcs.mesh.parts import detached_area_share

    if not names:
        return None
    order = TEACHER_FIGURES + MESH_ONLY_FIGURES
    out = [vertices.new_full((), float("nan")) for _ in order]
    unknown = [k for k in names if k not in READABLE]
    if unknown:
        raise ValueError(f"exact figure(s) {unknown}: only {', '.join(READABLE)} can be read off a mesh")
    # the scorer's own figures (constants), all from one normalised copy of the mesh
    fig = _scorer_figures(vertices, faces, [k for k in names if k != "parts_far_small"])
    for k in names:
        lo, hi = _ramp_bounds(k)
        if k == "parts_far_small":
            lin = (detached_area_share(vertices, faces, gap=_gap()) - lo) / (hi - lo)
            # the clipped ramp's value, the unclipped ramp's gradient (a large floater still shrinks)
            out[order.index(k)] = lin.clamp(0.0, 1.0).detach() + (lin - lin.detach())
        else:
            out[order.index(k)] = vertices.new_tensor(float(np.clip((fig[k] - lo) / (hi - lo), 0.0, 1.0)))
    return torch.stack(out)


RAGGED = ("ragged_boundary", "ragged_holes")
#: every figure that can be read off a mesh (``RewardCSConfig.exact_figures``): the floaters
#: differentiably, the others as the scorer computes them
READABLE = ("parts_far_small", *RAGGED, "jagged", "folds", "flatness", "thin", "concentration",
            "self_crossing", "normal_anisotropy", "soft_share")


def generation_exact_figures(names: list[str]) -> list[str]:
    """The exact figures a generation step reads off its surface: the floaters only, whose value
    carries a gradient. The others are constants to guidance (they would shift the reward, not its
    gradient) and cost time at every step (the ragged figures 35 ms, ``self_crossing`` ~60 ms at
    10-20k faces); a marching-tets surface is closed and cannot pass through itself anyway."""
    return [k for k in names if k == "parts_far_small"]


def _scorer_figures(vertices: Tensor, faces: Tensor, names: list[str]) -> dict[str, float]:
    """The geometric scorer's figures ``names`` of a mesh of any scale, computed as the scorer does,
    on a copy normalised into [-1, 1]^3 (its seam tolerance and thin-sheet depths are absolute);
    each family only when one of its figures is asked for."""
    import trimesh

    from dreamcs.data.scorers.figures import surface_v2
    from dreamcs.data.scorers.figures_v3 import crease_figures, ragged_boundary
    from dreamcs.data.scorers.figures_v5 import normal_anisotropy, self_crossing
    from dreamcs.data.scorers.geometric import GeometricScorerConfig, surface_figures
    from dreamcs.mesh import normalize
    from dreamcs.mesh.parts import welded_components

    want = set(names)
    if not want:
        return {}
    cfg = GeometricScorerConfig()
    mesh = normalize(trimesh.Trimesh(vertices.detach().double().cpu().numpy(), faces.detach().cpu().numpy(), process=False))
    m, labels = welded_components(mesh)
    out: dict[str, float] = {}
    if want & set(RAGGED):
        out.update(ragged_boundary(m, cfg.ragged_fold_deg, cfg.seam_tol))
    if want & {"jagged", "folds", "flatness"}:
        out.update(surface_figures(mesh))
    if "thin" in want:
        out["thin"] = surface_v2(mesh, cfg.gap)["thin"]
    if want & {"concentration", "soft_share"}:
        out.update(crease_figures(m))
    if "self_crossing" in want:
        out["self_crossing"] = self_crossing(m, labels)
    if "normal_anisotropy" in want:
        out["normal_anisotropy"] = normal_anisotropy(mesh)
    return out


def exact_figure_values_mesh(names: list[str], mesh: Any) -> Tensor | None:
    """``exact_figure_values`` of a ``trimesh.Trimesh`` (no gradient)."""
    if not names:
        return None
    v = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long)
    return exact_figure_values(names, v, f).float()
