"""The numpy / scipy versions of face grouping's hot loops that ``_kernels`` compiles with numba:
the dual graph (``dual_graph``), one bisection level (``split_level``) and the patch repair
(``repair``). They give the same labels;
they stay as the reference the benchmark's speed-up and ``tests/mesh/test_fusion_kernels.py`` compare with.

Every bisection step is a whole-array numpy / scipy.sparse.csgraph call over all groups at once,
and the candidates of one level share one block-diagonal graph (one BFS, one components call).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order, connected_components

from dreamcs.mesh.fusion.bisection import CANDIDATE_STAGES, CUT_WEIGHT


def subgraph(
    indptr: NDArray, indices: NDArray, rows: NDArray, keep: NDArray
) -> tuple[NDArray, NDArray, NDArray]:
    """The CSR arrays (indptr, indices) and entry rows of a graph keeping only entries ``keep``.

    Built straight from sorted CSR arrays (no re-sorting): neighbours stay in index order.
    """
    n = len(indptr) - 1
    sub_ptr = np.zeros(n + 1, dtype=np.int32)  # int32 throughout: scipy then skips its index scans
    sub_rows = rows[keep]
    np.cumsum(np.bincount(sub_rows, minlength=n), out=sub_ptr[1:])
    return sub_ptr, indices[keep], sub_rows


def neighbours(indptr: NDArray, indices: NDArray, faces: NDArray) -> tuple[NDArray, NDArray]:
    """All (face, neighbour) pairs of the given faces, vectorised over the CSR arrays."""
    start, cnt = indptr[faces], indptr[faces + 1] - indptr[faces]
    offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return np.repeat(faces, cnt), indices[np.repeat(start, cnt) + offs]


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


def _stack(inner: tuple[NDArray, NDArray, NDArray], n: int, c: int) -> tuple[NDArray, NDArray, NDArray]:
    """``inner`` (``subgraph`` arrays over n faces) repeated c times block-diagonally: candidate j's
    face f is node j * n + f, so one scipy call serves all candidate cuts at once."""
    indptr, indices, rows = inner
    nnz = len(indices)
    dt = np.int32 if c * max(nnz, n + 1) < 2**31 else np.int64
    if c == 1 and indptr.dtype == indices.dtype == rows.dtype == dt:
        return inner  # nothing to repeat: no copies
    off = (np.arange(c, dtype=dt) * n)[:, None]
    ptr = np.empty(c * n + 1, dtype=dt)
    ptr[:-1] = (indptr[:-1].astype(dt)[None, :] + (np.arange(c, dtype=dt) * nnz)[:, None]).reshape(-1)
    ptr[-1] = c * nnz
    return ptr, (indices.astype(dt)[None, :] + off).reshape(-1), (rows.astype(dt)[None, :] + off).reshape(-1)


def _grow_ranks(
    stacked: tuple[NDArray, NDArray, NDArray],
    group: NDArray,
    n_g: int,
    feat: NDArray,
    cands: list[tuple[NDArray, float]],
) -> NDArray:
    """Rank (C, F) of every face inside its group for each candidate growth (col_of_group (G,), sign):
    breadth-first from the group's extreme face along its column ``col_of_group`` (the smallest
    value for sign +1, the largest for -1; ties: the lowest / highest face index);
    faces the growth cannot reach (other components) follow, by value.

    ``stacked`` is the intra-group face graph repeated once per candidate (``_stack``). Any rank
    prefix of one group is edge-connected (up to the unreachable tail).
    """
    n, c = len(group), len(cands)
    cg = np.stack([col for col, _ in cands])  # (C, G)
    sign = np.array([s for _, s in cands])
    seeds = np.empty((c, n_g), dtype=np.int64)
    og = np.argsort(group.astype(np.int16 if n_g < 32768 else np.int64), kind="stable")
    starts = np.flatnonzero(np.r_[True, group[og][1:] != group[og][:-1]])
    for j, (col, s) in enumerate(cands):
        v = feat[np.arange(n), col[group]]
        ext = (np.minimum if s > 0 else np.maximum).reduceat(v[og], starts)
        hit = np.flatnonzero(v == ext[group])
        if s > 0:  # the last write wins: the lowest index for the minimum, the highest for the maximum
            hit = hit[::-1]
        seeds[j, group[hit]] = hit
    seeds = np.sort(seeds + np.arange(c)[:, None] * n, axis=None)
    ptr, idx, _ = stacked
    N = c * n  # a virtual root (node N) linked to every seed
    G = sp.csr_matrix(
        (
            np.ones(len(idx) + len(seeds)),
            np.concatenate([idx, seeds.astype(idx.dtype)]),
            np.concatenate([ptr, np.array([ptr[-1] + len(seeds)], dtype=ptr.dtype)]),
        ),
        shape=(N + 1, N + 1),
    )
    bfs = breadth_first_order(G, N, directed=True, return_predecessors=False)[1:]
    rest = np.ones(N, dtype=bool)
    rest[bfs] = False
    rest = np.flatnonzero(rest)
    if len(rest):
        j, f = np.divmod(rest, n)
        rest = rest[np.argsort(sign[j] * feat[f, cg[j, group[f]]], kind="stable")]
    seq = np.concatenate([bfs, rest])
    gb = (np.arange(c)[:, None] * n_g + group[None, :]).reshape(-1)[seq]
    o = np.argsort(gb.astype(np.int16 if c * n_g < 32768 else np.int64), kind="stable")
    sizes = np.bincount(gb, minlength=c * n_g)
    starts = np.cumsum(sizes) - sizes
    rank = np.empty(N, dtype=np.int64)
    rank[seq[o]] = np.arange(N) - starts[gb[o]]
    return rank.reshape(c, n)


def _smooth_cut(
    inner: tuple[NDArray, NDArray, NDArray], group: NDArray, right: NDArray, active: NDArray
) -> NDArray:
    """Swap isolated right faces ("teeth" a breadth-first cut leaves) with left faces that stick out
    into the right part, pairwise within a group, so both sides keep their sizes."""
    ptr, cols, rows = inner
    n = len(group)
    n_g = int(group.max()) + 1
    deg = np.diff(ptr)
    act = active[group]
    n_right = np.bincount(rows[right[cols]], minlength=n)  # kept up to date as faces flip
    for _ in range(3):
        n_left = deg - n_right
        tooth = right & (n_right == 0) & (deg > 0) & act
        bump = ~right & (n_left <= 1) & (n_right >= 2) & act
        swaps = np.minimum(np.bincount(group[tooth], minlength=n_g), np.bincount(group[bump], minlength=n_g))
        if not swaps.any():
            break
        flipped = []
        for mask, to_right in ((tooth, False), (bump, True)):
            idx = np.flatnonzero(mask)
            g = group[idx]
            o = np.argsort(g, kind="stable")
            idx, g = idx[o], g[o]
            start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
            run_start = np.repeat(start, np.diff(np.r_[start, len(g)]))
            chosen = idx[(np.arange(len(g)) - run_start) < swaps[g]]
            right[chosen] = to_right
            flipped.append(chosen)
        # each flipped face changes its neighbours' right counts by one
        owner, nb = neighbours(ptr, cols, np.concatenate(flipped))
        np.add.at(n_right, nb, np.where(right[owner], 1, -1))
    return right


def _side_pieces(inner: tuple[NDArray, NDArray, NDArray], group: NDArray, same: NDArray) -> NDArray:
    """Pieces of the two sides of every group's cut, summed per group (G,); ``same`` marks the
    edges of ``inner`` whose ends lie on the same side."""
    indptr, indices, rows = inner
    sub_ptr, sub_idx, _ = subgraph(indptr, indices, rows, same)
    n = len(group)
    n_c, comp = connected_components(
        sp.csr_matrix((np.ones(len(sub_idx)), sub_idx, sub_ptr), shape=(n, n)), directed=False
    )
    group_of_comp = np.zeros(n_c, dtype=np.int64)
    group_of_comp[comp] = group
    return np.bincount(group_of_comp, minlength=int(group.max()) + 1)


def _group_var(cols: list[NDArray], group: NDArray, n_g: int) -> NDArray:
    """Per-group variances (G, D) of the contiguous (F,) columns ``cols``, with bincount (much
    faster than ufunc.at)."""
    sizes = np.bincount(group, minlength=n_g)
    out = []
    for c in cols:
        mean = np.bincount(group, weights=c, minlength=n_g) / sizes
        out.append(np.bincount(group, weights=(c - mean[group]) ** 2, minlength=n_g))
    return np.stack(out, 1)


def _try_cuts(
    inner: tuple[NDArray, NDArray, NDArray],
    group: NDArray,
    feat: NDArray,
    cut_at: NDArray,
    active: NDArray,
    cands: list[tuple[NDArray, float]],
    similar: NDArray,
) -> tuple[NDArray, NDArray, NDArray]:
    """Cut every group at rank ``cut_at`` (G,) for each candidate growth, all candidates in one go.

    Returns right (C, F) bool, the pieces of both sides (C, G) and the score (C, G): pieces first,
    then the similar-normal edges cut (so cuts prefer creases and patches stay near-planar).
    """
    n, n_g, c = len(group), len(cut_at), len(cands)
    stacked = _stack(inner, n, c)
    _, cols, erows = stacked
    group_b = (np.arange(c)[:, None] * n_g + group[None, :]).reshape(-1)
    rank = _grow_ranks(stacked, group, n_g, feat, cands)
    right = _smooth_cut(stacked, group_b, (rank >= cut_at[group]).reshape(-1), np.tile(active, c))
    same = right[erows] == right[cols]
    cut = ~same
    similar = np.tile(similar, c) if c > 1 else similar
    cut_cost = np.bincount(group_b[erows[cut]], weights=similar[cut], minlength=c * n_g).reshape(c, n_g)
    pieces = _side_pieces(stacked, group_b, same).reshape(c, n_g)
    return right.reshape(c, n), pieces, pieces * 1e7 + CUT_WEIGHT * cut_cost


def _induced(inner: tuple[NDArray, NDArray, NDArray], keep: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """The graph ``inner`` restricted to the faces ``keep`` (a union of whole groups), renumbered in
    order: neighbour and tie orders are unchanged, so growth is too."""
    indptr, indices, rows = inner
    new_id = np.cumsum(keep, dtype=np.int64) - 1
    e = keep[rows]
    sub_rows = new_id[rows[e]].astype(indices.dtype)
    m = int(new_id[-1]) + 1
    ptr = np.zeros(m + 1, dtype=indptr.dtype)
    np.cumsum(np.bincount(sub_rows, minlength=m), out=ptr[1:])
    return ptr, new_id[indices[e]].astype(indices.dtype), sub_rows


def _split_level(
    inner: tuple[NDArray, NDArray, NDArray],
    group: NDArray,
    feat: NDArray,
    dims: NDArray,
    cut_at: NDArray,
    active: NDArray,
    similar: NDArray,
) -> NDArray:
    """right (F,) bool: each group's chosen cut.

    The candidates (the widest direction from its low end, then its high end, then the next widest
    from either end) are tried in stages of ``CANDIDATE_STAGES``; a stage only visits the groups
    whose best cut so far leaves more than two pieces, and more than the group has components (no
    cut can do better). The cut with the fewest pieces wins, then the lowest cut cost, then the first.
    """
    every = [(dims[:, d], s) for d in range(dims.shape[1]) for s in (1.0, -1.0)]
    n, n_g = len(group), len(cut_at)
    right = np.zeros(n, dtype=bool)
    best_score, best_pieces = np.full(n_g, np.inf), np.zeros(n_g, dtype=np.int64)
    faces, gsel, sub_feat = np.arange(n), np.arange(n_g), feat  # the groups still to try, renumbered
    start, n_comp = 0, None
    for size in CANDIDATE_STAGES:
        cands = [(col[gsel], s) for col, s in every[start : start + size]]
        start += size
        if not cands:
            break
        rights, pieces, score = _try_cuts(inner, group, sub_feat, cut_at[gsel], active[gsel], cands, similar)
        b = np.argmin(score, axis=0)  # ties: the first candidate
        sc, pc = score[b, np.arange(len(gsel))], pieces[b, np.arange(len(gsel))]
        better = sc < best_score[gsel]
        upd = better[group]
        right[faces[upd]] = rights[b[group], np.arange(len(faces))][upd]
        best_score[gsel[better]], best_pieces[gsel[better]] = sc[better], pc[better]
        if n_comp is None:  # no cut leaves fewer pieces than its group has components
            n_comp = _side_pieces(inner, group, np.ones(len(inner[1]), dtype=bool))
        still = active[gsel] & (best_pieces[gsel] > np.maximum(n_comp[gsel], 2))
        if not still.any():
            break
        if not still.all():
            keep = still[group]
            similar = similar[keep[inner[2]]]
            inner = _induced(inner, keep)
            group = (np.cumsum(still) - 1)[group[keep]]
            faces, gsel, sub_feat = faces[keep], gsel[still], sub_feat[keep]
    return right


def similar_normals(A: sp.csr_matrix, feat: NDArray) -> NDArray:
    """(nnz,) 0.5 * (1 + n_f . n_h) per entry of A; feat (F, 6) centroids and unit normals."""
    rows = np.repeat(np.arange(A.shape[0], dtype=A.indices.dtype), np.diff(A.indptr))
    return 0.5 * (1.0 + (feat[rows, 3:] * feat[A.indices, 3:]).sum(1))


def grow_ranks(A: sp.csr_matrix, comp: NDArray, feat: NDArray) -> NDArray:
    """Rank (F,) of each face in its component, grown from its smallest ``feat[:, 0]``."""
    rows = np.repeat(np.arange(A.shape[0], dtype=A.indices.dtype), np.diff(A.indptr))
    inner = subgraph(A.indptr, A.indices, rows, comp[rows] == comp[A.indices])
    zeros = np.zeros(int(comp.max()) + 1, dtype=np.int64)
    return _grow_ranks(_stack(inner, len(comp), 1), comp, len(zeros), feat, [(zeros, 1.0)])[0]


def split_level(
    A: sp.csr_matrix,
    group: NDArray,
    feat: NDArray,
    dims: NDArray,
    cut_at: NDArray,
    active: NDArray,
    similar: NDArray,
) -> NDArray:
    """``bisection._split_level`` over the intra-group graph of A; similar: (nnz,) per entry of A."""
    rows = np.repeat(np.arange(A.shape[0], dtype=A.indices.dtype), np.diff(A.indptr))
    intra = group[rows] == group[A.indices]
    inner = subgraph(A.indptr, A.indices, rows, intra)
    return _split_level(inner, group, feat, dims, cut_at, active, similar[intra])


def _components(A: sp.csr_matrix, rows: NDArray, labels: NDArray) -> tuple[int, NDArray]:
    """Connected components of A restricted to edges whose ends share a label."""
    keep = labels[rows] == labels[A.indices]
    indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=A.shape[0]))]
    intra = sp.csr_matrix((np.ones(int(keep.sum())), A.indices[keep], indptr), shape=A.shape)
    return connected_components(intra, directed=False)


def _patch_mask(labels: NDArray, A: sp.csr_matrix) -> tuple[NDArray, NDArray]:
    """Intra-patch components. Returns (component id per face, bool per patch: one component)."""
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    n_c, comp = _components(A, rows, labels)
    label_of_comp = np.zeros(n_c, dtype=np.int64)
    label_of_comp[comp] = labels
    return comp, np.bincount(label_of_comp, minlength=int(labels.max()) + 1) == 1


def repair(labels: NDArray, A: sp.csr_matrix, passes: int = 3) -> NDArray:
    """Make patches edge-connected where possible, keeping every patch size unchanged.

    A stray fragment of patch p moves to the neighbouring patch q it shares most edges with, and q
    gives back as many faces, breadth-first from its border with p's main piece.
    """
    indptr, indices = A.indptr, A.indices
    labels = labels.copy()
    for _ in range(passes):
        comp, ok = _patch_mask(labels, A)
        if ok.all():
            break
        changed = False
        comp_size, by_comp, main_of, stray = stray_fragments(labels, comp, ok)
        c_start = np.cumsum(comp_size) - comp_size  # the faces of piece c: by_comp[c_start[c]:][:size]
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
            give = _border_faces(
                labels, indptr, indices, q, p, by_comp[c_start[m] :][: comp_size[m]], len(frag)
            )
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
