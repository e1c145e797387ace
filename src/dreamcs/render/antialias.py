"""Analytic antialiasing of silhouette edges: coverage gradients for outline vertices.

In the spirit of nvdiffrast's ``antialias`` (Laine et al. 2020, "Modular Primitives for
High-Performance Differentiable Rendering"). A silhouette edge that crosses the segment between
two adjacent pixel centres, ``in`` (on the edge's covered side) and ``out``, at distance ``t`` in
[0, 1] from ``in``, blends the two pixels as if each were a box filter over its half of the
segment: ``out`` takes ``max(t - 0.5, 0)`` of ``in``'s colour and ``in`` takes ``max(0.5 - t, 0)`` of
``out``'s. The summed coverage then moves by exactly ``dt``, and ``t`` is a smooth function of the
edge's projected vertices, so gradients reach the outline. Mostly vertical edges are handled on
horizontal pixel pairs and mostly horizontal ones on vertical pairs, so a moving edge sweeps one
pixel pair per row (or column) and the gradient of the total coverage is its length times its
normal speed: exact in expectation over sub-pixel positions.

Unlike nvdiffrast, which tests only the edges of the triangle that covers the nearer pixel centre,
the crossing is searched among *all* silhouette edges (the edges whose two faces lie on the same
side of them in screen space, and open boundary edges), nearest first, so sliver triangles along
the outline (DMTet's) that cover no pixel centre still pass on their gradient.

:func:`find_crossings` (no gradients) picks, per view, the pixel pairs and their edges;
:func:`crossing_offsets` and :func:`blend_pairs` are the differentiable half.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# the z-buffer's packed (quantised depth, id) keys, reused to keep the nearest edge per pixel pair
from dreamcs.render.raster import _DEPTH_LEVELS, _ID_BITS, _ID_MASK, _NO_KEY, _cross2


@dataclass
class Crossings:
    """Silhouette edges crossing adjacent pixel pairs, for B views of H x W pixels.

    inner, outer: (P,) long flat pixel indices (b * H * W + row * W + column) of the pair's
        covered-side and uncovered-side pixel.
    edge: (P,) long, the crossing edge (index into the mesh's unique edges).
    vertical: (P,) bool, True for a pair of pixels one above the other.
    """

    inner: torch.Tensor
    outer: torch.Tensor
    edge: torch.Tensor
    vertical: torch.Tensor

    @staticmethod
    def empty(device: torch.device | str) -> Crossings:
        z = torch.zeros(0, dtype=torch.long, device=device)
        return Crossings(z, z.clone(), z.clone(), torch.zeros(0, dtype=torch.bool, device=device))


def silhouette_edges(
    screen: torch.Tensor, faces: torch.Tensor, edges: torch.Tensor, edge_faces: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which edges are silhouettes in each view, and on which side their surface lies.

    An edge is a silhouette when the opposite corners of its two faces project onto the same side
    of it (a fold: one face turned away), or when it bounds an open mesh. Needs no consistent
    winding, so flipped dataset faces still get outlines.

    Args:
        screen: (B, V, 2) pixel coordinates; faces (F, 3); edges (E, 2); edge_faces (E, 2) (-1 for
            no second face).
    Returns:
        mask (B, E) bool, and side (B, E) float: +1 when the surface lies to the left of a -> b
        (positive ``cross(b - a, p - a)``), -1 to the right.
    """
    f0, f1 = edge_faces[:, 0], edge_faces[:, 1]
    # the corner of each face that is not on the edge: the sum of its corners minus the edge's
    apex0 = faces[f0].sum(1) - edges.sum(1)
    apex1 = torch.where(f1 >= 0, faces[f1.clamp(min=0)].sum(1) - edges.sum(1), apex0)
    # x and y as contiguous (B, V) planes: index_select on them is several times faster
    sx, sy = screen[..., 0].contiguous(), screen[..., 1].contiguous()
    ax, ay = sx.index_select(1, edges[:, 0]), sy.index_select(1, edges[:, 0])
    dx, dy = sx.index_select(1, edges[:, 1]) - ax, sy.index_select(1, edges[:, 1]) - ay
    s0 = dx * (sy.index_select(1, apex0) - ay) - dy * (sx.index_select(1, apex0) - ax)
    s1 = dx * (sy.index_select(1, apex1) - ay) - dy * (sx.index_select(1, apex1) - ax)
    boundary = (f1 < 0).unsqueeze(0)
    mask = ((s0 * s1 > 0) | boundary) & (s0 != 0)
    return mask, torch.sign(s0)


def _pixel_depth(
    screen: torch.Tensor, zv: torch.Tensor, faces: torch.Tensor, face_id: torch.Tensor, pix: torch.Tensor
) -> torch.Tensor:
    """Camera depth (P,) at flat pixels ``pix`` of (B, H, W) ``face_id``; +inf on background."""
    _, h, w = face_id.shape
    fid = face_id.reshape(-1)[pix]
    out = torch.full(pix.shape, float("inf"), dtype=screen.dtype, device=screen.device)
    hit = fid >= 0
    b, rc, f = pix[hit] // (h * w), pix[hit] % (h * w), fid[hit]
    vid = faces[f]
    tri, z = screen[b.unsqueeze(1), vid], zv[b.unsqueeze(1), vid]  # (Q, 3, 2), (Q, 3)
    p = torch.stack([rc % w, rc // w], 1).to(screen.dtype)
    corner = [tri[:, i] for i in range(3)]
    bary = torch.stack(
        [_cross2(corner[(i + 2) % 3] - corner[(i + 1) % 3], p - corner[(i + 1) % 3]) for i in range(3)], 1
    )
    bary = bary / bary.sum(1, keepdim=True)
    out[hit] = 1.0 / (bary / z).sum(1)
    return out


@torch.no_grad()
def find_crossings(
    screen: torch.Tensor,
    zv: torch.Tensor,
    faces: torch.Tensor,
    face_id: torch.Tensor,
    edges: torch.Tensor,
    edge_faces: torch.Tensor,
    near: float = 1e-3,
) -> Crossings:
    """The pixel pairs that a visible silhouette edge crosses, one edge per pair (the nearest).

    A pair qualifies when its two face ids differ, its covered-side pixel shows a surface, and the
    edge at the crossing is nearer than whatever the uncovered-side pixel shows.

    Args:
        screen: (B, V, 2) pixel coordinates; zv: (B, V) camera depth; faces (F, 3);
        face_id: (B, H, W) long from the z-buffer; edges (E, 2), edge_faces (E, 2) from
            :func:`~dreamcs.render.raster.edge_adjacency`.
    """
    _, h, w = face_id.shape
    dev = screen.device
    if edges.shape[0] == 0:
        return Crossings.empty(dev)
    mask, side = silhouette_edges(screen, faces, edges, edge_faces)
    mask &= zv.index_select(1, edges[:, 0]) > near
    mask &= zv.index_select(1, edges[:, 1]) > near
    screen, zv = screen.double(), zv.double()
    view, eid = mask.nonzero(as_tuple=True)
    a, b = screen[view, edges[eid, 0]], screen[view, edges[eid, 1]]  # (S, 2)
    za, zb, side = zv[view, edges[eid, 0]], zv[view, edges[eid, 1]], side[view, eid]
    # mostly vertical edges cross rows (horizontal pairs), mostly horizontal ones columns;
    # in (along, across) coordinates both cases read the same
    vert = (b - a)[:, 0].abs() > (b - a)[:, 1].abs()  # the pair is vertical: the edge runs along x
    a, b = _along_across(a, vert), _along_across(b, vert)
    n_along = torch.where(vert, w, h).to(a.dtype)
    lo = torch.minimum(a[:, 0], b[:, 0]).ceil().clamp(min=0)
    hi = torch.minimum(torch.maximum(a[:, 0], b[:, 0]).floor(), n_along - 1)
    counts = (hi - lo + 1).clamp(min=0).long()
    total = int(counts.sum())
    if total == 0:
        return Crossings.empty(dev)
    item = torch.repeat_interleave(torch.arange(len(counts), device=dev), counts, output_size=total)
    u = lo[item] + torch.arange(total, device=dev) - (torch.cumsum(counts, 0) - counts)[item]
    a, b, vert_i = a[item], b[item], vert[item]
    s = (u - a[:, 0]) / (b[:, 0] - a[:, 0])  # position along the edge, in [0, 1]
    c0 = (a[:, 1] + s * (b[:, 1] - a[:, 1])).floor()  # the pair is (c0, c0 + 1) across
    ok = (c0 >= 0) & (c0 + 1 <= torch.where(vert_i, h, w) - 1)
    zc = 1.0 / ((1 - s) / za[item] + s / zb[item])  # perspective-correct depth at the crossing
    # the covered side is +across when it lies on the same side of a -> b as the +across axis
    plus_side = (b[:, 0] - a[:, 0]) * torch.where(vert_i, 1.0, -1.0)  # cross(d, +across), swap-aware
    inner_plus = side[item] * plus_side > 0
    c0, u = c0.long(), u.long()
    base = view[item] * (h * w)

    def flat(across: torch.Tensor) -> torch.Tensor:
        row, col = torch.where(vert_i, across, u), torch.where(vert_i, u, across)
        return base + row.clamp(0, h - 1) * w + col.clamp(0, w - 1)

    inner = flat(torch.where(inner_plus, c0 + 1, c0))
    outer = flat(torch.where(inner_plus, c0, c0 + 1))
    fid = face_id.reshape(-1)
    ok &= (fid[inner] >= 0) & (fid[inner] != fid[outer])
    idx = ok.nonzero().squeeze(1)
    idx = idx[zc[idx] < _pixel_depth(screen, zv, faces, face_id, outer[idx])]
    if idx.numel() == 0:
        return Crossings.empty(dev)
    if idx.numel() >= 1 << _ID_BITS:
        raise ValueError(f"at most {1 << _ID_BITS} silhouette crossings per batch, got {idx.numel()}")
    # one edge per pixel pair, the nearest: the smallest (quantised depth, candidate) key wins
    pair = torch.minimum(inner[idx], outer[idx]) * 2 + vert_i[idx]
    _, slot = torch.unique(pair, return_inverse=True)
    q = (zc[idx] / float(zc[idx].max())).clamp(0, 1)
    key = (q * _DEPTH_LEVELS).long() << _ID_BITS | torch.arange(idx.numel(), device=dev)
    best = torch.full((int(slot.max()) + 1,), _NO_KEY, dtype=torch.int64, device=dev)
    best.scatter_reduce_(0, slot, key, reduce="amin")
    sel = idx[best & _ID_MASK]
    return Crossings(inner[sel], outer[sel], eid[item[sel]], vert_i[sel])


def _along_across(xy: torch.Tensor, vertical_pair: torch.Tensor) -> torch.Tensor:
    """(P, 2) screen points -> (along the edge, across the pixel pair): x, y for a vertical pair
    (the edge runs along x), y, x for a horizontal one."""
    return torch.where(vertical_pair.unsqueeze(1), xy, xy.flip(1))


def crossing_offsets(
    screen: torch.Tensor, edges: torch.Tensor, crossings: Crossings, hw: tuple[int, int]
) -> torch.Tensor:
    """Distance (P,) from each pair's covered-side pixel centre to its edge, along the pair;
    differentiable in ``screen`` (B, V, 2)."""
    h, w = hw
    view, rc = crossings.inner // (h * w), crossings.inner % (h * w)
    ends = edges[crossings.edge]
    a = _along_across(screen[view, ends[:, 0]], crossings.vertical)
    b = _along_across(screen[view, ends[:, 1]], crossings.vertical)
    p = _along_across(torch.stack([rc % w, rc // w], 1).to(screen.dtype), crossings.vertical)
    # walk along the edge to the pixel's row (column), read the crossing across
    s = (p[:, 0] - a[:, 0]) / (b[:, 0] - a[:, 0])
    return (a[:, 1] + s * (b[:, 1] - a[:, 1]) - p[:, 1]).abs()


def blend_pairs(values: torch.Tensor, crossings: Crossings, offset: torch.Tensor) -> torch.Tensor:
    """Antialiased ``values`` (N, C) (flat pixels): each pair blends by its crossing ``offset``
    (P,); the blend deltas are taken from the unblended values and summed, as in nvdiffrast."""
    if offset.numel() == 0:
        return values
    i, o = crossings.inner, crossings.outer
    diff = values[i] - values[o]  # (P, C)
    w_out = (offset - 0.5).clamp(min=0).unsqueeze(1)
    w_in = (0.5 - offset).clamp(min=0).unsqueeze(1)
    return values.index_add(0, o, w_out * diff).index_add(0, i, -w_in * diff)
