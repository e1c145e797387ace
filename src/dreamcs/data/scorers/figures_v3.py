"""Geometric figures of the ``geometric`` scorer (v3) that read shape rather than construction:
an open rim or an unwelded seam is how real meshes are built, a torn edge is damage.

All on a mesh normalised into [-1, 1]^3, after welding coincident vertices.

- ``ragged_boundary``: the length of *ragged* open-boundary edges, per sqrt(area): edges at a
  boundary vertex where the boundary turns by more than 35 degrees. Faces torn out (holes, cracks,
  a cut-off part, a copied patch) leave zig-zag loops along triangle edges; the rim of a cup, the
  open base of a scan, a sheet's edge or an unwelded CAD part run straight or smoothly curved and
  count only at their few corners. A turn of over ``fold_deg`` (175) is not ragged either: there the
  boundary runs back along itself, a zero-width seam (a T-junction, or two pieces meeting without
  sharing their edges, as in many CAD models), not a tear; nor is a boundary edge whose midpoint
  lies within ``seam_tol`` (5e-4) of another boundary edge: the other side of an unwelded seam is
  right there (v4; ``fold_deg`` 181 and ``seam_tol`` 0 are v3).
- ``ragged_holes``: the summed vector area of the ragged loops (over 30% of their length ragged)
  / surface area: a large tear.
- ``small_handles``: the number of small closed parts (< 3% of the area each) with genus >= 1
  (Euler characteristic V - E + F <= 0): rings and handles stuck on or into a surface (wrong
  topology); a large ring-shaped part (a steering wheel, a torus) is not small.
- ``crease_share``: the area-weighted share of adjacent face pairs bent by more than 20 degrees;
  ``soft_share``: by 2 to 20 degrees; ``concentration``: crease / (crease + soft). Clean objects
  bend in a few places (edges, creases, folds, the tessellation of a low-poly model) and are flat
  between them; smoothing, melting and bloating spread the bending evenly over the surface (no
  creases, everything gently curved). A mesh that bends softly on under 10% of its area (a flat
  sheet, a faceted cylinder) has nothing spread: concentration 1. A clean sphere or a smooth organic
  shape reads as spread too: this figure can only rank, its penalty stays moderate.
"""

from __future__ import annotations

import numpy as np
import trimesh

from dreamcs.data.scorers.figures import _welded_components

RAGGED_TURN_DEG = 35.0
RAGGED_FOLD_DEG = 175.0
SEAM_TOL = 5e-4
RAGGED_LOOP_SHARE = 0.3
SMALL_PART = 0.03
SOFT_MIN = 0.1


def _boundary_edges(m: trimesh.Trimesh) -> np.ndarray:
    """Directed face edges (in face winding) whose undirected edge belongs to one face only."""
    d = m.edges
    _, inv, counts = np.unique(np.sort(d, axis=1), axis=0, return_inverse=True, return_counts=True)
    return d[counts[inv.reshape(-1)] == 1]


def seamed_edges(vv: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    """(E,) bool: boundary edges b (E, 2) whose midpoint lies within ``tol`` (and within a fifth of
    the edge's own length) of another boundary edge: the other side of an unwelded seam. The second
    bound keeps a run of very short edges from partnering its own neighbours, which touch it at its
    ends. All False for ``tol`` <= 0."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(b), bool)
    if tol <= 0 or len(b) < 2:
        return out
    a, c = vv[b[:, 0]], vv[b[:, 1]]
    mid = 0.5 * (a + c)
    length = np.linalg.norm(c - a, axis=1)
    # edges cut into pieces no longer than h, so that one long edge does not make every midpoint a
    # candidate of every other; a midpoint within tol of a piece is within h / 2 + tol of its centre.
    # h is at least a quarter of the mean length: at most 5 pieces per edge in all, however short the
    # median edge (a smoothed seam collapses to hairs of 1e-8)
    h = max(float(np.median(length)), 0.25 * float(length.mean()), 1e-9)
    n = np.maximum(np.ceil(length / h).astype(np.int64), 1)
    owner = np.repeat(np.arange(len(b)), n)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(n) - n, n)
    t0, t1 = (k / n[owner])[:, None], ((k + 1) / n[owner])[:, None]
    p0, p1 = a[owner] + t0 * (c - a)[owner], a[owner] + t1 * (c - a)[owner]
    near = cKDTree(0.5 * (p0 + p1)).query_ball_point(mid, 0.5 * h + tol)
    i = np.repeat(np.arange(len(b)), [len(x) for x in near])
    j = np.fromiter((x for xs in near for x in xs), dtype=np.int64, count=len(i))
    keep = owner[j] != i
    i, j = i[keep], j[keep]
    ab = p1[j] - p0[j]
    t = np.clip(((mid[i] - p0[j]) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-20), 0.0, 1.0)
    close = np.linalg.norm(mid[i] - (p0[j] + t[:, None] * ab), axis=1) < np.minimum(tol, 0.2 * length[i])
    out[i[close]] = True
    return out


def ragged_boundary(m: trimesh.Trimesh, fold_deg: float = RAGGED_FOLD_DEG, seam_tol: float = SEAM_TOL) -> dict[str, float]:
    """``ragged_boundary`` and ``ragged_holes`` of a welded mesh (see the module docstring)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b = _boundary_edges(m)
    if not len(b):
        return {"ragged_boundary": 0.0, "ragged_holes": 0.0}
    vv = np.asarray(m.vertices)
    nv = len(vv)
    graph = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(nv, nv))
    loop = connected_components(graph, directed=False)[1][b[:, 0]]
    n_loop = int(loop.max()) + 1
    seg = vv[b[:, 1]] - vv[b[:, 0]]
    length = np.linalg.norm(seg, axis=1)
    # the turn at a boundary vertex with one incoming and one outgoing boundary edge
    e_out, e_in = np.full(nv, -1), np.full(nv, -1)
    e_out[b[:, 0]] = np.arange(len(b))
    e_in[b[:, 1]] = np.arange(len(b))
    simple = np.flatnonzero((e_out >= 0) & (e_in >= 0) & (np.bincount(b.ravel(), minlength=nv) == 2))
    a, c = seg[e_in[simple]], seg[e_out[simple]]
    cos = (a * c).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(c, axis=1), 1e-20)
    sharp = np.zeros(nv, bool)
    turn = np.arccos(np.clip(cos, -1.0, 1.0))
    sharp[simple] = (turn > np.deg2rad(RAGGED_TURN_DEG)) & (turn < np.deg2rad(fold_deg))
    edge_rag = (sharp[b[:, 0]] | sharp[b[:, 1]]) & ~seamed_edges(vv, b, seam_tol)
    loop_len = np.bincount(loop, weights=length, minlength=n_loop)
    loop_rag = np.bincount(loop, weights=length * edge_rag, minlength=n_loop)
    ragged = loop_rag > RAGGED_LOOP_SHARE * np.maximum(loop_len, 1e-12)
    vec = np.zeros((n_loop, 3))
    np.add.at(vec, loop, np.cross(vv[b[:, 0]], vv[b[:, 1]]) * 0.5)  # a loop's vector area
    area = max(float(m.area), 1e-12)
    return {
        "ragged_boundary": float(loop_rag.sum() / np.sqrt(area)),
        "ragged_holes": float(np.linalg.norm(vec[ragged], axis=1).sum() / area),
    }


def small_handles(m: trimesh.Trimesh, labels: np.ndarray) -> float:
    """The number of small closed parts of genus >= 1 (see the module docstring)."""
    n = int(labels.max()) + 1
    if n == 1:
        return 0.0
    area = np.bincount(labels, weights=m.area_faces, minlength=n)
    n_f = np.bincount(labels, minlength=n)
    e = np.sort(m.edges, axis=1).astype(np.int64)
    key = e[:, 0] * (len(m.vertices) + 1) + e[:, 1]
    _, first, count = np.unique(key, return_index=True, return_counts=True)
    e_lab = np.repeat(labels, 3)[first]
    n_e = np.bincount(e_lab, minlength=n)
    n_open = np.bincount(e_lab[count == 1], minlength=n)
    v_lab = np.full(len(m.vertices), -1)
    v_lab[m.faces.ravel()] = np.repeat(labels, 3)
    n_v = np.bincount(v_lab[v_lab >= 0], minlength=n)
    chi = n_v - n_e + n_f
    small = area < SMALL_PART * max(float(area.sum()), 1e-12)
    return float((small & (n_open == 0) & (chi <= 0)).sum())


def crease_figures(m: trimesh.Trimesh) -> dict[str, float]:
    """``crease_share``, ``soft_share`` and ``concentration`` (see the module docstring)."""
    deg = np.degrees(m.face_adjacency_angles)
    pair_area = m.area_faces[m.face_adjacency].sum(axis=1)
    total = max(float(pair_area.sum()), 1e-12)
    crease = float(pair_area[deg > 20.0].sum() / total)
    soft = float(pair_area[(deg > 2.0) & (deg <= 20.0)].sum() / total)
    # a mesh that barely bends softly anywhere (a sheet, an open faceted cylinder) has nothing spread
    concentration = crease / (crease + soft) if soft >= SOFT_MIN else 1.0
    return {"crease_share": crease, "soft_share": soft, "concentration": concentration}


def surface_v3(mesh: trimesh.Trimesh, fold_deg: float = RAGGED_FOLD_DEG, seam_tol: float = SEAM_TOL) -> dict[str, float]:
    """The figures of the module docstring for a mesh normalised into [-1, 1]^3."""
    m, labels = _welded_components(mesh)
    out = ragged_boundary(m, fold_deg, seam_tol)
    out["small_handles"] = small_handles(m, labels)
    out.update(crease_figures(m))
    return out
