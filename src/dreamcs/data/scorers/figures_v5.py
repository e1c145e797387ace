"""Geometric figures of the ``geometric`` scorer (v5): a surface that passes through itself, and a
surface whose normals all point one way.

All on a mesh normalised into [-1, 1]^3.

- ``self_crossing``: the share of a fixed sample of edges (``N_EDGES``, seeded) that pass through a
  face of their own welded component, other than a face they touch. A surface pushed out along its
  normals (bloating), a shell collapsed onto its mid-surface or a melt folds over itself where it
  was concave; a clean scan or a clean CAD part does not. Separate parts that interpenetrate (CAD
  models are built that way: a wheel pushed into a car body) belong to other components and do not
  count; an unwelded seam is welded first.
- ``normal_anisotropy``: the largest eigenvalue of the area-weighted covariance of the face
  normals, sum(a n n^T) / sum(a) (sign-free, so a flipped face counts alike): 1/3 for a sphere or a
  cube, 1/2 for a long cylinder, 1 for a sheet. A shape squashed along one axis turns almost all
  of its surface to face that axis; a flat bounding box alone (``flatness``) cannot tell a squashed
  apple from a guitar, but the guitar's sides and neck still face other ways.
"""

from __future__ import annotations

import numpy as np
import trimesh

#: how many edges ``self_crossing`` tests (a fraction of them, so that the figure does not depend
#: on how finely the mesh is tessellated and its cost stays bounded)
N_EDGES = 2000
#: candidate (edge, face) pairs held at once by the broadphase (a memory bound, ~50 MB)
PAIRS_PER_CHUNK = 2_000_000


def _segment_crosses(p0: np.ndarray, p1: np.ndarray, tri: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """(N,) bool: segment p0 -> p1 (N, 3) passes through the interior of triangle tri (N, 3, 3)
    (Moller-Trumbore; touching an edge or a corner, or lying in the plane, is not a crossing)."""
    d = p1 - p0
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    pv = np.cross(d, e2)
    det = (e1 * pv).sum(axis=1)
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    tv = p0 - tri[:, 0]
    u = (tv * pv).sum(axis=1) * inv
    qv = np.cross(tv, e1)
    v = (d * qv).sum(axis=1) * inv
    t = (e2 * qv).sum(axis=1) * inv
    return ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)


def _size_classes(x: np.ndarray) -> list[np.ndarray]:
    """Indices of ``x`` in four size classes (up to its 50th, 80th, 95th percentile, and above)."""
    edges = np.quantile(x, [0.5, 0.8, 0.95])
    cls = np.searchsorted(edges, x, side="left")
    return [np.flatnonzero(cls == k) for k in range(4)]


def _candidates(c: np.ndarray, r: np.ndarray, mid: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge, face) index pairs whose bounding spheres overlap (faces with centres ``c``, radii ``r``;
    edges with midpoints ``mid``, half-lengths ``half``). Sizes vary (a CAD model's long slivers
    beside fine detail): edges and faces are each split into four size classes, and every pair of
    classes is searched tree to tree within its own largest reach, so that fine detail is not
    searched at the reach of the largest faces; each pair's own reach filters the result."""
    from scipy.spatial import cKDTree

    ei, fi = [], []
    for e_cls in _size_classes(half):
        if not len(e_cls):
            continue
        e_tree = cKDTree(mid[e_cls])
        for f_cls in _size_classes(r):
            if not len(f_cls):
                continue
            f_tree, reach = cKDTree(c[f_cls]), float(half[e_cls].max() + r[f_cls].max())
            # count first, and pair the edges in chunks that keep each pair array bounded
            n = int(e_tree.count_neighbors(f_tree, reach))
            for part in np.array_split(np.arange(len(e_cls)), max(1, -(-n // PAIRS_PER_CHUNK))):
                tree = e_tree if len(part) == len(e_cls) else cKDTree(mid[e_cls[part]])
                pairs = tree.sparse_distance_matrix(f_tree, reach, output_type="ndarray")
                e1, f1 = e_cls[part[pairs["i"]]], f_cls[pairs["j"]]
                near = pairs["v"] <= half[e1] + r[f1]  # each pair's own reach
                ei.append(e1[near])
                fi.append(f1[near])
    if not ei:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    return np.concatenate(ei).astype(int), np.concatenate(fi).astype(int)


def self_crossing(m: trimesh.Trimesh, labels: np.ndarray, n_edges: int = N_EDGES) -> float:
    """The ``self_crossing`` figure of a welded mesh ``m`` with face component ``labels`` (F,)."""
    f = np.asarray(m.faces)
    if len(f) < 4:
        return 0.0
    v = np.asarray(m.vertices, dtype=float)
    edges = m.edges_unique
    comp = np.empty(len(edges), dtype=int)
    comp[m.faces_unique_edges.ravel()] = np.repeat(labels, 3)
    tri = v[f]
    c = tri.mean(axis=1)
    r = np.linalg.norm(tri - c[:, None], axis=2).max(axis=1)
    n = min(n_edges, len(edges))
    sel = np.random.default_rng(0).choice(len(edges), size=n, replace=False)
    p0, p1 = v[edges[sel, 0]], v[edges[sel, 1]]
    ei, fi = _candidates(c, r, (p0 + p1) / 2, np.linalg.norm(p1 - p0, axis=1) / 2)
    # the segment's and the triangle's bounding boxes must overlap (cheap, before the exact test)
    t_lo, t_hi = tri.min(axis=1), tri.max(axis=1)
    keep = ((np.minimum(p0, p1)[ei] <= t_hi[fi]) & (np.maximum(p0, p1)[ei] >= t_lo[fi])).all(axis=1)
    ei, fi = ei[keep], fi[keep]
    # the same component, and not a face that the edge touches
    eg, fv = sel[ei], f[fi]
    keep = (comp[eg] == labels[fi]) & ~(fv == edges[eg, :1]).any(axis=1) & ~(fv == edges[eg, 1:]).any(axis=1)
    ei, fi = ei[keep], fi[keep]
    crossed = np.zeros(n, dtype=bool)
    crossed[ei[_segment_crosses(p0[ei], p1[ei], tri[fi])]] = True
    return float(crossed.mean())


def normal_anisotropy(mesh: trimesh.Trimesh) -> float:
    """The ``normal_anisotropy`` figure (1/3 .. 1)."""
    nrm, area = np.asarray(mesh.face_normals), np.asarray(mesh.area_faces)
    ok = np.isfinite(nrm).all(axis=1) & (area > 0)
    if not ok.any():
        return 1.0 / 3.0
    cov = (nrm[ok].T * area[ok]) @ nrm[ok] / float(area[ok].sum())
    return float(np.linalg.eigvalsh(cov)[-1])


def surface_v5(mesh: trimesh.Trimesh) -> dict[str, float]:
    """The figures of the module docstring for a mesh normalised into [-1, 1]^3."""
    from dreamcs.mesh.parts import welded_components

    m, labels = welded_components(mesh)
    return {"self_crossing": self_crossing(m, labels), "normal_anisotropy": normal_anisotropy(mesh)}
