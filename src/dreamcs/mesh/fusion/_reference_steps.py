"""numpy / scipy versions of the compiled kernels that ``fuse`` calls outside the bisection:
duplicate rows (``first_copy``), face centroids and normals (``face_frames``), pieces of a graph
(``components``) and the patch layout's face order (``patch_face_order``).

They give the same results as the kernels in ``_graph_kernels`` (``tests/mesh/test_fusion_kernels.py``)
and, with ``_reference``'s grouping, make ``fuse(..., _numpy=True)`` free of numba: ``_warmup`` runs
it while the kernels compile in the background.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order, connected_components

from dreamcs.mesh.fusion._reference import subgraph


def first_copy(rows: NDArray) -> NDArray:
    """(N,) index of the first row equal to each row of ``rows`` (N, 3) int64."""
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def face_frames(verts: NDArray, faces: NDArray) -> tuple[NDArray, NDArray]:
    """Face centroids and unit normals (F, 3) each; the kernel's arithmetic, term for term."""
    p0, p1, p2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    cen = ((p0 + p1) + p2) / 3.0
    a, b = (p1 - p0).T, (p2 - p0).T
    c = np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], 1)
    norm = np.maximum(np.sqrt((c[:, 0] * c[:, 0] + c[:, 1] * c[:, 1]) + c[:, 2] * c[:, 2]), 1e-300)
    return cen, c / norm[:, None]


def components(indptr: NDArray, indices: NDArray, labels: NDArray) -> tuple[int, NDArray]:
    """Edge-connected pieces of each label: (n_pieces, piece id (F,)), ids by lowest face."""
    n = len(labels)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    ptr, idx, _ = subgraph(indptr, indices, rows, labels[rows] == labels[indices])
    n_c, comp = connected_components(sp.csr_matrix((np.ones(len(idx)), idx, ptr), shape=(n, n)), directed=False)
    return int(n_c), comp.astype(np.int64)


def patch_face_order(
    labels: NDArray, centroids: NDArray, centers: NDArray, patch_rank: NDArray, indptr: NDArray, indices: NDArray
) -> NDArray:
    """(F,) faces in the patch layout's order (``_graph_kernels.patch_face_order``): patches by
    rank, inside a patch breadth-first from its face nearest the centre, unreached faces after."""
    n = len(labels)
    d = centroids - centers[labels]
    dist = (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) + d[:, 2] * d[:, 2]
    by_patch = np.lexsort((np.arange(n), dist, labels))  # nearest first, ties: the lowest index
    first = np.r_[True, labels[by_patch][1:] != labels[by_patch][:-1]]
    seeds = by_patch[first]  # in patch order
    # one BFS over same-label edges from a virtual root (node n) linked to every seed, in order
    rows = np.repeat(np.arange(n), np.diff(indptr))
    ptr, idx, _ = subgraph(indptr, indices, rows, labels[rows] == labels[indices])
    root = sp.csr_matrix(
        (np.ones(len(idx) + len(seeds)), np.r_[idx, seeds], np.r_[ptr, ptr[-1] + len(seeds)]), shape=(n + 1, n + 1)
    )
    seq = breadth_first_order(root, n, directed=True, return_predecessors=False)[1:]
    reached = np.zeros(n, dtype=bool)
    reached[seq] = True
    rest = np.flatnonzero(~reached)
    both = np.r_[seq, rest[np.argsort(dist[rest], kind="stable")]].astype(np.int64)
    return both[np.argsort(patch_rank[labels[both]], kind="stable")]
