"""Grouping the faces of a mesh into equal patches (the topology half of mesh fusion).

Exact sizes come first and by construction, from a component-aware recursive bisection at exact
ranks (``bisection.bisect_faces``: breadth-first growth over the face-adjacency graph, the cut
whose sides fall into the fewest edge-connected pieces kept, creases preferred). A local repair
then reconnects patches where it can: a stray fragment is handed to the neighbouring patch it
touches most, and that patch gives back as many faces from its border with the donor's main piece.
Inside a patch, faces are ordered breadth-first from the face nearest the patch centre; patches
follow a Morton curve of their centres. Everything is deterministic for a given input.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from dreamcs.mesh.fusion import _graph_kernels
from dreamcs.mesh.fusion.bisection import bisect_faces

__all__ = ["dual_graph", "partition", "order_patches", "connected_patch_mask"]

REPAIR_PASSES = 3


def dual_graph(faces: NDArray) -> sp.csr_matrix:
    """Face adjacency over shared edges as a symmetric (F, F) CSR matrix of ones, rows sorted.

    A non-manifold edge with n faces links them in a chain (n - 1 pairs), which keeps the
    graph sparse and still connects them.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    indptr, indices = _graph_kernels.dual_graph_csr(faces, int(faces.max()) + 1)
    n = len(faces)
    return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))


def connected_patch_mask(labels: NDArray, A: sp.csr_matrix, _numpy: bool = False) -> tuple[NDArray, NDArray]:
    """Intra-patch components. Returns (component id per face, bool per patch: one component)."""
    if _numpy:
        from dreamcs.mesh.fusion._reference_steps import components
    else:
        components = _graph_kernels.components
    n_c, comp = components(A.indptr, A.indices, np.asarray(labels, dtype=np.int64))
    label_of_comp = np.zeros(n_c, dtype=np.int64)
    label_of_comp[comp] = labels
    return comp, np.bincount(label_of_comp, minlength=int(labels.max()) + 1) == 1


def _repair(labels: NDArray, A: sp.csr_matrix, passes: int = 3) -> NDArray:
    """Make patches edge-connected where possible, keeping every patch size unchanged.

    A stray fragment of patch p moves to the neighbouring patch q it shares most edges with, and q
    gives back as many faces, breadth-first from its border with p's main piece; fragments go
    smallest first, then by piece id (``_graph_kernels.repair_patches``, all passes compiled).
    """
    labels = labels.astype(np.int64)  # a copy: the kernel edits it in place
    return _graph_kernels.repair_patches(A.indptr, A.indices, labels, passes)


def partition(
    centroids: NDArray, normals: NDArray, A: sp.csr_matrix, n_patches: int, k: int, _numpy: bool = False
) -> NDArray:
    """Labels (F,) in [0, n_patches), each used exactly k times. centroids, normals: (F, 3).

    _numpy: the numpy / scipy reference (``_reference``) instead of the compiled kernels; same labels.
    """
    if len(centroids) != n_patches * k:
        raise ValueError(f"need exactly {n_patches * k} faces, got {len(centroids)}")
    labels = bisect_faces(np.concatenate([centroids, normals], 1), n_patches, k, A.tocsr(), _numpy=_numpy)
    if _numpy:
        from dreamcs.mesh.fusion._reference import repair

        return repair(labels, A, REPAIR_PASSES)
    return _repair(labels, A, REPAIR_PASSES)


def _morton(q: NDArray) -> NDArray:
    """Interleave the bits of (N, 3) ints in [0, 1024) into (N,) Morton codes."""
    code = np.zeros(len(q), dtype=np.int64)
    for bit in range(10):
        for ax in range(3):
            code |= ((q[:, ax] >> bit) & 1).astype(np.int64) << (3 * bit + ax)
    return code


def order_patches(
    labels: NDArray, centroids: NDArray, A: sp.csr_matrix, n_patches: int, k: int, _numpy: bool = False
) -> NDArray:
    """(P, K) face indices: patches along a Morton curve of their centres, faces breadth-first from
    the face nearest the patch centre (faces of other pieces follow, nearest first)."""
    counts = np.bincount(labels, minlength=n_patches)
    if len(counts) != n_patches or (counts != k).any():  # a bug, not bad input: never reshape blindly
        raise RuntimeError(f"patch sizes {counts.min()}..{counts.max()} != {k}")
    # per-column bincounts add in face order, as np.add.at does, and much faster
    centers = np.stack([np.bincount(labels, weights=c, minlength=n_patches) for c in centroids.T], 1)
    centers /= counts[:, None]
    lo, hi = centers.min(0), centers.max(0)
    q = np.clip(((centers - lo) / np.maximum(hi - lo, 1e-12) * 1023).astype(np.int64), 0, 1023)
    patch_rank = np.empty(n_patches, dtype=np.int64)
    patch_rank[np.lexsort((centers[:, 2], centers[:, 1], centers[:, 0], _morton(q)))] = np.arange(n_patches)

    if _numpy:
        from dreamcs.mesh.fusion._reference_steps import patch_face_order
    else:
        patch_face_order = _graph_kernels.patch_face_order
    order = patch_face_order(labels.astype(np.int64), centroids, centers, patch_rank, A.indptr, A.indices)
    return order.reshape(n_patches, k)
