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
def _grow_group(indptr, indices, group, faces, vals, sign, stop, seen, queue):
    """The first ``stop`` faces of one group's growth, in order, into ``queue[:stop]``.

    ``faces``: the group's, ascending. Breadth-first from the extreme face by ``vals`` (F,) (the
    smallest value, lowest index, for sign > 0; the largest, highest index, otherwise); faces the
    growth cannot reach (other mesh components) follow by ``sign * vals``, ties by index. ``seen``
    (F,) bool scratch, False on the group's faces. Stops as soon as ``stop`` faces are placed.
    """
    seed = faces[0]
    for f in faces[1:]:
        if (vals[f] < vals[seed]) if sign > 0 else (vals[f] >= vals[seed]):
            seed = f
    g = group[seed]
    seen[seed] = True
    queue[0] = seed
    head, tail = 0, 1
    while head < tail and head < stop:
        f = queue[head]
        head += 1
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if not seen[h] and group[h] == g:
                seen[h] = True
                queue[tail] = h
                tail += 1
    if head < stop and tail < len(faces):  # the growth ran out: the unreachable rest, by value
        rest = np.empty(len(faces) - tail, dtype=np.int64)
        i = 0
        for f in faces:
            if not seen[f]:
                rest[i] = f
                i += 1
        key = np.empty(len(rest), dtype=np.float64)
        for i in range(len(rest)):
            key[i] = sign * vals[rest[i]]
        queue[tail : tail + len(rest)] = rest[np.argsort(key, kind="mergesort")]


@_jit
def grow_ranks(indptr, indices, group, order, start, vals):
    """Rank (F,) of each face inside its group (``group_faces``'s order, start), grown from the face
    with the smallest ``vals`` (F,) (``_grow_group``); every prefix of one group's ranks is
    edge-connected as far as the group's faces are."""
    n = len(group)
    rank = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    for g in range(len(start) - 1):
        size = start[g + 1] - start[g]
        if size:
            _grow_group(indptr, indices, group, order[start[g] : start[g + 1]], vals, 1.0, size, seen, queue)
            for i in range(size):
                rank[queue[i]] = i
    return rank


@_jit
def _smooth(indptr, indices, group, faces, right, deg, n_right, flipped):
    """Up to 3 rounds: isolated right faces ("teeth") swap sides with left faces sticking out into
    the right part (one neighbour left, two or more right), pairwise and in face order, so both
    sides keep their sizes. ``faces``: one group's, ascending; deg, n_right: scratch (F,)."""
    g = group[faces[0]]
    for f in faces:
        deg[f] = 0
        n_right[f] = 0
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if group[h] == g:
                deg[f] += 1
                n_right[f] += right[h]
    for _ in range(3):
        n_tooth, n_bump = 0, 0
        for f in faces:  # from this round's counts
            if right[f] and n_right[f] == 0 and deg[f] > 0:
                n_tooth += 1
            elif not right[f] and deg[f] - n_right[f] <= 1 and n_right[f] >= 2:
                n_bump += 1
        swaps = min(n_tooth, n_bump)
        if swaps == 0:
            break
        n_flip, done_t, done_b = 0, 0, 0
        for f in faces:  # the first ``swaps`` teeth and bumps, decided on the counts before any flip
            if done_t < swaps and right[f] and n_right[f] == 0 and deg[f] > 0:
                flipped[n_flip] = f
                n_flip += 1
                done_t += 1
            elif done_b < swaps and not right[f] and deg[f] - n_right[f] <= 1 and n_right[f] >= 2:
                flipped[n_flip] = f
                n_flip += 1
                done_b += 1
        for i in range(n_flip):
            right[flipped[i]] = not right[flipped[i]]
        for i in range(n_flip):  # a flipped face changes its neighbours' right counts by one
            f = flipped[i]
            d = 1 if right[f] else -1
            for e in range(indptr[f], indptr[f + 1]):
                if group[indices[e]] == g:
                    n_right[indices[e]] += d


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
    seen = np.zeros(n, dtype=np.bool_)
    side = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    deg = np.empty(n, dtype=np.int64)
    n_right = np.empty(n, dtype=np.int64)
    parent = np.empty(n, dtype=np.int64)
    right = np.zeros(n, dtype=np.bool_)
    n_cand = 2 * dims.shape[1]
    for g in range(n_g):
        faces = order[start[g] : start[g + 1]]
        if len(faces) == 0:
            continue
        stop = min(cut_at[g], len(faces))
        best_score, best_pieces, c = np.inf, 0, 0
        for size in stages:
            for _ in range(min(size, n_cand - c)):
                vals = feat[:, dims[g, c // 2]]
                sign = 1.0 if c % 2 == 0 else -1.0
                c += 1
                for f in faces:
                    seen[f] = False
                _grow_group(indptr, indices, group, faces, vals, sign, stop, seen, queue)
                for f in faces:
                    side[f] = True
                for i in range(stop):
                    side[queue[i]] = False
                if active[g]:
                    _smooth(indptr, indices, group, faces, side, deg, n_right, queue)
                pieces, cost = _score(indptr, indices, group, faces, side, similar, parent)
                score = pieces * 1e7 + cut_weight * cost
                if score < best_score:
                    best_score, best_pieces = score, pieces
                    for f in faces:
                        right[f] = side[f]
            if not (active[g] and best_pieces > 2):
                break
    return right


@_jit
def _score(indptr, indices, group, faces, right, similar, parent):
    """(pieces of both sides, cut cost) of one group's cut: ``similar`` (nnz,) summed over the cut
    edges in CSR order (the reference's order, so the same float), pieces by union-find."""
    g = group[faces[0]]
    cost = 0.0
    for f in faces:
        parent[f] = f
    for f in faces:
        for e in range(indptr[f], indptr[f + 1]):
            h = indices[e]
            if group[h] != g:
                continue
            if right[h] != right[f]:
                cost += similar[e]
            elif h < f:
                a, b = _root(parent, f), _root(parent, h)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    pieces = 0
    for f in faces:
        pieces += parent[f] == f
    return pieces, cost


@_jit
def _root(parent, f):
    while parent[f] != f:  # path halving
        parent[f] = parent[parent[f]]
        f = parent[f]
    return f


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
