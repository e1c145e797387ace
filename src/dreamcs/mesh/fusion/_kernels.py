"""Compiled (numba) loops behind mesh fusion's face grouping: one pass each where numpy needed dozens.

Kernels take the face-adjacency graph as CSR arrays (``indptr`` (F+1,), ``indices`` (nnz,), rows
sorted, as ``patches.dual_graph`` builds them) plus per-face ``group`` ints, and return int / bool
arrays. A bisection level first copies the intra-group graph with each group's faces contiguous
(``_local_graph``; the face order inside a group is kept), then cuts the groups one by one, each
candidate cut evaluated by ``_cut_kernels``. Queues visit neighbours in CSR order and ties go by
face index, so every result is deterministic and equals the numpy / scipy version in ``_reference``
exactly (``tests/mesh/test_fusion_kernels.py``). Compiled once, then cached on disk (``_numba``).
"""

from __future__ import annotations

import numpy as np

from dreamcs.mesh._numba import jit
from dreamcs.mesh.fusion import _cut_kernels as cut
from dreamcs.mesh.fusion._sort_kernels import stable_argsort


@jit
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


@jit
def _local_graph(indptr, indices, group, order, weights):
    """The intra-group graph renumbered so that each group is a contiguous range: local face i is
    face ``order[i]`` (``group_faces``). The renumbering keeps the face order inside a group, so
    neighbour and tie orders (and every result) are unchanged. Returns (ptr (F+1,), idx (m,),
    the ``weights`` (nnz,) of the edges kept (m,))."""
    n = len(order)
    pos = np.empty(n, dtype=np.int64)
    for i in range(n):
        pos[order[i]] = i
    ptr = np.zeros(n + 1, dtype=np.int32)  # int32: half the memory traffic of the searches
    idx = np.empty(len(indices), dtype=np.int32)
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


@jit
def _kth_smallest(a, kth):
    """The value ``np.partition(a, kth)[kth]`` would give, by quickselect in place on ``a``
    (numba's ``np.partition`` alone takes ~10 s to compile)."""
    lo, hi = 0, len(a) - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            return a[kth]
    return a[kth]


@jit
def _grow_group(ptr, idx, lo, hi, vals, sign, stop, seen, gen, queue, ordered):
    """The first ``stop`` faces of one group's growth, in order, into ``queue[:stop]``.

    The group is local faces lo..hi-1 (``_local_graph``). Breadth-first from the extreme face by
    ``vals`` (the smallest value, lowest index, for sign > 0; the largest, highest index, otherwise);
    faces the growth cannot reach (other mesh components) follow by ``sign * vals``, ties by index.
    ``seen``: int scratch, ``seen[f] == gen`` once the search found f (``gen`` new per call). Stops
    as soon as ``stop`` faces are placed; ``ordered`` False: when the growth runs out, only which
    faces complete ``queue[:stop]`` is kept, not their order. Returns (whether the growth placed them
    all, so that they are edge-connected, not the unreachable rest; ``tail``: the faces found so far
    are ``queue[:tail]``).
    """
    seed = lo
    for f in range(lo + 1, hi):
        if (vals[f] < vals[seed]) if sign > 0 else (vals[f] >= vals[seed]):
            seed = f
    seen[seed] = gen
    queue[0] = seed
    head, tail = 0, 1
    while head < tail and head < stop:
        f = queue[head]
        head += 1
        for e in range(ptr[f], ptr[f + 1]):
            h = idx[e]
            if seen[h] != gen:
                seen[h] = gen
                queue[tail] = h
                tail += 1
    if head < stop and tail < hi - lo:  # the growth ran out: the unreachable rest, by value
        rest = np.empty(hi - lo - tail, dtype=np.int64)
        i = 0
        for f in range(lo, hi):
            if seen[f] != gen:
                rest[i] = f
                i += 1
        key = np.empty(len(rest), dtype=np.float64)
        for i in range(len(rest)):
            key[i] = sign * vals[rest[i]]
        need = stop - tail
        if ordered or need >= len(rest):
            by_key = stable_argsort(key)
            for i in range(len(rest)):  # a loop, not a slice copy: numba's shape check is slow to compile
                queue[tail + i] = rest[by_key[i]]
            return False, hi - lo
        # only which faces fill the prefix matters to a cut: the ``need`` smallest keys, ties by
        # index (the set a stable sort would place first), by selection instead of a sort
        kth = _kth_smallest(key.copy(), need - 1)
        j = tail
        for i in range(len(rest)):
            if key[i] < kth:
                queue[j] = rest[i]
                j += 1
        for i in range(len(rest)):
            if j < stop and key[i] == kth:
                queue[j] = rest[i]
                j += 1
        return False, stop
    return True, tail


@jit
def grow_ranks(indptr, indices, group, vals):
    """Rank (F,) of each face inside its group, grown from the face with the smallest ``vals`` (F,)
    (``_grow_group``); every prefix of one group's ranks is edge-connected as far as the group is."""
    n = len(group)
    order, start = group_faces(group, np.int64(group.max()) + 1)
    ptr, idx, _ = _local_graph(indptr, indices, group, order, np.zeros(len(indices)))  # no weights
    local_vals = vals[order]
    rank = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.int32)  # the types ``_cut_group`` passes: one compiled growth
    queue = np.empty(n, dtype=np.int32)
    for g in range(len(start) - 1):
        lo, hi = start[g], start[g + 1]
        if hi > lo:
            _grow_group(ptr, idx, lo, hi, local_vals, 1.0, hi - lo, seen, np.int32(g + 1), queue, np.bool_(True))
            for i in range(hi - lo):
                rank[order[queue[i]]] = i
    return rank


@jit
def _cut_group(ptr, idx, sim, lo, hi, feat, dims, stop, stages, cut_weight, ws, ctr, right):
    """One group's chosen cut into ``right[lo:hi]``, as ``bisection`` describes: candidate c grows
    from row ``dims[c // 2]`` of ``feat`` (D, F local), from its low end for even c and its high end
    for odd c; ``stages`` (S,) candidates per stage, a stage tried only while the best cut so far
    leaves a side in more than 2 pieces and in more pieces than the group has components (no cut can
    do better). The lowest score (pieces * 1e7 + cut_weight * cost) wins, ties the earlier one.
    ws: (7, F) int32 workspace (stamps and queues, ``_cut_kernels``); ctr: [candidate id, search
    generation], both only ever increase, so stamps never need a reset."""
    left, mark, seen, queue, scratch, touched, n_right = ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6]
    n_cand = 2 * len(dims)
    best_score, best_pieces, best_cost, c, n_comp = np.inf, 0, np.inf, 0, -1
    for size in stages:
        for _ in range(min(size, n_cand - c)):
            sign = 1.0 if c % 2 == 0 else -1.0
            ctr[1] += 1
            grown, tail = _grow_group(ptr, idx, lo, hi, feat[dims[c // 2]], sign, stop, seen, ctr[1], queue, np.bool_(False))
            c += 1
            ctr[0] += 1
            cid = ctr[0]
            # the first ``stop`` faces go left; after this only the faces on the cut are visited
            n_t = cut.cut_from_prefix(ptr, idx, lo, hi, queue, stop, tail, grown, left, cid, n_right, mark, touched)
            flips, n_t, stays = cut.smooth(ptr, idx, left, cid, n_right, mark, touched, n_t, scratch, stop)
            cost = cut_weight * cut.cut_cost(ptr, idx, left, cid, n_right, sim, touched, n_t)
            # more pieces than the best cannot win while costs stay far below the 1e7 per piece
            limit = best_pieces if best_cost < 1e6 and cost >= 0.0 else hi - lo
            pieces = 1  # a breadth-first prefix is one piece, and smoothing mostly keeps it so
            if not grown or not stays:
                ctr[1] += 1
                pieces = cut.pieces(ptr, idx, lo, hi, left, cid, np.int64(1), seen, ctr[1], queue, limit)
            ctr[1] += 1
            pieces += cut.pieces(ptr, idx, lo, hi, left, cid, np.int64(0), seen, ctr[1], queue, limit - pieces)
            if pieces > limit:
                continue
            score = pieces * 1e7 + cost
            if score < best_score:
                best_score, best_pieces, best_cost = score, pieces, cost
                for f in range(lo, hi):
                    right[f] = left[f] != cid
        if best_pieces <= 2:
            break
        if n_comp < 0:
            ctr[1] += 1
            n_comp = cut.pieces(ptr, idx, lo, hi, left, ctr[0], np.int64(-1), seen, ctr[1], queue, hi - lo)
        if best_pieces <= n_comp:
            break


@jit
def _cut_dims(feat, n_stat, lo, hi, normal_weight, n_dirs):
    """The ``n_dirs`` rows of ``feat`` (D, F local) a group is cut along: its widest, by the spread
    (sum of squared deviations, summed in face order) of the first ``n_stat`` rows; rows 3.. (the
    normals) count in units of the group's spatial spread times ``normal_weight ** 2``, rows past
    ``n_stat`` as 0; ties go to the lower row (numpy's stable argsort of ``bisection``'s reference)."""
    n_row = feat.shape[0]
    var = np.zeros(n_row, dtype=np.float64)
    for d in range(n_stat):
        total = 0.0
        for f in range(lo, hi):
            total += feat[d, f]
        mean = total / (hi - lo)
        for f in range(lo, hi):
            x = feat[d, f] - mean
            var[d] += x * x
    spatial = (var[0] + var[1]) + var[2]
    for d in range(3, n_row):
        var[d] = normal_weight**2 * spatial * var[d]
    dims = np.empty(n_dirs, dtype=np.int64)
    taken = np.zeros(n_row, dtype=np.bool_)
    for r in range(n_dirs):
        best = -1
        for d in range(n_row):
            if not taken[d] and (best < 0 or var[d] > var[best]):
                best = d
        taken[best] = True
        dims[r] = best
    return dims


@jit
def _next_level(ptr, idx, sim, feat, order, start, counts, right):
    """Split every group of ``counts`` > 1 into its left part then its right part and drop the cut
    edges: the next level's local graph, built by ``group_faces`` and ``_local_graph`` from this one
    (faces stay ascending inside a group). Returns the new (ptr, idx, sim, feat, order, start,
    counts)."""
    n, n_g = len(order), len(counts)
    new_group = np.empty(n, dtype=np.int64)
    new_counts = np.empty(n_g + int((counts > 1).sum()), dtype=np.int64)
    j = 0
    for g in range(n_g):
        if counts[g] <= 1:
            new_group[start[g] : start[g + 1]] = j
            new_counts[j] = counts[g]
            j += 1
            continue
        for f in range(start[g], start[g + 1]):
            new_group[f] = j + 1 if right[f] else j
        new_counts[j] = max(counts[g] // 2, 1)
        new_counts[j + 1] = counts[g] - new_counts[j]
        j += 2
    inv, new_start = group_faces(new_group, len(new_counts))
    new_ptr, new_idx, new_sim = _local_graph(ptr, idx, new_group, inv, sim)
    new_feat = np.empty_like(feat)
    for d in range(feat.shape[0]):  # row by row: sequential writes
        for i in range(n):
            new_feat[d, i] = feat[d, inv[i]]
    return new_ptr, new_idx, new_sim, new_feat, order[inv], new_start, new_counts


@jit
def bisect_levels(indptr, indices, group, counts, feat, similar, k, n_stat, normal_weight, n_dirs, stages, cut_weight):
    """Every bisection level in one call -> labels (F,), each used ``k`` times.

    group (F,): the starting groups (mesh components and the pool), ``counts`` (G,) patches each;
    feat (F, D) face centroids and normals; similar (nnz,) per entry of the CSR graph. Each level
    cuts every group of more than one patch at rank ``max(count // 2, 1) * k`` (``_cut_group``,
    along ``_cut_dims``) and splits it, left part first; the local graph is refined in place of
    being rebuilt (``_next_level``). Labels number the final groups in order, as the level-by-level
    numpy reference does.
    """
    n = len(group)
    order, start = group_faces(group, len(counts))
    ptr, idx, sim = _local_graph(indptr, indices, group, order, similar)
    lf = np.empty((feat.shape[1], n), dtype=np.float64)  # (D, F): a contiguous row per column
    for i in range(n):
        for d in range(feat.shape[1]):
            lf[d, i] = feat[order[i], d]
    ws = np.zeros((7, n), dtype=np.int32)
    ws[0] = -1  # ``left`` and ``mark`` stamps: candidate ids start at 1
    ws[1] = -1
    ctr = np.zeros(2, dtype=np.int32)
    right = np.zeros(n, dtype=np.bool_)
    counts = counts.copy()
    while counts.max() > 1:
        last = counts.max() <= 2  # every group ends at one patch after this level: no next graph
        for g in range(len(counts)):
            lo, hi = start[g], start[g + 1]
            right[lo:hi] = False
            if counts[g] > 1:
                dims = _cut_dims(lf, n_stat, lo, hi, normal_weight, n_dirs)
                stop = min(max(counts[g] // 2, 1) * k, hi - lo)
                _cut_group(ptr, idx, sim, lo, hi, lf, dims, stop, stages, cut_weight, ws, ctr, right)
        if last:
            break
        ptr, idx, sim, lf, order, start, counts = _next_level(ptr, idx, sim, lf, order, start, counts, right)
    # labels number the final groups in order: a cut group's left part, then its right part
    labels = np.empty(n, dtype=np.int64)
    j = 0
    for g in range(len(counts)):
        cut_here = counts[g] > 1
        for i in range(start[g], start[g + 1]):
            labels[order[i]] = j + 1 if cut_here and right[i] else j
        j += 2 if cut_here else 1
    return labels


@jit
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
