"""Per-face channels that the reward reads beside MeshMAE's ten (``dreamcs.mesh.features``): what the
surface's topology and layout say, with no gradient (constants for the vertices' autograd).

In the order a model reads them (a model with E extra channels reads the first E):

0. open share: the share of each face's edges on an open boundary (``patch_boundary``);
1. ragged turn: how far that boundary turns at the face (``patch_boundary(ragged=True)``);
2. isolation: whether the face's part floats free of the rest (``patch_isolation``).

``patch_extra_channels(vertices, faces, n)`` gives the first n.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: channels ``patch_extra_channels`` can give, in order
N_EXTRA = 3


@torch.no_grad()
def patch_boundary(vertices: Tensor, faces: Tensor, weld: float = 2e-6, ragged: bool = False) -> Tensor:
    """The share of each face's edges that lie on an open boundary (0, 1/3, 2/3 or 1)[, and how
    ragged that boundary is].

    MeshMAE's ten channels assume closed, remeshed surfaces: a hole, a crack or a cut leaves them
    all but unchanged, while the fused layout of such a mesh has 20-70x more boundary edges than a
    clean one. An edge is on a boundary when exactly one face uses it, after welding vertices that
    coincide (within ``weld``; fusion may duplicate them); degenerate edges never are. Topology has
    no gradient: the channel is a constant for ``vertices``' autograd.

    ``ragged`` adds a second channel: for each face, the largest turn of the boundary at the ends of
    its open edges (mean of the two ends, in units of pi: 0 straight, 1 folded back). Real meshes are
    open too (scan bases, unwelded CAD parts), along straight cuts and creases; faces torn out leave
    loops that zig-zag along triangle edges. A boundary vertex that is not on exactly two open edges
    counts as 1. It is read from the positions but carries no gradient either.

    Args:
        vertices: (V, 3) float, in [-2, 2]^3 (the quantised weld keys hold 21 bits per axis).
        faces: (P, K, 3) long.

    Returns:
        (P, K, 1), or (P, K, 2) with ``ragged``: float32 on ``vertices``' device.
    """
    if vertices.dim() != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 3 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (P, K, 3), got {tuple(faces.shape)}")
    v, ids, f = _weld(vertices, faces, weld)
    a, b = f, np.roll(f, -1, axis=1)  # edge k of a face runs from corner k to corner k + 1
    e = np.stack([np.minimum(a, b), np.maximum(a, b)], -1)  # (F, 3, 2), each edge low id first
    ekey = (e[..., 0] * (int(ids.max()) + 1) + e[..., 1]).reshape(-1)
    order = np.argsort(ekey)  # only the counts per key are read: any order of equal keys will do
    sorted_keys = ekey[order]
    run = np.cumsum(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) - 1
    counts = np.empty_like(ekey)
    counts[order] = np.bincount(run)[run]
    open_edge = (counts.reshape(-1, 3) == 1) & (e[..., 0] != e[..., 1])
    out = open_edge.mean(-1, dtype=np.float32)[:, None]
    if ragged:
        first = np.zeros(int(ids.max()) + 1, dtype=np.int64)
        first[ids[::-1]] = np.arange(len(ids))[::-1]  # a position for every welded id
        out = np.concatenate([out, _boundary_turn(v[first], e, open_edge)[:, None]], 1)
    return torch.from_numpy(out).reshape(faces.shape[0], faces.shape[1], -1).to(vertices.device)


def _boundary_turn(pos: np.ndarray, edges: np.ndarray, open_edge: np.ndarray) -> np.ndarray:
    """pos (W, 3), edges (F, 3, 2) welded ids, open_edge (F, 3) bool -> (F,) float32: per face, the
    largest over its open edges of the mean turn (/pi) of the boundary at the edge's two ends."""
    if not open_edge.any():  # a closed surface (every marching-tets surface off the grid's walls)
        return np.zeros(len(edges), dtype=np.float32)
    ends = edges[open_edge]  # (B, 2): each open edge once (an open edge has one face)
    turn = np.ones(len(pos), dtype=np.float64)
    a = np.r_[ends[:, 0], ends[:, 1]]
    b = np.r_[ends[:, 1], ends[:, 0]]
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    deg = np.bincount(a, minlength=len(pos))
    start = np.r_[0, np.cumsum(deg)[:-1]]
    two = np.flatnonzero(deg == 2)
    p, q = b[start[two]], b[start[two] + 1]  # the two boundary neighbours of a regular boundary vertex
    d1, d2 = pos[two] - pos[p], pos[q] - pos[two]
    cos = (d1 * d2).sum(1) / np.maximum(np.linalg.norm(d1, axis=1) * np.linalg.norm(d2, axis=1), 1e-20)
    turn[two] = np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi
    edge_turn = np.where(open_edge, 0.5 * (turn[edges[..., 0]] + turn[edges[..., 1]]), 0.0)
    return edge_turn.max(-1).astype(np.float32)


def _weld(vertices: Tensor, faces: Tensor, weld: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> positions (V, 3) float64, welded id per vertex (V,), faces as welded ids (F, 3)."""
    # numpy on the CPU: its sort-based unique is ~20x faster here than torch.unique on the same keys
    lim = (1 << 20) - 1
    v = vertices.detach().cpu().double().numpy()
    q = np.clip(np.round(v / weld), -lim, lim).astype(np.int64) + (1 << 20)
    _, ids = np.unique((q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2], return_inverse=True)
    ids = ids.reshape(-1)
    return v, ids, ids[faces.reshape(-1, 3).cpu().numpy().astype(np.int64)]


#: a part with less than this share of the area may float; larger ones are the object
SMALL_PART = 0.05
#: gap (in the [-1, 1] frame, beyond twice the median edge) at which a small part reads fully isolated
FLOAT_GAP = 0.1


@torch.no_grad()
def patch_isolation(vertices: Tensor, faces: Tensor, weld: float = 2e-6) -> Tensor:
    """Per face, how far its part floats free of the object: 0 for faces of large parts and of small
    parts that touch (or nearly touch) a large one, up to 1 for a small part FLOAT_GAP away.

    Real meshes are often many parts (unwelded CAD pieces, leaves, wheels) that touch the body;
    density-field floaters hover apart from it. A part is a connected set of faces after welding;
    small: under ``SMALL_PART`` of the area; its gap: the least distance from its vertices to a
    vertex of a large part (the largest part is large in any case), less twice the median edge.

    Args:
        vertices: (V, 3) float, normalised into about [-1, 1]^3. faces: (P, K, 3) long.

    Returns:
        (P, K, 1) float32 on ``vertices``' device.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if faces.ndim != 3 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (P, K, 3), got {tuple(faces.shape)}")
    v, ids, f = _weld(vertices, faces, weld)
    n = int(ids.max()) + 1
    pos = np.zeros((n, 3))
    pos[ids] = v
    a, b = np.r_[f[:, 0], f[:, 1]], np.r_[f[:, 1], f[:, 2]]
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    area = 0.5 * np.linalg.norm(np.cross(pos[f[:, 1]] - pos[f[:, 0]], pos[f[:, 2]] - pos[f[:, 0]]), axis=1)
    face_comp = comp[f[:, 0]]
    share = np.bincount(face_comp, weights=area, minlength=comp.max() + 1) / max(area.sum(), 1e-20)
    large = share >= SMALL_PART
    large[np.argmax(share)] = True
    out = np.zeros(len(f), dtype=np.float32)
    small_v = np.flatnonzero(~large[comp])
    if len(small_v):
        edges = np.linalg.norm(pos[f] - pos[np.roll(f, 1, axis=1)], axis=-1)
        slack = 2.0 * float(np.median(edges))
        d = cKDTree(pos[large[comp]]).query(pos[small_v])[0]
        gap = np.full(len(share), np.inf)
        np.minimum.at(gap, comp[small_v], d)
        iso = np.clip((gap - slack) / FLOAT_GAP, 0.0, 1.0)
        iso[large] = 0.0
        out = iso[face_comp].astype(np.float32)
    return torch.from_numpy(out).reshape(faces.shape[0], faces.shape[1], 1).to(vertices.device)


def patch_extra_channels(vertices: Tensor, faces: Tensor, n: int = N_EXTRA) -> Tensor:
    """The first ``n`` extra channels (see the module docstring) of a fused layout: faces (P, K, 3)
    -> (P, K, n) float32 on ``vertices``' device; n = 0 gives (P, K, 0)."""
    if not 0 <= n <= N_EXTRA:
        raise ValueError(f"there are {N_EXTRA} extra channels, asked for {n}")
    parts = []
    if n >= 1:
        parts.append(patch_boundary(vertices, faces, ragged=n >= 2))
    if n >= 3:
        parts.append(patch_isolation(vertices, faces))
    if not parts:
        return torch.zeros((*faces.shape[:2], 0), device=vertices.device)
    return torch.cat(parts, -1)
