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

from dreamcs.mesh import _graph_kernels
from dreamcs.mesh.bisection import bisect_faces

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


def connected_patch_mask(labels: NDArray, A: sp.csr_matrix) -> tuple[NDArray, NDArray]:
    """Intra-patch components. Returns (component id per face, bool per patch: one component)."""
    n_c, comp = _graph_kernels.components(A.indptr, A.indices, np.asarray(labels, dtype=np.int64))
    label_of_comp = np.zeros(n_c, dtype=np.int64)
    label_of_comp[comp] = labels
    return comp, np.bincount(label_of_comp, minlength=int(labels.max()) + 1) == 1


def stray_fragments(labels: NDArray, comp: NDArray, ok: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """What a repair pass moves: faces (F,) with patch ``labels``, piece ids ``comp`` and the
    per-patch connectivity ``ok`` -> piece sizes, faces sorted by piece (stable; the faces of piece
    c are contiguous), each patch's main piece (its largest, ties: smallest id; -1 where unused) and
    the stray faces (not in their patch's main piece), smallest fragments first, then by piece id."""
    comp_size = np.bincount(comp)
    # 16-bit keys where they fit: numpy's radix sort
    by_comp = np.argsort(comp.astype(np.uint16) if len(comp_size) < 2**16 else comp, kind="stable")
    bad = np.flatnonzero(~ok[labels])  # faces in patches with more than one piece
    by = np.lexsort((comp[bad], -comp_size[comp[bad]], labels[bad]))
    lab_sorted = labels[bad][by]
    first = np.r_[True, lab_sorted[1:] != lab_sorted[:-1]]
    main_of = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    main_of[lab_sorted[first]] = comp[bad][by][first]
    stray = bad[comp[bad] != main_of[labels[bad]]]
    return comp_size, by_comp, main_of, stray[np.lexsort((stray, comp[stray], comp_size[comp[stray]]))]


def _repair(labels: NDArray, A: sp.csr_matrix, passes: int = 3) -> NDArray:
    """Make patches edge-connected where possible, keeping every patch size unchanged.

    A stray fragment of patch p moves to the neighbouring patch q it shares most edges with, and q
    gives back as many faces, breadth-first from its border with p's main piece
    (``_graph_kernels.move_fragments``; fragments go smallest first, then by piece id).
    """
    labels = labels.astype(np.int64)  # a copy: the kernel edits it in place
    for _ in range(passes):
        comp, ok = connected_patch_mask(labels, A)
        if ok.all():
            break
        comp_size, by_comp, main_of, stray = stray_fragments(labels, comp, ok)
        piece_start = np.r_[0, np.cumsum(comp_size)]
        frag_start = np.r_[0, np.flatnonzero(np.diff(comp[stray])) + 1, len(stray)]
        if not _graph_kernels.move_fragments(A.indptr, A.indices, labels, stray, frag_start, by_comp, piece_start, main_of):
            break
    return labels


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
        from dreamcs.mesh._reference import repair

        return repair(labels, A, REPAIR_PASSES)
    return _repair(labels, A, REPAIR_PASSES)


def _morton(q: NDArray) -> NDArray:
    """Interleave the bits of (N, 3) ints in [0, 1024) into (N,) Morton codes."""
    code = np.zeros(len(q), dtype=np.int64)
    for bit in range(10):
        for ax in range(3):
            code |= ((q[:, ax] >> bit) & 1).astype(np.int64) << (3 * bit + ax)
    return code


def order_patches(labels: NDArray, centroids: NDArray, A: sp.csr_matrix, n_patches: int, k: int) -> NDArray:
    """(P, K) face indices: patches along a Morton curve of their centres, faces breadth-first from
    the face nearest the patch centre (faces of other pieces follow, nearest first)."""
    n = len(labels)
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

    dist = ((centroids - centers[labels]) ** 2).sum(1)
    # each patch's seed: its face nearest the centre (ties: the lowest index; the last write wins)
    og = np.argsort(labels.astype(np.int16 if n_patches < 32768 else np.int64), kind="stable")
    dmin = np.minimum.reduceat(dist[og], np.arange(0, n, k))
    hit = np.flatnonzero(dist == dmin[labels])[::-1]
    seeds = np.empty(n_patches, dtype=np.int64)
    seeds[labels[hit]] = hit
    # BFS over intra-patch edges from every seed at once; the CSR arrays are sorted, so neighbours
    # are visited in index order: deterministic
    bfs = _graph_kernels.bfs_order(A.indptr, A.indices, labels.astype(np.int64), seeds)
    unreached = np.ones(n, dtype=bool)
    unreached[bfs] = False
    unreached = np.flatnonzero(unreached)
    seq = np.concatenate([bfs, unreached[np.argsort(dist[unreached], kind="stable")]])  # by position
    # patches by rank, faces in sequence order inside (a stable sort of small keys: radix)
    key = patch_rank[labels[seq]].astype(np.int16 if n_patches < 32768 else np.int64)
    return seq[np.argsort(key, kind="stable")].reshape(n_patches, k)
