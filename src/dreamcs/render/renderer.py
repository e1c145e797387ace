"""A differentiable mesh renderer in plain torch (CPU or GPU).

Two halves: :func:`rasterize` decides, without gradients, which face covers each pixel and which
silhouette edge crosses each outline pixel pair (:class:`~dreamcs.render.raster.Fragments`);
:func:`shade` turns those fixed choices into an image whose every value is a smooth function of
the vertices: perspective-correct barycentrics of the pixel centres, interpolated normals,
Lambertian or normal-map shading, and analytic antialiasing of the outline
(:mod:`~dreamcs.render.antialias`, nvdiffrast-style), so that gradients move outline vertices too,
exact in expectation. The older soft silhouette (``sigmoid(+-distance / sigma)`` to the nearest
outline edge in a one-pixel band, SoftRas-like) remains as an option.

Defaults match the offline prior's training renders: flat grey Lambertian shading lit from the
camera, black background, camera at distance 2.6 with a 50 degree field of view, y up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from dreamcs.render.antialias import blend_pairs, crossing_offsets, find_crossings
from dreamcs.render.cameras import Cameras
from dreamcs.render.raster import (
    Fragments,
    _cross2,
    edge_adjacency,
    nearest_silhouette_edges,
    point_segment_distance,
    rasterize_face_ids,
    to_screen,
)


@dataclass
class RenderConfig:
    """How to render."""

    shading: Literal["diffuse", "shaded", "lambertian", "textureless", "albedo", "normal"] = "diffuse"
    """``diffuse`` (aliases ``shaded``, ``lambertian``): the albedo (grey ``albedo`` unless colours
    are given) times ambient + diffuse light; ``textureless``: the same light on the grey albedo,
    colours ignored; ``albedo``: the colours unlit; ``normal``: world normals as (n + 1) / 2.
    The light is a point light at ``light_positions`` when given, else a headlight from the camera."""
    normals: Literal["flat", "smooth"] = "flat"
    """Face normals, or area-weighted vertex normals interpolated across faces."""
    albedo: float = 0.8
    """Grey level of an uncoloured surface (and of every surface in ``textureless``)."""
    ambient: float = 0.2
    """Fraction of the albedo seen on a surface at grazing light."""
    two_sided: bool = True
    """Light back faces too (|n . l|): open or badly wound dataset meshes still look solid."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB background in [0, 1]."""
    antialias: bool = True
    """Analytic antialiasing of silhouette edges (nvdiffrast-style, :mod:`~dreamcs.render.antialias`):
    smooth outlines, and coverage gradients that are exact in expectation for outline vertices."""
    soft_silhouette: bool = False
    """Blend the outline band by a sigmoid of the distance to the silhouette (the older, biased edge
    gradient: a few percent of the true one on DMTet meshes); use instead of ``antialias``."""
    sigma: float = 0.5
    """Softness of the silhouette in pixels."""
    band: int = 1
    """Half-width in pixels of the outline band that gets soft alpha."""
    cull_backfaces: bool = False
    """Skip faces seen from behind: about half the raster work, for closed outward-wound meshes
    (DMTet output); leave off for open or badly wound meshes."""
    backend: Literal["torch", "nvdiffrast"] = "torch"
    """Who finds the face ids; nvdiffrast (CUDA only) is imported only when chosen."""
    near: float = 1e-3
    """Faces with a vertex closer than this to the camera plane are dropped."""


def make_config(config: RenderConfig | None = None, **overrides: Any) -> RenderConfig:
    """``config`` (or the defaults) with some fields replaced; unknown names raise."""
    cfg = config or RenderConfig()
    known = {f.name for f in dataclasses.fields(RenderConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise TypeError(f"unknown render option(s) {bad}; known: {sorted(known)}")
    if "background" in overrides:
        overrides["background"] = tuple(float(x) for x in overrides["background"])
    return dataclasses.replace(cfg, **overrides)


def _as_hw(resolution: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return resolution, resolution
    return int(resolution[0]), int(resolution[1])


def _check(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    if vertices.ndim not in (2, 3) or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be (V, 3) or (B, V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"faces must be (F, 3) integer, got {tuple(faces.shape)} {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[-2]):
        raise ValueError(f"faces index vertices outside [0, {vertices.shape[-2]})")


@torch.no_grad()
def rasterize(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: Cameras,
    resolution: int | tuple[int, int],
    config: RenderConfig | None = None,
) -> Fragments:
    """Face ids per pixel and nearest silhouette edges per outline pixel, for every camera.

    vertices (V, 3) or (B, V, 3); faces (F, 3) long. No gradients.
    """
    cfg = config or RenderConfig()
    _check(vertices, faces)
    faces = faces.long()
    h, w = _as_hw(resolution)
    cams = cameras.to(vertices.device)
    ndc = cams.project(vertices.detach().float(), aspect=w / h)
    screen = to_screen(ndc, h, w)
    if cfg.backend == "nvdiffrast":
        from dreamcs.render.nvdiff import rasterize_face_ids_nvdiffrast

        face_id = rasterize_face_ids_nvdiffrast(ndc, faces, h, w, near=cfg.near)
    else:
        face_id = torch.stack(
            [
                rasterize_face_ids(
                    screen[b], ndc[b, :, 2], faces, h, w, cfg.near, cull_backfaces=cfg.cull_backfaces
                )
                for b in range(len(cams))
            ]
        )
    edges = torch.zeros(0, 2, dtype=torch.long, device=faces.device)
    edge_id = torch.full_like(face_id, -1)
    edge_face = torch.full_like(face_id, -1)
    crossings = None
    if (cfg.soft_silhouette or cfg.antialias) and faces.shape[0]:
        edges, edge_faces = edge_adjacency(faces, vertices.shape[-2])
    if cfg.soft_silhouette and faces.shape[0]:
        for b in range(len(cams)):
            edge_id[b], edge_face[b] = nearest_silhouette_edges(
                screen[b], faces, face_id[b], edges, edge_faces, band=cfg.band
            )
    if cfg.antialias and faces.shape[0]:
        crossings = find_crossings(screen, ndc[..., 2], faces, face_id, edges, edge_faces, cfg.near)
    return Fragments(face_id, edge_id, edge_face, edges, crossings)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit face normals (..., F, 3) of vertices (..., V, 3); CCW faces give outward normals."""
    v0, v1, v2 = (vertices[..., faces[:, i], :] for i in range(3))
    return F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1, eps=1e-12)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (..., V, 3)."""
    v0, v1, v2 = (vertices[..., faces[:, i], :] for i in range(3))
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)  # length = 2 x area: the weight
    out = torch.zeros_like(vertices)
    for i in range(3):
        out = out.index_add(-2, faces[:, i], fn)
    return F.normalize(out, dim=-1, eps=1e-12)


#: colours of a surface: a callable world points (N, 3) -> (N, 3), or per-vertex colours (V, 3) / (B, V, 3)
AlbedoSource = Callable[[torch.Tensor], torch.Tensor] | torch.Tensor
LIT_SHADINGS = ("diffuse", "shaded", "lambertian", "textureless")


def _surface_color(
    cfg: RenderConfig,
    cams: Cameras,
    n: torch.Tensor,
    position: torch.Tensor,
    persp: torch.Tensor,
    vidx: torch.Tensor,
    bidx: torch.Tensor,
    albedo: AlbedoSource | None,
    light_positions: torch.Tensor | None,
) -> torch.Tensor:
    """Colours (P, 3) of shaded pixels: normals n (P, 3), world points (P, 3), perspective-correct
    barycentrics (P, 3) of faces vidx (P, 3) in views bidx (P,)."""
    if cfg.shading == "normal":
        return (n + 1.0) / 2.0
    if cfg.shading not in (*LIT_SHADINGS, "albedo"):
        raise ValueError(f"unknown shading {cfg.shading!r}; choose one of {', '.join((*LIT_SHADINGS, 'albedo', 'normal'))}")
    base = None
    if albedo is not None and cfg.shading != "textureless":
        if callable(albedo) and not isinstance(albedo, torch.Tensor):
            base = albedo(position)
        else:
            cols = albedo.to(position)
            tri = cols[vidx] if cols.ndim == 2 else cols[bidx.unsqueeze(1), vidx]  # (P, 3, 3)
            base = (persp.unsqueeze(-1) * tri).sum(1)
        if base.shape != position.shape:
            raise ValueError(f"albedo must give (N, 3) colours, got {tuple(base.shape)} for {position.shape[0]} points")
    if cfg.shading == "albedo":
        if base is None:
            raise ValueError("shading 'albedo' needs colours: pass albedo= (a colour field or per-vertex colours)")
        return base
    if light_positions is None:  # a headlight, as the offline prior's training renders
        _, _, _, forward = cams.frames()
        light_dir = -forward[bidx]
    else:
        light_dir = F.normalize(light_positions.to(position)[bidx] - position, dim=-1, eps=1e-12)
    ndotl = (n * light_dir).sum(-1)
    ndotl = ndotl.abs() if cfg.two_sided else ndotl.clamp(min=0)
    light = (cfg.ambient + (1.0 - cfg.ambient) * ndotl).unsqueeze(1)  # (P, 1)
    if base is None:
        return (cfg.albedo * light).expand(-1, 3)
    return base.clamp(0.0, 1.0) * light


def shade(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: Cameras,
    fragments: Fragments,
    config: RenderConfig | None = None,
    *,
    albedo: AlbedoSource | None = None,
    light_positions: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The differentiable half: images from fixed fragments; gradients reach ``vertices`` (and
    ``albedo``: a callable's parameters or the per-vertex colours).

    ``albedo``: a callable world points (N, 3) -> colours (N, 3) in [0, 1], or per-vertex colours
    (V, 3) / (B, V, 3); ``light_positions``: (B, 3) world positions of one point light per view.
    Returns image (B, H, W, 3), alpha (B, H, W, 1) soft, mask (B, H, W, 1) hard coverage,
    depth (B, H, W, 1) camera depth (0 on background), normals (B, H, W, 3) world space,
    position (B, H, W, 3) world surface points (0 on background), face_id (B, H, W) long.
    """
    cfg = config or RenderConfig()
    faces = faces.long()
    b_, h, w = fragments.face_id.shape
    dt, dev = vertices.dtype, vertices.device
    cams = cameras.to(dev, dt)
    ndc = cams.project(vertices, aspect=w / h)  # (B, V, 3)
    screen, zv = to_screen(ndc, h, w), ndc[..., 2]

    fid = fragments.face_id.reshape(-1)
    shade_face = torch.where(fid >= 0, fid, fragments.edge_face.reshape(-1))
    pix = (shade_face >= 0).nonzero().squeeze(1)
    bidx, rc = pix // (h * w), pix % (h * w)
    f = shade_face[pix]
    covered = fid[pix] >= 0
    vidx = faces[f]  # (P, 3)
    tri, z = screen[bidx.unsqueeze(1), vidx], zv[bidx.unsqueeze(1), vidx]  # (P, 3, 2), (P, 3)
    p = torch.stack([rc % w, rc // w], 1).to(dt)

    # 1. Screen-space barycentrics of the pixel centres, then perspective-correct ones.
    area = _cross2(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    bary = torch.stack(
        [
            _cross2(tri[:, 2] - tri[:, 1], p - tri[:, 1]),
            _cross2(tri[:, 0] - tri[:, 2], p - tri[:, 2]),
            _cross2(tri[:, 1] - tri[:, 0], p - tri[:, 0]),
        ],
        1,
    ) / area.unsqueeze(1)
    # background band pixels borrow the face beside the outline: clamp the extrapolation
    clamped = bary.clamp(min=0)
    clamped = clamped / clamped.sum(1, keepdim=True).clamp(min=1e-12)
    bary = torch.where(covered.unsqueeze(1), bary, clamped)
    inv_z = bary / z
    depth = 1.0 / inv_z.sum(1)
    persp = inv_z * depth.unsqueeze(1)

    # 2. Normals and shading.
    if cfg.normals == "flat":
        fn = face_normals(vertices, faces)
        n = fn[f] if fn.ndim == 2 else fn[bidx, f]
    else:
        vn = vertex_normals(vertices, faces)
        vn_tri = vn[vidx] if vn.ndim == 2 else vn[bidx.unsqueeze(1), vidx]
        n = F.normalize((persp.unsqueeze(-1) * vn_tri).sum(1), dim=-1, eps=1e-12)
    v_tri = vertices[vidx] if vertices.ndim == 2 else vertices[bidx.unsqueeze(1), vidx]  # (P, 3, 3)
    position = (persp.unsqueeze(-1) * v_tri).sum(1)  # (P, 3) world points of the pixel centres
    color = _surface_color(cfg, cams, n, position, persp, vidx, bidx, albedo, light_positions)

    # 3. Soft silhouette: sigmoid of the signed distance to the nearest outline edge.
    alpha = torch.ones_like(depth)
    eid = fragments.edge_id.reshape(-1)[pix]
    has = (eid >= 0).nonzero().squeeze(1)
    if cfg.soft_silhouette and has.numel():
        ends = fragments.edges[eid[has]]  # (Q, 2)
        bq = bidx[has].unsqueeze(1)
        seg = screen[bq, ends]  # (Q, 2, 2)
        d = point_segment_distance(p[has], seg[:, 0], seg[:, 1])
        sign = torch.where(covered[has], 1.0, -1.0).to(dt)
        alpha = alpha.index_put((has,), torch.sigmoid(sign * d / cfg.sigma))
    alpha = torch.where(covered | (eid >= 0), alpha, torch.zeros_like(alpha))

    # 4. Composite over the background and scatter into images; antialias the outline.
    bg = torch.tensor(cfg.background, dtype=dt, device=dev)
    a = alpha.unsqueeze(1)
    n_pix = b_ * h * w
    image = bg.repeat(n_pix, 1).index_put((pix,), a * color + (1 - a) * bg)
    alpha_img = torch.zeros(n_pix, dtype=dt, device=dev).index_put((pix,), alpha)
    if cfg.antialias and fragments.crossings is not None and fragments.crossings.edge.numel():
        offset = crossing_offsets(screen, fragments.edges, fragments.crossings, (h, w))
        image = blend_pairs(image, fragments.crossings, offset)
        alpha_img = blend_pairs(alpha_img.unsqueeze(1), fragments.crossings, offset).squeeze(1)
    cov = torch.zeros(n_pix, dtype=dt, device=dev).index_put((pix,), covered.to(dt))
    depth_img = torch.zeros(n_pix, dtype=dt, device=dev).index_put((pix,), depth * covered)
    normal_img = torch.zeros(n_pix, 3, dtype=dt, device=dev).index_put((pix,), n * covered.unsqueeze(1))
    position_img = torch.zeros(n_pix, 3, dtype=dt, device=dev).index_put((pix,), position * covered.unsqueeze(1))
    return {
        "image": image.view(b_, h, w, 3),
        "alpha": alpha_img.view(b_, h, w, 1),
        "mask": cov.view(b_, h, w, 1),
        "depth": depth_img.view(b_, h, w, 1),
        "normals": normal_img.view(b_, h, w, 3),
        "position": position_img.view(b_, h, w, 3),
        "face_id": fragments.face_id,
    }


def render(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: Cameras,
    resolution: int | tuple[int, int] = 64,
    config: RenderConfig | None = None,
    *,
    albedo: AlbedoSource | None = None,
    light_positions: torch.Tensor | None = None,
    **overrides: Any,
) -> dict[str, torch.Tensor]:
    """Render a mesh from every camera: :func:`rasterize` then :func:`shade` (see there).

    vertices (V, 3) or (B, V, 3) float, differentiable; faces (F, 3) long, CCW from outside.
    ``albedo`` / ``light_positions``: colours and point lights, see :func:`shade`.
    ``overrides`` replace fields of ``config``, e.g. ``shading="normal", background=[1, 1, 1]``.
    """
    config = make_config(config, **overrides)
    frags = rasterize(vertices, faces, cameras, resolution, config)
    return shade(vertices, faces, cameras, frags, config, albedo=albedo, light_positions=light_positions)
