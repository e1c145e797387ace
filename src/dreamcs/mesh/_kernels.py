"""Compiled (numba) loops behind mesh fusion's face grouping: one pass each where numpy needed dozens.

Every kernel takes the face-adjacency graph as CSR arrays (``indptr`` (F+1,), ``indices`` (nnz,),
sorted rows as ``patches.dual_graph`` builds them) plus per-face ``group`` / ``labels`` ints, and
only follows edges whose two faces share a group: the intra-group graph needs no copy. Queues visit
neighbours in CSR order, so every result is deterministic and equals the earlier numpy / scipy
version exactly (``tests/mesh/test_fusion_kernels.py`` compares them).

Compiled code is cached on disk (``cache=True``): in ``__pycache__`` beside this file, or, where
that is read-only (an installed package), numba's user-wide cache dir (``NUMBA_CACHE_DIR`` if set,
else ``~/.cache/numba``). Where neither can be written, numba refuses ``cache=True`` when the
module is imported; ``_jit`` then compiles without the cache (each process pays the compile once).
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _jit(fn):
    """``njit(cache=True)``, or plain ``njit`` where numba finds no writable cache location."""
    try:
        return njit(cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(fn)


@_jit
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


@_jit
def group_faces(group, n_g):
    """Faces by group, ascending inside each: group g's faces are order[start[g]:start[g + 1]]."""
    start = np.zeros(n_g + 1, dtype=np.int64)
    for f in range(len(group)):
        start[group[f] + 1] += 1
    for g in range(n_g):
        start[g + 1] += start[g]
    fill = start[:-1].copy()
    order = np.empty(len(group), dtype=np.int64)
    for f in range(len(group)):
        order[fill[group[f]]] = f
        fill[group[f]] += 1
    return order, start


@_jit
def _local_graph(indptr, indices, group, order):
    """The intra-group graph renumbered so that each group is a contiguous range: local face i is
    face ``order[i]`` (``group_faces``). The renumbering keeps the face order inside a group, so
    neighbour and tie orders (and every result) are unchanged. Returns (ptr (F+1,), idx (m,),
    entry (m,): each local edge's entry in ``indices``)."""
    n = len(order)
    pos = np.empty(n, dtype=np.int64)
    for i in range(n):
        pos[order[i]] = i
    ptr = np.zeros(n + 1, dtype=np.int64)
    idx = np.empty(len(indices), dtype=np.int64)
    entry = np.empty(len(indices), dtype=np.int64)
    m = 0
    for i in range(n):
        f = order[i]
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if group[h] == group[f]:
                idx[m] = pos[h]
                entry[m] = e
                m += 1
        ptr[i + 1] = m
    return ptr, idx[:m], entry[:m]


@_jit
def _grow_group(ptr, idx, lo, hi, vals, sign, stop, seen, queue):
    """The first ``stop`` faces of one group's growth, in order, into ``queue[:stop]``.

    The group is local faces lo..hi-1 (``_local_graph``). Breadth-first from the extreme face by
    ``vals`` (the smallest value, lowest index, for sign > 0; the largest, highest index, otherwise);
    faces the growth cannot reach (other mesh components) follow by ``sign * vals``, ties by index.
    ``seen`` bool scratch, reset here. Stops as soon as ``stop`` faces are placed. Returns whether
    the growth placed them all (then they are edge-connected), not the unreachable rest.
    """
    seed = lo
    for f in range(lo + 1, hi):
        if (vals[f] < vals[seed]) if sign > 0 else (vals[f] >= vals[seed]):
            seed = f
    seen[lo:hi] = False
    seen[seed] = True
    queue[0] = seed
    head, tail = 0, 1
    while head < tail and head < stop:
        f = queue[head]
        head += 1
        for e in range(ptr[f], ptr[f + 1]):
            h = idx[e]
            if not seen[h]:
                seen[h] = True
                queue[tail] = h
                tail += 1
    if head < stop and tail < hi - lo:  # the growth ran out: the unreachable rest, by value
        rest = np.empty(hi - lo - tail, dtype=np.int64)
        i = 0
        for f in range(lo, hi):
            if not seen[f]:
                rest[i] = f
                i += 1
        key = np.empty(len(rest), dtype=np.float64)
        for i in range(len(rest)):
            key[i] = sign * vals[rest[i]]
        queue[tail : tail + len(rest)] = rest[np.argsort(key, kind="mergesort")]
        return False
    return True


@_jit
def grow_ranks(indptr, indices, group, vals):
    """Rank (F,) of each face inside its group, grown from the face with the smallest ``vals`` (F,)
    (``_grow_group``); every prefix of one group's ranks is edge-connected as far as the group is."""
    n = len(group)
    order, start = group_faces(group, np.int64(group.max()) + 1)
    ptr, idx, _ = _local_graph(indptr, indices, group, order)
    local_vals = vals[order]
    rank = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    for g in range(len(start) - 1):
        lo, hi = start[g], start[g + 1]
        if hi > lo:
            _grow_group(ptr, idx, lo, hi, local_vals, 1.0, hi - lo, seen, queue)
            for i in range(hi - lo):
                rank[order[queue[i]]] = i
    return rank


@_jit
def _smooth(ptr, idx, lo, hi, right, n_right, flipped):
    """Up to 3 rounds: isolated right faces ("teeth") swap sides with left faces sticking out into
    the right part (one neighbour left, two or more right), pairwise and in face order, so both
    sides keep their sizes. The group: local faces lo..hi-1; ``n_right`` (each face's right
    neighbours) is kept up to date; flipped: scratch. Returns the number of faces flipped."""
    total = 0
    for _ in range(3):
        n_tooth, n_bump = 0, 0
        for f in range(lo, hi):  # from this round's counts
            deg = ptr[f + 1] - ptr[f]
            if right[f] and n_right[f] == 0 and deg > 0:
                n_tooth += 1
            elif not right[f] and deg - n_right[f] <= 1 and n_right[f] >= 2:
                n_bump += 1
        swaps = min(n_tooth, n_bump)
        if swaps == 0:
            break
        n_flip, done_t, done_b = 0, 0, 0
        for f in range(lo, hi):  # the first ``swaps`` teeth and bumps, on the counts before any flip
            deg = ptr[f + 1] - ptr[f]
            if done_t < swaps and right[f] and n_right[f] == 0 and deg > 0:
                flipped[n_flip] = f
                n_flip += 1
                done_t += 1
            elif done_b < swaps and not right[f] and deg - n_right[f] <= 1 and n_right[f] >= 2:
                flipped[n_flip] = f
                n_flip += 1
                done_b += 1
        for i in range(n_flip):
            right[flipped[i]] = not right[flipped[i]]
        for i in range(n_flip):  # a flipped face changes its neighbours' right counts by one
            f = flipped[i]
            d = 1 if right[f] else -1
            for e in range(ptr[f], ptr[f + 1]):
                n_right[idx[e]] += d
        total += n_flip
    return total


@_jit
def _cut_cost(ptr, idx, lo, hi, right, n_right, similar):
    """``similar`` (per local edge) summed over one group's cut edges in CSR order (the reference's
    order, so the same float); only faces on the cut (by ``n_right``) have their edges visited."""
    cost = 0.0
    for f in range(lo, hi):
        if (n_right[f] < ptr[f + 1] - ptr[f]) if right[f] else (n_right[f] > 0):
            for e in range(ptr[f], ptr[f + 1]):
                if right[idx[e]] != right[f]:
                    cost += similar[e]
    return cost


@_jit
def _pieces(ptr, idx, lo, hi, right, which, seen, queue):
    """Edge-connected pieces of one group's side ``which`` (True: right), breadth-first."""
    for f in range(lo, hi):
        seen[f] = False
    pieces = 0
    for s in range(lo, hi):
        if seen[s] or right[s] != which:
            continue
        pieces += 1
        seen[s] = True
        queue[0] = s
        head, tail = 0, 1
        while head < tail:
            f = queue[head]
            head += 1
            for e in range(ptr[f], ptr[f + 1]):
                h = idx[e]
                if not seen[h] and right[h] == which:
                    seen[h] = True
                    queue[tail] = h
                    tail += 1
    return pieces


@_jit
def split_level(indptr, indices, group, feat, dims, cut_at, active, similar, stages, cut_weight):
    """right (F,) bool: every group's chosen cut at rank ``cut_at`` (G,), as ``bisection._split_level``
    describes. Candidate c grows from column ``dims[g, c // 2]`` of ``feat`` (F, D), from its low
    end for even c and its high end for odd c; ``stages`` (S,) candidates per stage, a stage tried
    only while the best cut so far leaves a side in more than 2 pieces (``active`` (G,) groups).
    The lowest score (pieces * 1e7 + cut_weight * cost) wins, ties the earlier candidate.
    """
    n, n_g = len(group), len(cut_at)
    order, start = group_faces(group, n_g)
    ptr, idx, entry = _local_graph(indptr, indices, group, order)
    sim = similar[entry]
    local_feat = np.ascontiguousarray(feat[order].T)  # (D, F): one contiguous column per direction
    seen = np.zeros(n, dtype=np.bool_)
    side = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    n_right = np.empty(n, dtype=np.int64)
    right = np.zeros(n, dtype=np.bool_)
    n_cand = 2 * dims.shape[1]
    for g in range(n_g):
        lo, hi = start[g], start[g + 1]
        if hi == lo:
            continue
        stop = min(cut_at[g], hi - lo)
        best_score, best_pieces, c = np.inf, 0, 0
        for size in stages:
            for _ in range(min(size, n_cand - c)):
                sign = 1.0 if c % 2 == 0 else -1.0
                grown = _grow_group(ptr, idx, lo, hi, local_feat[dims[g, c // 2]], sign, stop, seen, queue)
                c += 1
                # the first ``stop`` faces go left; right neighbour counts from one pass over them
                for f in range(lo, hi):
                    side[f] = True
                    n_right[f] = ptr[f + 1] - ptr[f]
                for i in range(stop):
                    side[queue[i]] = False
                    n_right[queue[i]] = 0
                for i in range(stop):
                    f = queue[i]
                    for e in range(ptr[f], ptr[f + 1]):
                        if side[idx[e]]:
                            n_right[f] += 1
                            n_right[idx[e]] -= 1
                flips = _smooth(ptr, idx, lo, hi, side, n_right, queue) if active[g] else 0
                cost = _cut_cost(ptr, idx, lo, hi, side, n_right, sim)
                # a breadth-first prefix is one piece until smoothing flips faces
                pieces = 1 if grown and flips == 0 else _pieces(ptr, idx, lo, hi, side, False, seen, queue)
                pieces += _pieces(ptr, idx, lo, hi, side, True, seen, queue)
                score = pieces * 1e7 + cut_weight * cost
                if score < best_score:
                    best_score, best_pieces = score, pieces
                    right[lo:hi] = side[lo:hi]
            if not (active[g] and best_pieces > 2):
                break
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        out[order[i]] = right[i]
    return out


@_jit
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
        queue[:tail].sort()  # seeds in face order
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


@_jit
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


@_jit
def group_var(cols, group, n_g):
    """Per-group sums of squared deviations (G, D) of the rows of ``cols`` (D, F): sums in face
    order, as ``np.bincount`` with weights adds them (the same floats as the numpy version)."""
    n_d, n = cols.shape
    size = np.zeros(n_g, dtype=np.int64)
    for f in range(n):
        size[group[f]] += 1
    out = np.zeros((n_g, n_d), dtype=np.float64)
    total = np.zeros(n_g, dtype=np.float64)
    for d in range(n_d):
        total[:] = 0.0
        for f in range(n):
            total[group[f]] += cols[d, f]
        mean = total / size
        for f in range(n):
            x = cols[d, f] - mean[group[f]]
            out[group[f], d] += x * x
    return out


@_jit
def similar_normals(indptr, indices, normals):
    """(nnz,) 0.5 * (1 + n_f . n_h) for every entry (f, h) of the CSR graph: ~1 between faces of
    similar unit normals (F, 3), ~0 across a sharp crease. The dot product adds its terms in order, as
    numpy's ``(a * b).sum(1)`` does, so the floats are the same."""
    out = np.empty(len(indices), dtype=np.float64)
    for f in range(len(indptr) - 1):
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            p0 = normals[f, 0] * normals[h, 0]
            p1 = normals[f, 1] * normals[h, 1]
            p2 = normals[f, 2] * normals[h, 2]
            out[e] = 0.5 * (1.0 + ((p0 + p1) + p2))
    return out
