"""Untangling a carried reward layout's folds on the level set (issue 15).

``fast_reward`` lands each layout vertex on the moved level set on its own, so a sliver (marching
tets makes many, fusion keeps them) turns over when its corners move apart by more than its width.
The repair here is local: the vertices of the folded faces and their one-ring (two-ring after half
the rounds) move tangentially to the mean of their layout neighbours (umbrella smoothing in lattice
cells, the level set's normal component removed), land again by Newton steps, and this repeats
until no face is folded or ``rounds`` are spent. Smoothing widens the slivers it touches, so a
repaired region folds less at the next steps too; the rest of the layout is not moved at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

#: How far the repair may move a point from where the projection landed it, in mean edge lengths of
#: the layout (2 x 0.28 cells for the dmtet-embedded recipe's 256 x 64 layout on grid 24).
MAX_SHIFT_EDGES = 2.0

#: A face tilted from a corner's vertex normal by more than arccos(MIN_COS) (90 degrees) counts as
#: folded (on a teddy-bear run 0.5 caught no more of the carried layouts the reward reads as damaged).
MIN_COS = 0.0

#: A projection of lattice points (K, 3) onto the level set -> (projected points (K, 3), the level
#: set's gradient there (K, 3), the mask (K,) of the points that landed).
Project = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def neighbour_mean_operator(edges: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """(V, V) row-normalised adjacency of a layout's edges (E, 2): ``A @ u`` is each vertex's
    neighbour mean (a vertex without edges keeps a zero row)."""
    i = np.concatenate([edges[:, 0], edges[:, 1]])
    j = np.concatenate([edges[:, 1], edges[:, 0]])
    a = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices))
    deg = np.asarray(a.sum(1)).ravel()
    return sparse.diags(1.0 / np.maximum(deg, 1.0)) @ a


def face_normals(u: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised normals (F, 3) of triangles faces (F, 3) at points u (V, 3)."""
    return np.cross(u[faces[:, 1]] - u[faces[:, 0]], u[faces[:, 2]] - u[faces[:, 0]])


def vertex_face_operator(faces: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """(V, F) incidence: ``op @ face_normals`` sums each vertex's face normals (area-weighted)."""
    rows = faces.reshape(-1)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, np.repeat(np.arange(len(faces)), 3))),
                             shape=(n_vertices, len(faces)))


def against_vertex_normals(u: np.ndarray, faces: np.ndarray, vf_op: sparse.csr_matrix,
                           min_cos: float = MIN_COS) -> np.ndarray:
    """(F,) faces whose normal is tilted from one of their corners' vertex normals (area-weighted) by
    more than arccos(min_cos): what the shipped RewardCS reads in its normal-dot-vertex-normal
    channels (their mean is 0.89-0.99 at sd 0.07-0.3: a cosine of 0 stands 3-13 sd out)."""
    n = face_normals(u, faces)
    vn = vf_op @ n
    n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    vn = vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-30)
    return ((vn[faces] * n[:, None, :]).sum(2) < min_cos).any(1)


def folded(u: np.ndarray, faces: np.ndarray, ref_normals: np.ndarray, vf_op: sparse.csr_matrix,
           exempt: np.ndarray) -> np.ndarray:
    """(F,) faces turned over against their fused normals ref_normals (F, 3), or newly against one of
    their vertex normals (``exempt`` (F,): the faces that were so at the fusion)."""
    return ((face_normals(u, faces) * ref_normals).sum(1) < 0) | (against_vertex_normals(u, faces, vf_op) & ~exempt)


def untangle(u: np.ndarray, grad: np.ndarray, faces: np.ndarray, is_folded: Callable[[np.ndarray], np.ndarray],
             mean_op: sparse.csr_matrix, project: Project, rounds: int = 8, max_shift: float = float("inf")
             ) -> tuple[np.ndarray, int, int]:
    """Lattice points u (V, 3) on the level set (gradient grad (V, 3) there), with faces (F, 3) that
    ``is_folded`` (points -> (F,) mask, e.g. ``folded``) -> (repaired points, faces folded before, after).

    Unfolded input comes back as the same array, untouched. ``project`` lands moved points again; a
    point that does not land, or would end over ``max_shift`` (cells) from where it landed first (the
    repair is local: smoothing round after round would slide it along the surface, shaving tips),
    keeps its place. So do the six points that hold the layout's bounding box: the reward normalises
    the mesh by it (longest side -> 2), and a tip shaved by the smoothing would rescale the whole mesh.
    """
    bad = is_folded(u)
    before = int(bad.sum())
    if not before:
        return u, 0, 0
    start, u, grad = u, u.copy(), grad.copy()
    pinned = np.zeros(len(u), bool)
    pinned[np.concatenate([u.argmin(0), u.argmax(0)])] = True
    for r in range(rounds):
        seed = np.zeros(len(u))
        seed[faces[bad].ravel()] = 1.0
        active = seed > 0
        for _ in range(1 + (2 * r >= rounds)):  # the one-ring; the two-ring once half the rounds failed
            active |= (mean_op @ active.astype(float)) > 0
        idx = np.flatnonzero(active & ~pinned)
        d = mean_op[idx] @ u - u[idx]
        n = grad[idx] / np.maximum(np.linalg.norm(grad[idx], axis=1, keepdims=True), 1e-30)
        d -= (d * n).sum(1, keepdims=True) * n  # tangential: the surface's shape is the level set's
        q, g, landed = project(u[idx] + d)
        ok = landed & (np.linalg.norm(q - start[idx], axis=1) <= max_shift)
        idx = idx[ok]  # a point that does not land, or strays, stays where it was
        u[idx], grad[idx] = q[ok], g[ok]
        bad = is_folded(u)
        if not bad.any():
            break
    return u, before, int(bad.sum())
