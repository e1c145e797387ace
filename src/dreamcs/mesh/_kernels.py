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
def grow_ranks(indptr, indices, group, todo, vals, sign):
    """Rank (F,) of each face inside its group (-1 outside the groups ``todo`` (G,) bool): breadth-
    first over the intra-group graph from the group's extreme face by ``vals`` (F,) (the smallest
    value, lowest index, for sign > 0; the largest, highest index, otherwise); faces the growth
    cannot reach (other mesh components) follow by ``sign * vals``, ties by index."""
    n, n_g = len(group), len(todo)
    seed = np.full(n_g, -1, dtype=np.int64)
    for f in range(n):
        g = group[f]
        if todo[g] and (seed[g] < 0 or (vals[f] < vals[seed[g]] if sign > 0 else vals[f] >= vals[seed[g]])):
            seed[g] = f
    rank = np.full(n, -1, dtype=np.int64)
    count = np.zeros(n_g, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    tail = 0
    for f in range(n):  # seeds queued in face order, as from a virtual root linked to all of them
        if todo[group[f]] and seed[group[f]] == f:
            seen[f] = True
            queue[tail] = f
            tail += 1
    head = 0
    while head < tail:
        f = queue[head]
        head += 1
        g = group[f]
        rank[f] = count[g]
        count[g] += 1
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if not seen[h] and group[h] == g:
                seen[h] = True
                queue[tail] = h
                tail += 1
    rest = np.empty(n, dtype=np.int64)
    n_rest = 0
    for f in range(n):
        if todo[group[f]] and not seen[f]:
            rest[n_rest] = f
            n_rest += 1
    if n_rest:
        rest = rest[:n_rest]
        key = np.empty(n_rest, dtype=np.float64)
        for i in range(n_rest):
            key[i] = sign * vals[rest[i]]
        for f in rest[np.argsort(key, kind="mergesort")]:
            rank[f] = count[group[f]]
            count[group[f]] += 1
    return rank


@_jit
def cut_groups(indptr, indices, group, todo, active, right, similar):
    """Smooth and score the cut ``right`` (F,) bool of every group in ``todo`` (G,) bool, in place.

    Smoothing (groups ``active`` (G,) only, up to 3 rounds): isolated right faces ("teeth") swap
    sides with left faces sticking out into the right part (one neighbour left, two or more right),
    pairwise and in face order within a group, so both sides keep their sizes. Returns the pieces of
    both sides (G,) and the cut cost (G,): ``similar`` (nnz,) summed over the cut edges, in CSR order.
    """
    n, n_g = len(group), len(todo)
    deg = np.zeros(n, dtype=np.int64)
    n_right = np.zeros(n, dtype=np.int64)
    for f in range(n):
        if todo[group[f]]:
            for e in range(indptr[f], indptr[f + 1]):
                h = indices[e]
                if group[h] == group[f]:
                    deg[f] += 1
                    n_right[f] += right[h]
    n_tooth = np.zeros(n_g, dtype=np.int64)
    n_bump = np.zeros(n_g, dtype=np.int64)
    kind = np.zeros(n, dtype=np.int8)  # 1: tooth, 2: bump (from this round's counts)
    flipped = np.empty(n, dtype=np.int64)
    for _ in range(3):
        n_tooth[:] = 0
        n_bump[:] = 0
        for f in range(n):
            kind[f] = 0
            g = group[f]
            if not (todo[g] and active[g]):
                continue
            if right[f] and n_right[f] == 0 and deg[f] > 0:
                kind[f] = 1
                n_tooth[g] += 1
            elif not right[f] and deg[f] - n_right[f] <= 1 and n_right[f] >= 2:
                kind[f] = 2
                n_bump[g] += 1
        swaps = np.minimum(n_tooth, n_bump)
        if not swaps.any():
            break
        n_flip = 0
        # the first swaps[g] teeth and bumps of each group, in face order
        done_t = np.zeros(n_g, dtype=np.int64)
        done_b = np.zeros(n_g, dtype=np.int64)
        for f in range(n):
            g = group[f]
            if kind[f] == 1 and done_t[g] < swaps[g]:
                done_t[g] += 1
                right[f] = False
                flipped[n_flip] = f
                n_flip += 1
            elif kind[f] == 2 and done_b[g] < swaps[g]:
                done_b[g] += 1
                right[f] = True
                flipped[n_flip] = f
                n_flip += 1
        for i in range(n_flip):  # a flipped face changes its neighbours' right counts by one
            f = flipped[i]
            d = 1 if right[f] else -1
            for e in range(indptr[f], indptr[f + 1]):
                if group[indices[e]] == group[f]:
                    n_right[indices[e]] += d
    cost = np.zeros(n_g, dtype=np.float64)
    for f in range(n):
        g = group[f]
        if todo[g]:
            for e in range(indptr[f], indptr[f + 1]):
                h = indices[e]
                if group[h] == g and right[h] != right[f]:
                    cost[g] += similar[e]
    pieces = np.zeros(n_g, dtype=np.int64)
    side = np.empty(n, dtype=np.int64)
    for f in range(n):
        side[f] = 2 * group[f] + right[f] if todo[group[f]] else -1
    n_c, comp = components(indptr, indices, side)
    counted = np.zeros(n_c, dtype=np.bool_)
    for f in range(n):
        if side[f] >= 0 and not counted[comp[f]]:
            counted[comp[f]] = True
            pieces[group[f]] += 1
    return pieces, cost


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
