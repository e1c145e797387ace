"""Compiled (numba) evaluation of one candidate cut of one group: sides, smoothing, cost, pieces.

``_kernels.split_level`` calls these for every candidate growth of every group. They work on the
group's local graph (``ptr``, ``idx``: local faces lo..hi-1, ``_kernels._local_graph``) and mark
state with *stamps* instead of bool arrays, so nothing is reset per candidate: ``left[f] == cid``
puts face f on the left of candidate ``cid`` (every other face is right), ``mark[f] == cid`` lists
it in ``touched``, and ``seen[f] == gen`` marks a face a search has visited. Only the faces on the
cut (and the searches) are visited, not the whole group: the results equal a scan of every face,
which the numpy reference (``_reference``) does.
"""

from __future__ import annotations

from dreamcs.mesh._numba import jit
from dreamcs.mesh.fusion._sort_kernels import sort_prefix


@jit
def cut_from_prefix(ptr, idx, lo, hi, queue, stop, tail, grown, left, cid, n_right, mark, touched):
    """Left = ``queue[:stop]``, right = the rest of the group; returns how many faces are on the cut.

    Sets ``left[f] = cid`` for the left faces, and for every face on the cut (a neighbour on the
    other side) lists it once in ``touched`` (``mark[f] = cid``) with ``n_right[f]``, its right
    neighbours (``n_right`` is only valid for marked faces; an unmarked face has none on the other
    side). When the growth placed all ``stop`` faces (``grown``), the right faces on the cut are
    exactly ``queue[stop:tail]`` (discovered by the search but not taken), so only they and their
    neighbours are visited; otherwise every left face is.
    """
    for i in range(stop):
        left[queue[i]] = cid
    n_t = 0
    if grown:
        for i in range(stop, tail):
            h = queue[i]
            mark[h] = cid
            touched[n_t] = h
            n_t += 1
            n_left = 0
            for e in range(ptr[h], ptr[h + 1]):
                f = idx[e]
                if left[f] == cid:
                    n_left += 1
                    if mark[f] != cid:
                        mark[f] = cid
                        n_right[f] = 0
                        touched[n_t] = f
                        n_t += 1
                    n_right[f] += 1
            n_right[h] = ptr[h + 1] - ptr[h] - n_left
        return n_t
    for i in range(stop):
        f = queue[i]
        for e in range(ptr[f], ptr[f + 1]):
            h = idx[e]
            if left[h] != cid:
                if mark[f] != cid:
                    mark[f] = cid
                    n_right[f] = 0
                    touched[n_t] = f
                    n_t += 1
                if mark[h] != cid:
                    mark[h] = cid
                    n_right[h] = ptr[h + 1] - ptr[h]
                    touched[n_t] = h
                    n_t += 1
                n_right[f] += 1
                n_right[h] -= 1
    return n_t


@jit
def smooth(ptr, idx, left, cid, n_right, mark, touched, n_t, flipped, n_left):
    """Up to 3 rounds: isolated right faces ("teeth") swap sides with left faces sticking out into
    the right part (one neighbour left, two or more right), pairwise and in face order, so both
    sides keep their sizes. Teeth and bumps lie on the cut, so only ``touched[:n_t]`` is scanned;
    the neighbours of flipped faces join it, so it stays a superset of the cut. ``flipped``:
    scratch; ``n_left``: the left side's size.

    Returns (faces flipped, the new n_t, whether a connected left side provably stays connected).
    A round removes bumps, which have at most one left neighbour, so no path between the other
    left faces runs through one; a tooth it adds had only left neighbours, so it stays attached
    unless every one of them was a bump of the same round (checked).
    """
    total = 0
    stays = True
    for _ in range(3):
        sort_prefix(touched, n_t)  # face order, as a scan of every face visits them
        n_tooth, n_bump = 0, 0
        for i in range(n_t):  # from this round's counts
            f = touched[i]
            deg = ptr[f + 1] - ptr[f]
            if left[f] != cid and n_right[f] == 0 and deg > 0:
                n_tooth += 1
            elif left[f] == cid and deg - n_right[f] <= 1 and n_right[f] >= 2:
                n_bump += 1
        swaps = min(n_tooth, n_bump)
        if swaps == 0:
            break
        n_flip, done_t, done_b = 0, 0, 0
        for i in range(n_t):  # the first ``swaps`` teeth and bumps, on the counts before any flip
            f = touched[i]
            deg = ptr[f + 1] - ptr[f]
            if done_t < swaps and left[f] != cid and n_right[f] == 0 and deg > 0:
                flipped[n_flip] = f
                n_flip += 1
                done_t += 1
            elif done_b < swaps and left[f] == cid and deg - n_right[f] <= 1 and n_right[f] >= 2:
                flipped[n_flip] = f
                n_flip += 1
                done_b += 1
        for i in range(n_flip):
            f = flipped[i]
            left[f] = -1 if left[f] == cid else cid
        stays = stays and n_left > swaps
        for i in range(n_flip):
            f = flipped[i]
            if left[f] == cid:  # a tooth: does a left face that stayed left hold it?
                held = False
                for e in range(ptr[f], ptr[f + 1]):
                    held = held or left[idx[e]] == cid
                stays = stays and held
        for i in range(n_flip):  # a flipped face changes its neighbours' right counts by one
            f = flipped[i]
            d = 1 if left[f] != cid else -1
            for e in range(ptr[f], ptr[f + 1]):
                h = idx[e]
                if mark[h] != cid:  # not on the cut before this round (and not flipped in it)
                    mark[h] = cid
                    n_right[h] = 0 if left[h] == cid else ptr[h + 1] - ptr[h]
                    touched[n_t] = h
                    n_t += 1
                n_right[h] += d
        total += n_flip
    return total, n_t, stays


@jit
def cut_cost(ptr, idx, left, cid, n_right, similar, touched, n_t):
    """``similar`` (per local edge) summed over the cut edges, faces in order and edges in CSR
    order (the reference's order, so the same float); visits ``touched[:n_t]`` (a superset of the
    cut's faces) only."""
    sort_prefix(touched, n_t)
    cost = 0.0
    for i in range(n_t):
        f = touched[i]
        is_left = left[f] == cid
        if (n_right[f] > 0) if is_left else (n_right[f] < ptr[f + 1] - ptr[f]):
            for e in range(ptr[f], ptr[f + 1]):
                if (left[idx[e]] == cid) != is_left:
                    cost += similar[e]
    return cost


@jit
def pieces(ptr, idx, lo, hi, left, cid, side, seen, gen, queue, limit):
    """Edge-connected pieces of one side of the cut (``side`` 1: the left one, 0: the right one, -1:
    the whole group), breadth-first. Stops counting past ``limit`` (the caller then only needs to
    know it is more)."""
    want_left, both = side == 1, side < 0
    count = 0
    for s in range(lo, hi):
        if seen[s] == gen or not (both or (left[s] == cid) == want_left):
            continue
        count += 1
        if count > limit:
            return count
        seen[s] = gen
        queue[0] = s
        head, tail = 0, 1
        while head < tail:
            f = queue[head]
            head += 1
            for e in range(ptr[f], ptr[f + 1]):
                h = idx[e]
                if seen[h] != gen and (both or (left[h] == cid) == want_left):
                    seen[h] = gen
                    queue[tail] = h
                    tail += 1
    return count
