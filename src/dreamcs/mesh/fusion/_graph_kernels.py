"""Compiled (numba) graph loops of mesh fusion's patch stage: the dual graph, pieces per label,
the patch repair's fragment moves, the in-patch breadth-first order.

Same conventions and on-disk cache as ``_kernels`` (CSR arrays in, int arrays out; results equal
the numpy / scipy versions in ``_reference``).
"""

from __future__ import annotations

import numpy as np

from dreamcs.mesh._numba import jit
from dreamcs.mesh.fusion._sort_kernels import sort_prefix, stable_argsort


@jit
def components(indptr, indices, labels):
    """Edge-connected pieces of each label: (n_pieces, piece id (F,)). Edges join faces of equal
    label only; ids follow each piece's lowest face (scipy's ``connected_components`` order)."""
    n = len(labels)
    comp = np.full(n, -1, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    n_c = 0
    for s in range(n):
        if comp[s] >= 0:
            continue
        comp[s] = n_c
        queue[0] = s
        head, tail = 0, 1
        while head < tail:
            f = queue[head]
            head += 1
            for e in range(indptr[f], indptr[f + 1]):
                g = indices[e]
                if comp[g] < 0 and labels[g] == labels[f]:
                    comp[g] = n_c
                    queue[tail] = g
                    tail += 1
        n_c += 1
    return n_c, comp


@jit
def move_fragments(indptr, indices, labels, stray, frag_start, piece_faces, piece_start, main_of):
    """One repair pass over the stray fragments, in place on ``labels`` (F,); returns whether any
    fragment moved.

    Fragment i is ``stray[frag_start[i]:frag_start[i + 1]]`` (faces of one patch p outside its main
    piece). It moves to the patch q its faces share most edges with (ties: the lowest label), and q
    gives back as many faces, breadth-first from q's faces next to p's main piece (``piece_faces``
    from ``piece_start[main_of[p]]``, ascending, until the next piece), seeds in face order. A
    fragment some earlier move touched, or with no such q or not enough q faces, stays.
    """
    n = len(labels)
    n_lab = len(main_of)
    votes = np.zeros(n_lab, dtype=np.int64)
    mark = np.full(n, -1, dtype=np.int64)  # mark[f] == i: f is queued for fragment i
    queue = np.empty(n, dtype=np.int64)
    changed = False
    for i in range(len(frag_start) - 1):
        frag = stray[frag_start[i] : frag_start[i + 1]]
        p = labels[frag[0]]
        if (labels[frag] != p).any():
            continue  # touched by an earlier move in this pass
        q = -1
        for f in frag:
            for e in range(indptr[f], indptr[f + 1]):
                lab = labels[indices[e]]
                if lab != p:
                    votes[lab] += 1
                    if q < 0 or votes[lab] > votes[q] or (votes[lab] == votes[q] and lab < q):
                        q = lab
        for f in frag:  # reset only what was counted
            for e in range(indptr[f], indptr[f + 1]):
                votes[labels[indices[e]]] = 0
        if q < 0:
            continue  # a separate mesh component: nothing to attach it to
        m = main_of[p]
        tail = 0
        for j in range(piece_start[m], piece_start[m + 1]):
            f = piece_faces[j]
            if labels[f] != p:
                continue
            for e in range(indptr[f], indptr[f + 1]):
                g = indices[e]
                if labels[g] == q and mark[g] != i:
                    mark[g] = i
                    queue[tail] = g
                    tail += 1
        if tail == 0:
            continue  # q does not touch p's main piece
        sort_prefix(queue, np.int64(tail))  # seeds in face order
        s = len(frag)
        head = 0
        while head < tail and head < s:
            f = queue[head]
            head += 1
            for e in range(indptr[f], indptr[f + 1]):
                g = indices[e]
                if labels[g] == q and mark[g] != i:
                    mark[g] = i
                    queue[tail] = g
                    tail += 1
        if head < s:
            continue  # not enough faces of q within reach
        for f in frag:
            labels[f] = q
        for j in range(s):
            labels[queue[j]] = p
        changed = True
    return changed


@jit
def dual_graph_csr(faces, n_vert):
    """Face adjacency over shared edges as sorted CSR arrays (indptr (F+1,), indices) without
    duplicates or self-links: ``patches.dual_graph``'s graph. The faces of an edge are chained in the
    order of their edge slots (slot k of face f at position k * F + f), as a stable sort by edge key
    gives; edges are bucketed by their lower vertex instead of sorted globally."""
    n = len(faces)
    lo = np.empty(3 * n, dtype=np.int64)
    hi = np.empty(3 * n, dtype=np.int64)
    for k in range(3):
        for f in range(n):
            a, b = faces[f, k], faces[f, (k + 1) % 3]
            lo[k * n + f], hi[k * n + f] = min(a, b), max(a, b)
    start = np.zeros(n_vert + 1, dtype=np.int64)
    for p in range(3 * n):
        start[lo[p] + 1] += 1
    for v in range(n_vert):
        start[v + 1] += start[v]
    fill = start[:-1].copy()
    bucket = np.empty(3 * n, dtype=np.int64)  # positions by lower vertex, ascending inside
    for p in range(3 * n):
        bucket[fill[lo[p]]] = p
        fill[lo[p]] += 1
    pa = np.empty(3 * n, dtype=np.int64)
    pb = np.empty(3 * n, dtype=np.int64)
    m = 0
    for v in range(n_vert):
        s, e = start[v], start[v + 1]
        for i in range(s + 1, e):  # stable insertion sort by the upper vertex (buckets are small)
            p = bucket[i]
            j = i
            while j > s and hi[bucket[j - 1]] > hi[p]:
                bucket[j] = bucket[j - 1]
                j -= 1
            bucket[j] = p
        for i in range(s, e - 1):
            p, q = bucket[i], bucket[i + 1]
            if hi[p] == hi[q] and p % n != q % n:
                pa[m], pb[m] = p % n, q % n
                m += 1
    deg = np.zeros(n + 1, dtype=np.int64)
    for i in range(m):
        deg[pa[i] + 1] += 1
        deg[pb[i] + 1] += 1
    for f in range(n):
        deg[f + 1] += deg[f]
    fill = deg[:-1].copy()
    nb = np.empty(2 * m, dtype=np.int64)
    for i in range(m):
        nb[fill[pa[i]]] = pb[i]
        fill[pa[i]] += 1
        nb[fill[pb[i]]] = pa[i]
        fill[pb[i]] += 1
    indptr = np.zeros(n + 1, dtype=np.int32)
    indices = np.empty(2 * m, dtype=np.int32)
    t = 0
    for f in range(n):
        s, e = deg[f], deg[f + 1]
        for i in range(s + 1, e):  # insertion sort: rows are short
            x = nb[i]
            j = i
            while j > s and nb[j - 1] > x:
                nb[j] = nb[j - 1]
                j -= 1
            nb[j] = x
        for i in range(s, e):
            if i == s or nb[i] != nb[i - 1]:  # two faces sharing two edges: one link
                indices[t] = nb[i]
                t += 1
        indptr[f + 1] = t
    return indptr, indices[:t]


@jit
def bfs_order(indptr, indices, labels, seeds):
    """Faces in breadth-first order over same-label edges from all ``seeds`` at once (queued in the
    given order, as from a virtual root linked to them); faces no seed reaches are left out."""
    n = len(labels)
    seen = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    tail = 0
    for s in seeds:
        if not seen[s]:
            seen[s] = True
            queue[tail] = s
            tail += 1
    head = 0
    while head < tail:
        f = queue[head]
        head += 1
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if not seen[h] and labels[h] == labels[f]:
                seen[h] = True
                queue[tail] = h
                tail += 1
    return queue[:tail]


@jit
def first_copy(rows):
    """(N,) index of the first row equal to each row of ``rows`` (N, 3) int64 (for float rows, their
    bit patterns), by open-addressing hashing in index order: linear time, no sort."""
    n = len(rows)
    size = 1
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    rep = np.empty(n, dtype=np.int64)
    mask = np.uint64(size - 1)
    for i in range(n):
        h = np.uint64(rows[i, 0]) * np.uint64(0x9E3779B97F4A7C15)
        h = (h ^ np.uint64(rows[i, 1])) * np.uint64(0xC2B2AE3D27D4EB4F)
        h = (h ^ np.uint64(rows[i, 2])) * np.uint64(0x165667B19E3779F9)
        slot = (h ^ (h >> np.uint64(29))) & mask
        while True:
            j = table[slot]
            if j < 0:
                table[slot] = i
                rep[i] = i
                break
            if rows[j, 0] == rows[i, 0] and rows[j, 1] == rows[i, 1] and rows[j, 2] == rows[i, 2]:
                rep[i] = j
                break
            slot = (slot + np.uint64(1)) & mask
    return rep


@jit
def face_frames(verts, faces):
    """Face centroids and unit normals (F, 3) each, of ``verts`` (V, 3) float64 and ``faces`` (F, 3).

    The same floats as numpy's ``verts[faces].mean(1)`` and the cross product over its norm (terms
    added in the same order); one pass, where numpy's small-axis mean alone costs ~2 ms at 16k faces.
    A zero-area face gets a zero normal."""
    n = len(faces)
    cen = np.empty((n, 3), dtype=np.float64)
    nrm = np.empty((n, 3), dtype=np.float64)
    for f in range(n):
        i, j, k = faces[f, 0], faces[f, 1], faces[f, 2]
        for d in range(3):
            cen[f, d] = ((verts[i, d] + verts[j, d]) + verts[k, d]) / 3.0
        a0, a1, a2 = verts[j, 0] - verts[i, 0], verts[j, 1] - verts[i, 1], verts[j, 2] - verts[i, 2]
        b0, b1, b2 = verts[k, 0] - verts[i, 0], verts[k, 1] - verts[i, 1], verts[k, 2] - verts[i, 2]
        c0, c1, c2 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
        norm = max(np.sqrt((c0 * c0 + c1 * c1) + c2 * c2), 1e-300)
        nrm[f, 0], nrm[f, 1], nrm[f, 2] = c0 / norm, c1 / norm, c2 / norm
    return cen, nrm


@jit
def patch_face_order(labels, centroids, centers, patch_rank, indptr, indices):
    """(F,) faces in the patch layout's order: patches by ``patch_rank`` (P,), and inside a patch
    breadth-first over same-label edges from its face nearest the centre (``centers`` (P, 3); ties:
    the lowest index), the faces no search reaches after, nearest the centre first (ties: index).

    All seeds start one search together, queued in patch order, as ``bfs_order`` does."""
    n, n_p = len(labels), len(centers)
    dist = np.empty(n, dtype=np.float64)
    seeds = np.full(n_p, -1, dtype=np.int64)
    for f in range(n):
        p = labels[f]
        d0 = centroids[f, 0] - centers[p, 0]
        d1 = centroids[f, 1] - centers[p, 1]
        d2 = centroids[f, 2] - centers[p, 2]
        dist[f] = (d0 * d0 + d1 * d1) + d2 * d2
        if seeds[p] < 0 or dist[f] < dist[seeds[p]]:
            seeds[p] = f
    seq = bfs_order(indptr, indices, labels, seeds[seeds >= 0])
    reached = np.zeros(n, dtype=np.bool_)
    reached[seq] = True
    rest = np.flatnonzero(~reached)
    rest = rest[stable_argsort(dist[rest])]
    # a stable counting sort of bfs-then-rest by patch rank
    start = np.zeros(n_p + 1, dtype=np.int64)
    for f in range(n):
        start[patch_rank[labels[f]] + 1] += 1
    for r in range(n_p):
        start[r + 1] += start[r]
    out = np.empty(n, dtype=np.int64)
    for part in (seq, rest):
        for f in part:
            r = patch_rank[labels[f]]
            out[start[r]] = f
            start[r] += 1
    return out


@jit
def repair_patches(indptr, indices, labels, passes):
    """``patches._repair``'s passes in one call, in place on ``labels`` (F,) int64.

    Each pass finds every patch's pieces (``components``); where a patch has several, its main piece
    is its largest (ties: the lowest piece id) and the others are stray fragments, moved smallest
    first, then by piece id (``move_fragments``), as ``_reference.stray_fragments`` orders them.
    Stops early once every patch is one piece or a pass moves nothing."""
    n = len(labels)
    n_lab = labels.max() + 1
    for _ in range(passes):
        n_c, comp = components(indptr, indices, labels)
        label_of = np.empty(n_c, dtype=np.int64)
        comp_size = np.zeros(n_c, dtype=np.int64)
        n_pieces = np.zeros(n_lab, dtype=np.int64)
        for f in range(n):
            if comp_size[comp[f]] == 0:
                label_of[comp[f]] = labels[f]
                n_pieces[labels[f]] += 1
            comp_size[comp[f]] += 1
        if (n_pieces <= 1).all():
            break
        main_of = np.full(n_lab, -1, dtype=np.int64)
        for c in range(n_c):  # ascending ids: ties keep the lowest
            p = label_of[c]
            if n_pieces[p] > 1 and (main_of[p] < 0 or comp_size[c] > comp_size[main_of[p]]):
                main_of[p] = c
        piece_start = np.zeros(n_c + 1, dtype=np.int64)
        for c in range(n_c):
            piece_start[c + 1] = piece_start[c] + comp_size[c]
        fill = piece_start[:-1].copy()
        by_comp = np.empty(n, dtype=np.int64)  # faces by piece, ascending inside
        for f in range(n):
            by_comp[fill[comp[f]]] = f
            fill[comp[f]] += 1
        frags = np.empty(n_c, dtype=np.int64)
        n_f = 0
        for c in range(n_c):
            if n_pieces[label_of[c]] > 1 and main_of[label_of[c]] != c:
                frags[n_f] = c
                n_f += 1
        frags = frags[:n_f]
        frags = frags[stable_argsort(comp_size[frags].astype(np.float64))]  # smallest first, then by id
        frag_start = np.zeros(len(frags) + 1, dtype=np.int64)
        for i in range(len(frags)):
            frag_start[i + 1] = frag_start[i] + comp_size[frags[i]]
        stray = np.empty(frag_start[-1], dtype=np.int64)
        for i in range(len(frags)):
            c = frags[i]
            for j in range(comp_size[c]):  # a loop, not a slice copy: numba's shape check is slow to compile
                stray[frag_start[i] + j] = by_comp[piece_start[c] + j]
        if not move_fragments(indptr, indices, labels, stray, frag_start, by_comp, piece_start, main_of):
            break
    return labels
