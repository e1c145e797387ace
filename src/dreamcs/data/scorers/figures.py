"""Geometric figures of the ``geometric`` scorer (v2) that read real meshes the way a person would:
open scans and multi-part CAD are normal, damage is what differs from a surface's own neighbourhood.

All on a mesh normalised into [-1, 1]^3, from an area-uniform point sample (so that they do not
depend on how finely the mesh is tessellated) and the edge-connected components after welding.

- ``parts_far_small``: the share of surface area in *small* groups (< 10% of the area each) that are
  farther than ``gap`` from the main body (parts chained within ``gap`` form one group): floaters;
  several large separate parts (three dolphins, a car and its wheels) are not penalised.
- ``roughness``: the median, over sample points, of the normal variation within 0.025 (1 - |mean of
  neighbour normals|), divided by the same within 0.08, both over points with >= 8 neighbours:
  noise and crumpling raise fine-scale variation relative to coarse; CAD edges and smooth organic
  shapes vary alike at both scales. ``fine_var``: the fine-scale variation itself.
- ``slits``: boundary length in thin loops (loop vector area < 2% of length^2), per sqrt(area):
  cracks and tears; round open rims (a mug, a scan's cut) are not thin.
- ``thin``: the share of sample points with an opposite-facing sample (within twice the sample
  spacing) 0.001 to 0.02 behind them along their normal (a sheet seen from both sides; parts
  pressed face to face are not): thin-shell collapse and flattening; real thin parts are a share.
- ``sag``: the mean horizontal radius of the lowest 25% of the height over that of the rest (melting
  spreads the bottom).
"""

from __future__ import annotations

import numpy as np
import trimesh

from dreamcs.mesh.parts import N_SAMPLES, far_small_faces, welded_components


def _welded_components(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray]:
    return welded_components(mesh)


def _sample(m: trimesh.Trimesh, n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    pts, fid = trimesh.sample.sample_surface(m, n, seed=0)
    return pts, fid


def parts_far_small(m: trimesh.Trimesh, labels: np.ndarray, pts: np.ndarray, fid: np.ndarray, gap: float, small: float = 0.1) -> float:
    """The area share of ``dreamcs.mesh.parts.far_small_faces`` (the grouping RewardCS's exact figure shares)."""
    mask = far_small_faces(m, labels, pts, fid, gap, small)
    if not mask.any():
        return 0.0
    return float(m.area_faces[mask].sum() / max(float(m.area_faces.sum()), 1e-12))


def _normal_variation(pts: np.ndarray, nrm: np.ndarray, tree, r: float) -> np.ndarray:
    """Per point 1 - |mean of the normals within r| (sign-free: n and -n count alike, as soups flip
    normals); NaN with fewer than 8 neighbours."""
    pairs = tree.query_pairs(r, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    s = np.sign((nrm[i] * nrm[j]).sum(axis=1) + 1e-12)[:, None]
    acc = nrm.copy()
    np.add.at(acc, i, nrm[j] * s)
    np.add.at(acc, j, nrm[i] * s)
    cnt = 1 + np.bincount(i, minlength=len(pts)) + np.bincount(j, minlength=len(pts))
    out = 1.0 - np.linalg.norm(acc, axis=1) / cnt
    out[cnt < 8] = np.nan
    return out


def slits(m: trimesh.Trimesh) -> float:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    d = m.edges
    _, inv, counts = np.unique(np.sort(d, axis=1), axis=0, return_inverse=True, return_counts=True)
    b = d[counts[inv.reshape(-1)] == 1]
    if not len(b):
        return 0.0
    vv = m.vertices
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(len(vv), len(vv)))
    loop = connected_components(g, directed=False)[1][b[:, 0]]
    n_loop = int(loop.max()) + 1
    vec = np.zeros((n_loop, 3))
    np.add.at(vec, loop, np.cross(vv[b[:, 0]], vv[b[:, 1]]) * 0.5)
    length = np.bincount(loop, weights=np.linalg.norm(vv[b[:, 0]] - vv[b[:, 1]], axis=1), minlength=n_loop)
    thin = np.linalg.norm(vec, axis=1) < 0.02 * length**2
    return float(length[thin].sum() / max(np.sqrt(m.area), 1e-12))


def surface_v2(mesh: trimesh.Trimesh, gap: float = 0.05) -> dict[str, float]:
    """The figures of the module docstring for a mesh normalised into [-1, 1]^3."""
    from scipy.spatial import cKDTree

    m, labels = _welded_components(mesh)
    pts, fid = _sample(m)
    nrm = m.face_normals[fid]
    tree = cKDTree(pts)
    fine = _normal_variation(pts, nrm, tree, 0.025)
    coarse = _normal_variation(pts, nrm, tree, 0.08)
    ok = np.isfinite(fine) & np.isfinite(coarse)
    fine_var = float(np.median(fine[ok])) if ok.any() else 0.0
    roughness = float(np.median(fine[ok]) / max(np.median(coarse[ok]), 1e-3)) if ok.any() else 0.0
    # a sheet seen from both sides: an opposite-facing sample whose tangent plane is within 0.02;
    # searched within twice the sample spacing, so that the figure does not depend on the area
    reach = max(0.02, 2.0 * float(np.sqrt(m.area / len(pts))))
    pairs = tree.query_pairs(reach, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    facing = (nrm[i] * nrm[j]).sum(axis=1) < -0.7
    # j behind i (the back of a sheet), not touching (two parts pressed face to face) nor in front
    depth = ((pts[i] - pts[j]) * nrm[i]).sum(axis=1)
    opp = pairs[facing & (depth > 0.001) & (depth < 0.02)]
    has_opp = np.zeros(len(pts), bool)
    has_opp[opp.ravel()] = True
    v = m.vertices
    y = v[:, 1]
    lo = y <= np.quantile(y, 0.25)
    r = np.linalg.norm(v[:, [0, 2]] - v[:, [0, 2]].mean(axis=0), axis=1)
    sag = float(r[lo].mean() / max(r[~lo].mean(), 1e-6)) if (~lo).any() and lo.any() else 1.0
    return {
        "parts_far_small": parts_far_small(m, labels, pts, fid, gap),
        "roughness": roughness, "fine_var": fine_var, "slits": slits(m),
        "thin": float(has_opp.mean()), "sag": sag,
    }
