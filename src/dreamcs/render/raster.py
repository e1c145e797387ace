"""The non-differentiable half of rasterisation: which face covers each pixel, and which silhouette
edge is nearest to each pixel along the outline.

Screen space: pixel (row r, column c) has its centre at (x, y) = (c, r); NDC x = -1 is the left
image border, NDC y = +1 the top border. Everything here runs under ``no_grad`` and is exact and
deterministic: a z-buffer built with ``scatter_reduce(amin)`` over (quantised depth, face id) keys,
so ties go to the lower face id whatever the order of evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from dreamcs.render.antialias import Crossings

_ID_BITS = 24
_ID_MASK = (1 << _ID_BITS) - 1
_DEPTH_LEVELS = float(1 << 38)
_NO_KEY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    """Discrete rasterisation result for B views of H x W pixels.

    face_id: (B, H, W) long, the visible face, -1 for background.
    edge_id: (B, H, W) long, the nearest silhouette edge (index into ``edges``) for outline-band
        pixels, -1 elsewhere.
    edge_face: (B, H, W) long, the front face beside that edge (shades background band pixels).
    edges: (E, 2) long, the mesh's unique edges (vertex pairs).
    crossings: silhouette edges crossing adjacent pixel pairs (analytic antialiasing), or None.
    """

    face_id: torch.Tensor
    edge_id: torch.Tensor
    edge_face: torch.Tensor
    edges: torch.Tensor
    crossings: Crossings | None = None


def to_screen(ndc: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """NDC (..., >=2) -> pixel coordinates (..., 2) with pixel centres at integers."""
    x = (ndc[..., 0] + 1.0) * (width / 2.0) - 0.5
    y = (1.0 - ndc[..., 1]) * (height / 2.0) - 0.5
    return torch.stack([x, y], -1)


def _expand_boxes(
    x0: torch.Tensor, x1: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every integer pixel inside each box: (item index, column, row), each (P,)."""
    bw = x1 - x0 + 1
    counts = bw * (y1 - y0 + 1)
    total = int(counts.sum())
    item = torch.repeat_interleave(torch.arange(len(counts), device=x0.device), counts, output_size=total)
    # one gather of a per-box table instead of one per field
    table = torch.stack([x0, y0, bw, torch.cumsum(counts, 0) - counts], 1).index_select(0, item)
    off = torch.arange(total, device=x0.device) - table[:, 3]
    return item, table[:, 0] + off % table[:, 2], table[:, 1] + off // table[:, 2]


def _plane_coefficients(tri: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(F, 4, 3): rows (A, B, C) with value A x + B y + C at pixel (x, y) for the three
    barycentrics (orientation-free: divided by the signed area) and for 1 / depth."""
    rows = []
    for j, k in ((1, 2), (2, 0), (0, 1)):  # the edge opposite corner 0, 1, 2
        tj, tk = tri[:, j], tri[:, k]
        dx, dy = tk[:, 0] - tj[:, 0], tk[:, 1] - tj[:, 1]
        rows.append(torch.stack([-dy, dx, dy * tj[:, 0] - dx * tj[:, 1]], 1))
    bary = torch.stack(rows, 1)  # (F, 3, 3), unnormalised
    area = bary[:, 0].mul(torch.cat([tri[:, 0], torch.ones_like(tri[:, 0, :1])], 1)).sum(1)
    bary = bary / area.view(-1, 1, 1)
    inv_z = (bary / z.unsqueeze(-1)).sum(1, keepdim=True)
    return torch.cat([bary, inv_z], 1)


def _chunks(counts: torch.Tensor, max_pairs: int) -> list[tuple[int, int]]:
    """Split items into consecutive runs of about ``max_pairs`` pairs: an item joins the run in
    which its first pair falls, so a run holds at most ``max_pairs`` + one item's pairs."""
    if counts.numel() == 0:
        return []
    block = (torch.cumsum(counts, 0) - counts) // max_pairs
    _, sizes = torch.unique_consecutive(block, return_counts=True)
    ends = torch.cumsum(sizes, 0).tolist()
    return list(zip([0, *ends[:-1]], ends, strict=True))


@torch.no_grad()
def rasterize_face_ids(
    screen: torch.Tensor,
    depth: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    near: float = 1e-3,
    max_pairs: int = 1 << 22,
    cull_backfaces: bool = False,
) -> torch.Tensor:
    """Z-buffer one view by a vectorised per-face bounding-box scan.

    Faces are grouped by bounding-box size (powers of two); within a group every face tests the
    same s x s pixel offsets, so the edge functions of all (face, pixel) pairs are one small
    matrix product, with no per-pair gathers.

    Args:
        screen: (V, 2) pixel coordinates; depth: (V,) camera depth; faces: (F, 3) long.
        cull_backfaces: skip faces seen from behind (closed, outward-wound meshes only).
    Returns:
        (H, W) long face ids, -1 where no face covers the pixel centre.
    """
    dev = screen.device
    if faces.shape[0] >= 1 << _ID_BITS:
        raise ValueError(f"at most {1 << _ID_BITS} faces per mesh, got {faces.shape[0]}")
    flat = faces.reshape(-1)
    tri = screen.double().index_select(0, flat).view(-1, 3, 2)
    z = depth.double().index_select(0, flat).view(-1, 3)
    lo, hi = tri.min(1).values, tri.max(1).values
    x0, y0 = lo[:, 0].ceil().clamp(min=0), lo[:, 1].ceil().clamp(min=0)
    x1, y1 = hi[:, 0].floor().clamp(max=width - 1), hi[:, 1].floor().clamp(max=height - 1)
    area = _cross2(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ok = (x1 >= x0) & (y1 >= y0) & (z.min(1).values > near) & (area.abs() > 1e-12)
    if cull_backfaces:
        ok &= area < 0  # CCW in NDC (y up) is clockwise in pixel rows (y down)
    fid = ok.nonzero().squeeze(1)
    zbuf = torch.full((height * width,), _NO_KEY, dtype=torch.int64, device=dev)
    if fid.numel() == 0:
        return zbuf.fill_(-1).view(height, width)
    x0, x1, y0, y1 = (t[fid].long() for t in (x0, x1, y0, y1))
    coef = _plane_coefficients(tri[fid], z[fid])  # (G, 4, 3)
    # value of each plane at the box origin; offsets (ox, oy) then add A ox + B oy
    origin = coef[:, :, 0] * x0.unsqueeze(1) + coef[:, :, 1] * y0.unsqueeze(1) + coef[:, :, 2]
    inv_zmax = float((1.0 / z[fid].min(1).values).max())
    size = torch.maximum(x1 - x0, y1 - y0) + 1
    level = torch.ceil(torch.log2(size.double())).long()
    for lv in torch.unique(level).tolist():
        members = (level == lv).nonzero().squeeze(1)
        side = 1 << lv
        off = torch.arange(side * side, device=dev)
        grid = torch.stack([off % side, off // side]).double()  # (2, s^2)
        step = max(1, max_pairs // (side * side))
        for c0 in range(0, members.numel(), step):
            m = members[c0 : c0 + step]
            val = coef[m, :, :2] @ grid + origin[m].unsqueeze(-1)  # (n, 4, s^2)
            ox, oy = off % side, off // side
            in_box = (ox.unsqueeze(0) <= (x1[m] - x0[m]).unsqueeze(1)) & (
                oy.unsqueeze(0) <= (y1[m] - y0[m]).unsqueeze(1)
            )
            hit = ((val[:, :3].amin(1) >= 0) & in_box).nonzero()  # (k, 2): member, offset
            j, o = hit[:, 0], hit[:, 1]
            g = m.index_select(0, j)
            q = (1.0 - val[j, 3, o] / inv_zmax).clamp(0, 1)  # 0 = nearest
            key = (q * _DEPTH_LEVELS).long() << _ID_BITS | fid.index_select(0, g)
            pix = (y0.index_select(0, g) + o // side) * width + x0.index_select(0, g) + o % side
            zbuf.scatter_reduce_(0, pix, key, reduce="amin")
    ids = torch.where(zbuf == _NO_KEY, torch.full_like(zbuf, -1), zbuf & _ID_MASK)
    return ids.view(height, width)


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def edge_adjacency(faces: torch.Tensor, num_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique edges (E, 2) and their two faces (E, 2) (-1 for a boundary edge; a non-manifold
    edge keeps two of its faces)."""
    dev = faces.device
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    he = torch.sort(he, dim=1).values
    key = he[:, 0] * num_vertices + he[:, 1]
    key_s, order = torch.sort(key)
    first = torch.ones_like(key_s, dtype=torch.bool)
    first[1:] = key_s[1:] != key_s[:-1]
    start = first.nonzero().squeeze(1)
    face_of = order // 3
    f0 = face_of[start]
    nxt = (start + 1).clamp(max=len(key_s) - 1)
    has2 = (start + 1 < len(key_s)) & (key_s[nxt] == key_s[start])
    f1 = torch.where(has2, face_of[nxt], torch.full_like(f0, -1))
    edges = he[order[start]]
    return edges, torch.stack([f0, f1], 1).to(dev)


@torch.no_grad()
def nearest_silhouette_edges(
    screen: torch.Tensor,
    faces: torch.Tensor,
    face_id: torch.Tensor,
    edges: torch.Tensor,
    edge_faces: torch.Tensor,
    band: int = 1,
    max_pairs: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each outline-band pixel of one view, the nearest visible silhouette edge.

    The band is every pixel within ``band`` pixels of a change in coverage. A silhouette edge has
    one front- and one back-facing face (or is a boundary edge), and its front face is visible.

    Returns:
        edge_id (H, W) long and edge_face (H, W) long, -1 where none.
    """
    h, w = face_id.shape
    dev = screen.device
    cov = (face_id >= 0).float().view(1, 1, h, w)
    k = 2 * band + 1
    grow = F.max_pool2d(cov, k, 1, band)
    shrink = -F.max_pool2d(-cov, k, 1, band)
    in_band = (grow != shrink).view(-1)
    edge_id = torch.full((h * w,), -1, dtype=torch.long, device=dev)
    edge_face = torch.full((h * w,), -1, dtype=torch.long, device=dev)
    if not bool(in_band.any()):
        return edge_id.view(h, w), edge_face.view(h, w)

    tri = screen[faces]
    area = _cross2(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    front = area < 0  # CCW in NDC (y up) is clockwise in pixel rows (y down)
    visible = torch.zeros(faces.shape[0] + 1, dtype=torch.bool, device=dev)
    visible[face_id.view(-1) + 1] = True
    visible = visible[1:]
    f0, f1 = edge_faces[:, 0], edge_faces[:, 1]
    boundary = f1 < 0
    f1c = f1.clamp(min=0)
    contour = ~boundary & (front[f0] != front[f1c])
    vis_face = torch.where(front[f0] | boundary, f0, f1c)
    sil = ((contour | boundary) & visible[vis_face]).nonzero().squeeze(1)
    if sil.numel() == 0:
        return edge_id.view(h, w), edge_face.view(h, w)

    seg = screen[edges[sil]].double()  # (S, 2, 2)
    lo, hi = seg.min(1).values - band - 1, seg.max(1).values + band + 1
    x0, y0 = lo[:, 0].ceil().clamp(min=0).long(), lo[:, 1].ceil().clamp(min=0).long()
    x1, y1 = hi[:, 0].floor().clamp(max=w - 1).long(), hi[:, 1].floor().clamp(max=h - 1).long()
    keep = (x1 >= x0) & (y1 >= y0)
    sil, seg, x0, x1, y0, y1 = sil[keep], seg[keep], x0[keep], x1[keep], y0[keep], y1[keep]
    best = torch.full((h * w,), _NO_KEY, dtype=torch.int64, device=dev)
    counts = (x1 - x0 + 1) * (y1 - y0 + 1)
    for s, e in _chunks(counts, max_pairs):
        item, cx, cy = _expand_boxes(x0[s:e], x1[s:e], y0[s:e], y1[s:e])
        pix = cy * w + cx
        m = in_band[pix]
        item, pix = item[m] + s, pix[m]
        p = torch.stack([cx[m], cy[m]], 1).double()
        d = point_segment_distance(p, seg[item, 0], seg[item, 1])
        key = (d.clamp(max=1e6) * 1e6).long() << _ID_BITS | item
        best.scatter_reduce_(0, pix, key, reduce="amin")
    found = best != _NO_KEY
    item = best[found] & _ID_MASK
    edge_id[found] = sil[item]
    edge_face[found] = vis_face[sil[item]]
    return edge_id.view(h, w), edge_face.view(h, w)


def point_segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance (P,) from points p (P, 2) to segments a-b (P, 2); differentiable."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)
    q = a + t.clamp(0, 1).unsqueeze(-1) * ab
    return ((p - q).square().sum(-1) + 1e-12).sqrt()
