"""Compiled (numba) loops behind mesh fusion's face grouping: one pass each where numpy needed dozens.

Kernels take the face-adjacency graph as CSR arrays (``indptr`` (F+1,), ``indices`` (nnz,), rows
sorted, as ``patches.dual_graph`` builds them) plus per-face ``group`` ints, and return int / bool
arrays. A bisection level first copies the intra-group graph with each group's faces contiguous
(``_local_graph``; the face order inside a group is kept), then cuts the groups one by one. Queues
visit neighbours in CSR order and ties go by face index, so every result is deterministic and equals
the numpy / scipy version in ``_reference`` exactly (``tests/mesh/test_fusion_kernels.py``).

Compiling every kernel takes ~30 s of one core, once: the machine code is cached on disk
(``cache=True``) and later processes load it in under a second. numba picks the first usable
place: ``NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside this file if writable, else its
user-wide dir (``~/.cache/numba``), so a read-only install still caches. If none is writable numba
refuses ``cache=True`` when the module is imported; ``_jit`` then compiles without a cache (every
process pays the compile on its first fuse).
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
def _local_graph(indptr, indices, group, order, weights):
    """The intra-group graph renumbered so that each group is a contiguous range: local face i is
    face ``order[i]`` (``group_faces``). The renumbering keeps the face order inside a group, so
    neighbour and tie orders (and every result) are unchanged. Returns (ptr (F+1,), idx (m,),
    the ``weights`` (nnz,) of the edges kept (m,))."""
    n = len(order)
    pos = np.empty(n, dtype=np.int64)
    for i in range(n):
        pos[order[i]] = i
    ptr = np.zeros(n + 1, dtype=np.int64)
    idx = np.empty(len(indices), dtype=np.int64)
    kept = np.empty(len(indices), dtype=weights.dtype)
    m = 0
    for i in range(n):
        f = order[i]
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if group[h] == group[f]:
                idx[m] = pos[h]
                kept[m] = weights[e]
                m += 1
        ptr[i + 1] = m
    return ptr, idx[:m], kept[:m]


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
    ptr, idx, _ = _local_graph(indptr, indices, group, order, np.zeros(len(indices)))  # no weights
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
    ptr, idx, sim = _local_graph(indptr, indices, group, order, similar)
    local_feat = np.empty((feat.shape[1], n), dtype=np.float64)  # (D, F): a contiguous row per column
    for i in range(n):
        for d in range(feat.shape[1]):
            local_feat[d, i] = feat[order[i], d]
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
