"""Component-aware recursive bisection at exact ranks: the face grouping behind ``patches.partition``.

Each mesh component of n_c * K + r_c faces hands r_c faces (grown from its extreme face) to a
shared pool, small components go there whole, and the pool becomes the patches that cannot be
edge-connected. Every group is then cut in two at an exact multiple of K: the first part is grown
breadth-first over the face-adjacency graph from the group's extreme face along one of its widest
directions, so it is edge-connected; isolated "teeth" on the cut are swapped pairwise. One
candidate (the widest direction, from its low end) is tried for every group; only where it leaves
a side in more than one piece (and more pieces than the group has components) are the other three
(that direction from the other end, the next widest from either end) tried too. Each group keeps
the cut whose sides fall into the fewest edge-connected pieces, then the one cutting the fewest
edges between faces of similar normals (so cuts prefer creases and patches stay near-planar).

Speed: all levels run in one compiled call (``_kernels.bisect_levels``), which cuts the groups one
by one and refines its group-contiguous copy of the graph from level to level; a candidate cut
visits the group once for its growth and once for the pieces of its sides, otherwise only the faces
on the cut (``_cut_kernels``). The numpy / scipy version stays in ``_reference`` as the reference
(``bisect_faces(..., _numpy=True)``: the same labels; ``tests/mesh/test_fusion_kernels.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from dreamcs.mesh.fusion import _graph_kernels, _kernels

__all__ = ["bisect_faces"]

# A normal column's spread, in units of the group's spatial extent, competes with the centroid
# columns for the cut direction. 0 (position only) gave the most connected patches over the shared
# meshes (0.56 vs 0.47 at 0.5, before repair); cuts that are compact on the surface are near-planar.
NORMAL_WEIGHT = 0.0
N_DIRECTIONS = 2  # cut directions tried per split (each from both ends): the widest ones
# candidates tried per stage: the first for every group, the rest only where it leaves a side in pieces
CANDIDATE_STAGES = (1, 3)
CUT_WEIGHT = 1.0  # tie-break between cuts with equal pieces: similar-normal edges cut (0: off)


def _effective_var(var: NDArray) -> NDArray:
    """Per-group spread of the (centroid, normal) columns, comparable across columns (G, 6).

    A normal column's spread is counted in units of the group's own spatial extent, so normals
    steer the cut where a group bends a lot (a box corner) and not inside a gently curved piece.
    """
    spatial = var[:, :3].sum(1, keepdims=True)
    return np.concatenate([var[:, :3], NORMAL_WEIGHT**2 * spatial * var[:, 3:]], 1)


def bisect_faces(feat: NDArray, n_patches: int, k: int, A: sp.csr_matrix, _numpy: bool = False) -> NDArray:
    """Component-aware recursive bisection at exact ranks -> labels (F,), each used k times.

    Each mesh component of size n_c * k + r_c first gives r_c faces (grown from its extreme face, so
    connected) to a shared pool (small components go there whole); the pool forms the patches that
    cannot be connected. Then every group is cut in two at an exact multiple of k, level by level,
    until each holds one patch.

    feat: (F, 6) face centroids and unit normals; A: (F, F) CSR face adjacency (``dual_graph``).
    _numpy: run the numpy / scipy reference instead of the compiled kernels (same labels; for the
    benchmark's speed-up figure and the test that compares them).
    """
    n = len(feat)
    # with NORMAL_WEIGHT 0 the normal columns never rank among the widest: skip them
    stat_cols = np.ascontiguousarray(feat.T if NORMAL_WEIGHT else feat[:, :3].T)  # (D, F)
    if _numpy:
        from dreamcs.mesh.fusion import _reference as ref
        from dreamcs.mesh.fusion._reference_steps import components
    else:
        components = _graph_kernels.components
    n_comp, comp = components(A.indptr, A.indices, np.zeros(n, dtype=np.int64))
    sizes = np.bincount(comp, minlength=n_comp)
    counts = sizes // k
    take = sizes - counts * k  # faces each component gives to the pool
    # cutting an edge between faces of similar normals costs ~1, across a sharp crease ~0
    if _numpy:
        similar = ref.similar_normals(A, feat)
        rank = ref.grow_ranks(A, comp, feat)
    else:
        similar = _kernels.similar_normals(A.indptr, A.indices, np.ascontiguousarray(feat[:, 3:]))
        rank = _kernels.grow_ranks(A.indptr, A.indices, comp, feat[:, 0])
    pooled = rank < take[comp]
    group = np.where(pooled, len(sizes), comp)
    counts = np.r_[counts, int(pooled.sum()) // k]
    keep = counts > 0
    group = (np.cumsum(keep) - 1)[group]
    counts = counts[keep]
    if not _numpy:  # every level in one compiled call
        cols = np.ascontiguousarray(feat if NORMAL_WEIGHT else feat[:, :3])  # the columns a cut may follow
        stages = np.asarray(CANDIDATE_STAGES, dtype=np.int64)
        return _kernels.bisect_levels(
            A.indptr, A.indices, group, counts, cols, similar, k, len(stat_cols), NORMAL_WEIGHT, N_DIRECTIONS, stages,
            CUT_WEIGHT,
        )
    while (counts > 1).any():
        var = ref._group_var(stat_cols, group, len(counts))
        var = var if NORMAL_WEIGHT else np.concatenate([var, np.zeros_like(var)], 1)
        eff = _effective_var(var)
        dims = np.argsort(-eff, axis=1, kind="stable")[:, :N_DIRECTIONS]
        left = np.maximum(counts // 2, 1)
        right = ref.split_level(A, group, feat, dims, left * k, counts > 1, similar)
        new_counts = np.stack([left, counts - left], 1).reshape(-1)
        keep = new_counts > 0
        group = (np.cumsum(keep) - 1)[2 * group + right]
        counts = new_counts[keep]
    return group
