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

from collections import deque

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order, connected_components

from dreamcs.mesh.bisection import bisect_faces, neighbours, subgraph

__all__ = ["dual_graph", "partition", "order_patches", "connected_patch_mask"]

REPAIR_PASSES = 3


def dual_graph(faces: NDArray) -> sp.csr_matrix:
    """Face adjacency over shared edges as a symmetric (F, F) CSR matrix of ones.

    A non-manifold edge with n faces links them in a chain (n - 1 pairs), which keeps the
    graph sparse and still connects them.
    """
    n = len(faces)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    key = lo.astype(np.int64) * (int(faces.max()) + 1) + hi
    if int(key.max()) < 2**62 // (3 * n):  # unique keys (edge index as the last digit): any sort
        order = np.argsort(key * (3 * n) + np.arange(3 * n))  # is the stable one, and faster
    else:
        order = np.argsort(key, kind="stable")
    ks = key[order]
    same = np.flatnonzero(ks[1:] == ks[:-1])
    a, b = order[same] % n, order[same + 1] % n
    keep = a != b
    a, b = a[keep], b[keep]
    A = sp.csr_matrix((np.ones(2 * len(a)), (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    A.data[:] = 1  # duplicate pairs (two faces sharing two edges) collapse to one link
    return A


def _components(A: sp.csr_matrix, rows: NDArray, labels: NDArray) -> tuple[int, NDArray]:
    """Connected components of A restricted to edges whose ends share a label."""
    keep = labels[rows] == labels[A.indices]
    indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=A.shape[0]))]
    intra = sp.csr_matrix((np.ones(int(keep.sum())), A.indices[keep], indptr), shape=A.shape)
    return connected_components(intra, directed=False)


def connected_patch_mask(labels: NDArray, A: sp.csr_matrix) -> tuple[NDArray, NDArray]:
    """Intra-patch components. Returns (component id per face, bool per patch: one component)."""
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    n_c, comp = _components(A, rows, labels)
    label_of_comp = np.zeros(n_c, dtype=np.int64)
    label_of_comp[comp] = labels
    return comp, np.bincount(label_of_comp, minlength=int(labels.max()) + 1) == 1


def _repair(labels: NDArray, A: sp.csr_matrix, passes: int = 3) -> NDArray:
    """Make patches edge-connected where possible, keeping every patch size unchanged.

    A stray fragment of patch p moves to the neighbouring patch q it shares most edges with, and q
    gives back as many faces, breadth-first from its border with p's main piece.
    """
    indptr, indices = A.indptr, A.indices
    labels = labels.copy()
    for _ in range(passes):
        comp, ok = connected_patch_mask(labels, A)
        if ok.all():
            break
        changed = False
        comp_size = np.bincount(comp)
        # the faces of piece c: by_comp[c_start[c]:][:size] (16-bit keys: numpy's radix sort)
        by_comp = np.argsort(comp.astype(np.uint16) if len(comp_size) < 2**16 else comp, kind="stable")
        c_start = np.cumsum(comp_size) - comp_size
        bad = np.flatnonzero(~ok[labels])  # faces in patches with more than one piece
        # main piece of each patch = its largest component (ties: the smallest id)
        by = np.lexsort((comp[bad], -comp_size[comp[bad]], labels[bad]))
        lab_sorted = labels[bad][by]
        first = np.r_[True, lab_sorted[1:] != lab_sorted[:-1]]
        main_of = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
        main_of[lab_sorted[first]] = comp[bad][by][first]
        stray = bad[comp[bad] != main_of[labels[bad]]]
        o = np.lexsort((stray, comp[stray], comp_size[comp[stray]]))  # smallest fragments first
        stray = stray[o]
        cuts = np.flatnonzero(np.diff(comp[stray])) + 1
        for frag in np.split(stray, cuts) if len(stray) else []:
            p = int(labels[frag[0]])
            if (labels[frag] != p).any():
                continue  # touched by an earlier move in this pass
            _, nb = neighbours(indptr, indices, frag)
            nb_lab = labels[nb]
            nb_lab = nb_lab[nb_lab != p]
            if len(nb_lab) == 0:
                continue  # a separate mesh component: nothing to attach it to
            q = int(np.bincount(nb_lab).argmax())
            m = int(main_of[p])
            give = _border_faces(labels, indptr, indices, q, p, by_comp[c_start[m] :][: comp_size[m]], len(frag))
            if give is None:
                continue
            labels[frag] = q
            labels[give] = p
            changed = True
        if not changed:
            break
    return labels


def _border_faces(labels, indptr, indices, q, p, main, s) -> NDArray | None:
    """``s`` faces of patch q nearest (breadth-first) to p's main piece (faces ``main``, those still
    in p), or None if q does not touch it. Seeds go in index order."""
    _, nb = neighbours(indptr, indices, main[labels[main] == p])
    seeds = np.unique(nb[labels[nb] == q])
    if len(seeds) == 0:
        return None
    seen = set(seeds.tolist())
    queue = deque(seeds.tolist())
    out: list[int] = []
    while queue and len(out) < s:
        f = queue.popleft()
        out.append(f)
        for g in indices[indptr[f] : indptr[f + 1]].tolist():
            if g not in seen and labels[g] == q:
                seen.add(g)
                queue.append(g)
    return np.asarray(out, dtype=np.int64) if len(out) == s else None


def partition(centroids: NDArray, normals: NDArray, A: sp.csr_matrix, n_patches: int, k: int) -> NDArray:
    """Labels (F,) in [0, n_patches), each used exactly k times. centroids, normals: (F, 3)."""
    if len(centroids) != n_patches * k:
        raise ValueError(f"need exactly {n_patches * k} faces, got {len(centroids)}")
    labels = bisect_faces(np.concatenate([centroids, normals], 1), n_patches, k, A.tocsr())
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
    centers = np.zeros((n_patches, 3))
    np.add.at(centers, labels, centroids)
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
    # BFS over intra-patch edges from a virtual root linked to every seed; the CSR arrays are
    # sorted, so neighbours are visited in index order: deterministic
    rows = np.repeat(np.arange(n, dtype=A.indices.dtype), np.diff(A.indptr))
    ptr, idx, _ = subgraph(A.indptr, A.indices, rows, labels[rows] == labels[A.indices])
    G = sp.csr_matrix(
        (np.ones(len(idx) + n_patches), np.r_[idx, seeds], np.r_[ptr, ptr[-1] + n_patches]), shape=(n + 1, n + 1)
    )
    bfs = breadth_first_order(G, n, directed=True, return_predecessors=False)[1:]
    pos = np.full(n, n, dtype=np.int64)
    pos[bfs] = np.arange(len(bfs))
    unreached = pos == n
    pos[unreached] = n + np.argsort(np.argsort(dist[unreached], kind="stable"), kind="stable")
    # keys are unique (pos is a permutation), so any sort gives the same order
    return np.argsort(patch_rank[labels] * (2 * n) + pos).reshape(n_patches, k)
