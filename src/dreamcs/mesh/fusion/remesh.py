"""Remeshing to an exact face count, tracking a sparse linear map from the input vertices.

Every function here takes and returns ``(faces, W)`` where ``W`` is a scipy CSR matrix
(V_current x V_in) such that the current vertex positions are ``W @ input_vertices``. Positions
are never stored separately, so the map is exact by construction; callers evaluate ``W @ V_in``
when they need coordinates.

- ``subdivide``: 1 -> 4 midpoint subdivision (a midpoint row is the mean of its two end rows).
- ``simplify_to``: QEM through fast-simplification; each QEM vertex is replaced by its closest
  point on the pre-simplification surface, written as a barycentric combination (3 weights) of
  that face's vertices, so the result stays linear in the input.
- ``fix_count``: a deterministic exact-count repair. Faces are added by splitting the longest
  edges (a boundary edge adds 1 face, an interior one 2, a non-manifold one as many as it has
  faces), and removed by dropping the smallest faces (only ever a handful, when QEM stops short).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.spatial import cKDTree

__all__ = ["subdivide", "simplify_to", "fix_count", "compact", "closest_point_barycentric", "remesh_to_count"]


def _edges(faces: NDArray) -> NDArray:
    """(3F, 2) directed edges, edge k of face f leaving corner k; row index = k * F + f."""
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _edge_keys(edges: NDArray, n_vert: int) -> NDArray:
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    return lo.astype(np.int64) * n_vert + hi


def _unique_keys(keys: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """``np.unique(keys, return_index=True, return_inverse=True, return_counts=True)``, faster: with
    the position as the last digit every key is unique, so any sort gives the stable order."""
    n = len(keys)
    if n and int(keys.max()) < 2**62 // n:
        order = np.argsort(keys * n + np.arange(n))
    else:
        order = np.argsort(keys, kind="stable")
    ks = keys[order]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(ks[1:], ks[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    return ks[starts], order[starts], inv, np.diff(np.append(starts, n))


def _midpoint_rows(W: sp.csr_matrix, pairs: NDArray) -> sp.csr_matrix:
    """Rows 0.5 * (W[a] + W[b]) for each (a, b) in pairs: (len(pairs) x V_in)."""
    n = len(pairs)
    rows = np.repeat(np.arange(n), 2)
    S = sp.csr_matrix((np.full(2 * n, 0.5), (rows, pairs.reshape(-1))), shape=(n, W.shape[0]))
    return (S @ W).tocsr()


def subdivide(faces: NDArray, W: sp.csr_matrix) -> tuple[NDArray, sp.csr_matrix]:
    """1 -> 4 midpoint subdivision. faces (F, 3) -> (4F, 3); W gains one row per unique edge."""
    n_vert, n_faces = W.shape[0], len(faces)
    edges = _edges(faces)
    keys = _edge_keys(edges, n_vert)
    uniq, first, inv, _ = _unique_keys(keys)
    mid = (n_vert + inv).reshape(3, n_faces)  # midpoint of edge k of face f: mid[k, f]
    a, b, c = faces.T
    m_ab, m_bc, m_ca = mid
    new_faces = np.concatenate(
        [np.stack(t, 1) for t in ((a, m_ab, m_ca), (m_ab, b, m_bc), (m_ca, m_bc, c), (m_ab, m_bc, m_ca))]
    )
    W2 = sp.vstack([W, _midpoint_rows(W, edges[first])], format="csr")
    return new_faces, W2


def closest_point_barycentric(p: NDArray, a: NDArray, b: NDArray, c: NDArray) -> tuple[NDArray, NDArray]:
    """Closest point on triangles (a, b, c) to points p (all (N, 3)), as barycentrics.

    Ericson, Real-Time Collision Detection, 5.1.5, vectorised. Degenerate triangles are fine
    (they fall into a vertex or edge region). Returns (bary (N, 3), squared distance (N,)).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in = np.where(denom != 0, vb / denom, 0.0)
        w_in = np.where(denom != 0, vc / denom, 0.0)
        t_ab = np.where(d1 - d3 != 0, d1 / (d1 - d3), 0.0)
        t_ac = np.where(d2 - d6 != 0, d2 / (d2 - d6), 0.0)
        t_bc = np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) / ((d4 - d3) + (d5 - d6)), 0.0)
    bary = np.stack([1.0 - v_in - w_in, v_in, w_in], 1)
    # regions, applied from the least to the most specific so the last match wins
    one = np.ones_like(d1)
    zero = np.zeros_like(d1)
    cases = [
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.stack([zero, 1 - t_bc, t_bc], 1)),  # edge bc
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t_ac, zero, t_ac], 1)),  # edge ac
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t_ab, t_ab, zero], 1)),  # edge ab
        ((d6 >= 0) & (d5 <= d6), np.stack([zero, zero, one], 1)),  # vertex c
        ((d3 >= 0) & (d4 <= d3), np.stack([zero, one, zero], 1)),  # vertex b
        ((d1 <= 0) & (d2 <= 0), np.stack([one, zero, zero], 1)),  # vertex a
    ]
    for mask, value in cases:
        bary = np.where(mask[:, None], value, bary)
    bary = np.clip(bary, 0.0, 1.0)
    bary /= bary.sum(1, keepdims=True)
    q = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
    return bary, ((q - p) ** 2).sum(1)


def _project(points: NDArray, verts: NDArray, faces: NDArray, k: int = 8) -> tuple[NDArray, NDArray]:
    """Closest point of each point on the surface (verts, faces), searched among the k faces with the
    nearest centroids. Returns (face index (N,), barycentrics (N, 3))."""
    tri = verts[faces]
    k = min(k, len(faces))
    _, cand = cKDTree(tri.mean(1)).query(points, k=k)
    cand = cand.reshape(len(points), k)
    flat = cand.reshape(-1)
    bary, d2 = closest_point_barycentric(np.repeat(points, k, 0), tri[flat, 0], tri[flat, 1], tri[flat, 2])
    best = d2.reshape(-1, k).argmin(1)
    rows = np.arange(len(points)) * k + best
    return flat[rows], bary[rows]


def simplify_to(
    faces: NDArray, W: sp.csr_matrix, v_in: NDArray, target: int
) -> tuple[NDArray, sp.csr_matrix]:
    """QEM-simplify to (at most, usually exactly) ``target`` faces; vertices projected back onto the
    pre-simplification surface so that the new W stays a linear map of the input."""
    import fast_simplification

    verts = W @ v_in
    out_v, out_f = fast_simplification.simplify(verts, faces.astype(np.int64), target_count=target)
    if len(out_f) > target:  # QEM may stall on locked (non-manifold) regions: push harder once
        out_v, out_f = fast_simplification.simplify(
            out_v, out_f.astype(np.int64), target_count=target, agg=10.0
        )
    if len(out_f) == 0:  # QEM removed everything (tiny targets): keep the input, fix_count drops
        return faces, W
    out_f = np.asarray(out_f, dtype=np.int64)
    fi, bary = _project(np.asarray(out_v, dtype=np.float64), verts, faces)
    n = len(out_v)
    B = sp.csr_matrix(
        (bary.reshape(-1), (np.repeat(np.arange(n), 3), faces[fi].reshape(-1))), shape=(n, W.shape[0])
    )
    return out_f, (B @ W).tocsr()


def compact(faces: NDArray, W: sp.csr_matrix) -> tuple[NDArray, sp.csr_matrix]:
    """Drop vertices no face uses, keeping the order of the rest."""
    used = np.zeros(W.shape[0], dtype=bool)
    used[faces.reshape(-1)] = True
    if used.all():
        return faces, W
    remap = np.cumsum(used) - 1
    return remap[faces], W[np.flatnonzero(used)]


def _face_areas(faces: NDArray, verts: NDArray) -> NDArray:
    t = verts[faces]
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)


def _split_round(
    faces: NDArray, W: sp.csr_matrix, verts: NDArray, need: int, overshoot: bool = False
) -> tuple[NDArray, sp.csr_matrix, int]:
    """One round of longest-edge bisection, adding at most ``need`` faces.

    The candidates are the edges that are the longest edge of every face they border, so no face is
    split twice in a round; they are taken longest first while the count fits (a boundary edge adds
    1 face, an interior one 2, a non-manifold one as many as it borders). Returns the new faces, W
    and the number of faces added (0 when nothing fits, e.g. need=1 on a closed mesh).
    """
    n_vert, n_faces = W.shape[0], len(faces)
    edges = _edges(faces)
    keys = _edge_keys(edges, n_vert)
    uniq, first, inv, counts = _unique_keys(keys)
    length = np.linalg.norm(verts[edges[first, 0]] - verts[edges[first, 1]], axis=1)
    # each face's longest edge (ties: the larger key, so the choice is deterministic)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(length, kind="stable")] = np.arange(len(uniq))  # uniq is sorted: ties by key
    face_rank = rank[inv].reshape(3, n_faces)
    longest = inv.reshape(3, n_faces)[face_rank.argmax(0), np.arange(n_faces)]
    cand = np.flatnonzero(np.bincount(longest, minlength=len(uniq)) == counts)
    cand = cand[np.argsort(-rank[cand])]  # longest first
    c = counts[cand]
    take = np.cumsum(c) <= need
    chosen = cand[take]
    rest = need - int(c[take].sum())
    if rest > 0:  # fill an odd remainder with the longest edge that still fits (a boundary edge)
        fits = np.flatnonzero(~take & (c <= rest))
        if len(fits):
            chosen = np.append(chosen, cand[fits[0]])
        elif len(chosen) == 0 and overshoot and len(cand):
            chosen = cand[:1]  # nothing fits: split the longest anyway, the caller drops the extra
    if len(chosen) == 0:
        return faces, W, 0
    mid_of_edge = np.full(len(uniq), -1, dtype=np.int64)
    mid_of_edge[chosen] = n_vert + np.arange(len(chosen))
    W2 = sp.vstack([W, _midpoint_rows(W, edges[first[chosen]])], format="csr")
    m = mid_of_edge[inv]  # (3F,) midpoint on each directed edge, -1 if not split
    hit = np.flatnonzero(m >= 0)
    f_idx, k = hit % n_faces, hit // n_faces
    x, y, z = faces[f_idx, k], faces[f_idx, (k + 1) % 3], faces[f_idx, (k + 2) % 3]
    new_faces = faces.copy()
    new_faces[f_idx] = np.stack([x, m[hit], z], 1)
    extra = np.stack([m[hit], y, z], 1)
    return np.concatenate([new_faces, extra]), W2, len(hit)


def fix_count(faces: NDArray, W: sp.csr_matrix, v_in: NDArray, target: int) -> tuple[NDArray, sp.csr_matrix]:
    """Deterministically bring the face count to exactly ``target``."""
    for _ in range(256):
        diff = target - len(faces)
        if diff == 0:
            break
        verts = W @ v_in
        if diff < 0:  # too many (QEM stopped short): drop the smallest faces, a handful at most
            keep = np.sort(np.argsort(_face_areas(faces, verts), kind="stable")[-diff:])
            faces = faces[keep]
            continue
        faces, W, added = _split_round(faces, W, verts, diff)
        if added == 0:  # e.g. one face short with only 2-face splits left: overshoot, drop next
            faces, W, added = _split_round(faces, W, verts, diff, overshoot=True)
            if added == 0:
                raise RuntimeError("exact-count repair found no edge to split")
    if len(faces) != target:
        raise RuntimeError(f"exact-count repair did not converge ({len(faces)} != {target})")
    return faces, W


def remesh_to_count(
    faces: NDArray, W: sp.csr_matrix, v_in: NDArray, target: int
) -> tuple[NDArray, sp.csr_matrix]:
    """Subdivide (if below ``target``) and QEM-simplify (if above) to exactly ``target`` faces.

    faces: (F, 3) int64 over W's rows; W: (V, V_in) CSR; v_in: (V_in, 3) float64 input positions.
    Returns (faces (target, 3), W (V', V_in)) with no unused vertices.
    """
    # below the target: 1 -> 4 subdivision while it fits, then longest-edge bisection (exact,
    # adaptive, and W stays a map of midpoints). Subdividing past the target and simplifying back
    # would leave zero-area slivers where QEM collapses midpoints along the original straight edges.
    while 4 * len(faces) <= target:
        faces, W = subdivide(faces, W)
    if len(faces) > target:
        faces, W = simplify_to(faces, W, v_in, target)
    faces, W = fix_count(faces, W, v_in, target)
    return compact(faces, W)
