"""Volume rendering of a :class:`~dreamcs.generate.nerf.field.NeRFField` in plain torch.

Per pixel a ray from the camera, clipped to the sphere of ``nerf.radius``; ``n_samples``
stratified samples along it (jittered when ``perturb``); samples in empty occupancy cells get
density 0 without a field evaluation; alpha compositing

    a_i = 1 - exp(-sigma_i * delta_i),  T_i = prod_{j<i} (1 - a_j),  w_i = T_i a_i,
    image = sum_i w_i c_i + (1 - sum_i w_i) * background.

Normals are -grad(density) (autograd, with a graph when training so shading and the orientation
loss reach the field). Shading as DreamFusion: ``albedo``, ``lambertian`` (albedo x (ambient +
diffuse n.l)), ``textureless`` (grey x the same light), ``normal`` ((n + 1) / 2); a point light
per view or a headlight.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamcs.generate.background import ray_directions

LIT = ("lambertian", "textureless", "diffuse")
SHADINGS = (*LIT, "albedo", "normal")


def sphere_near_far(origins: Tensor, dirs: Tensor, radius: float) -> tuple[Tensor, Tensor, Tensor]:
    """Entry / exit distances (R,) of rays (R, 3) + t (R, 3) through the sphere, and hit (R,) bool."""
    b = (origins * dirs).sum(-1)
    c = origins.square().sum(-1) - radius * radius
    disc = b * b - c
    hit = disc > 0
    sq = disc.clamp(min=0).sqrt()
    return (-b - sq).clamp(min=0), (-b + sq).clamp(min=0), hit & (-b + sq > 0)


def density_normals(field: Any, points: Tensor, create_graph: bool) -> tuple[Tensor, Tensor | None, Tensor]:
    """density (N,), albedo (N, 3) or None, unit normals (N, 3) = -grad density / |grad density|."""
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        sigma, albedo = field.density_and_albedo(x)
        if not sigma.requires_grad:  # a density that does not depend on the point: no normal
            return sigma, albedo, torch.zeros_like(x)
        (grad,) = torch.autograd.grad(sigma.sum(), x, create_graph=create_graph)
    return sigma, albedo, -F.normalize(grad, dim=-1, eps=1e-12)


def render_volume(
    field: Any,
    cameras: Any,
    resolution: int,
    *,
    shading: str = "albedo",
    ambient: float = 0.2,
    grey: float = 0.8,
    light_positions: Tensor | None = None,
    background: Tensor | None = None,
    perturb: bool = False,
    use_occupancy: bool = True,
    need_normals: bool | None = None,
) -> dict[str, Any]:
    """Render B views at ``resolution`` x ``resolution``.

    ``light_positions`` (B, 3) point lights (None: a headlight); ``background`` (B, H, W, 3) or None
    (black). Returns image (B, H, W, 3), alpha (B, H, W, 1) = sum of weights, depth (B, H, W, 1),
    normals (B, H, W, 3) (weight-composited, zeros without normals), orient () the orientation
    loss, n_evaluated (samples the field was evaluated at) and n_samples (all samples).
    """
    if shading not in SHADINGS:
        raise ValueError(f"volume shading {shading!r}: choose one of {', '.join(SHADINGS)}")
    cfg = field.config
    dev = field.base_vertices.device
    h = w = int(resolution)
    cams = cameras.to(dev)
    eye, _, _, forward = cams.frames()
    b = eye.shape[0]
    dirs = ray_directions(cams, h, w).reshape(-1, 3)  # (R, 3), R = B H W
    ray_b = torch.arange(b, device=dev).repeat_interleave(h * w)
    origins = eye[ray_b]
    near, far, hit = sphere_near_far(origins, dirs, cfg.radius)
    n = cfg.n_samples
    rays = hit.nonzero().squeeze(1)
    o, d, t0, t1 = origins[rays], dirs[rays], near[rays], far[rays]
    u = torch.rand(rays.shape[0], n, device=dev) if perturb else torch.full((rays.shape[0], n), 0.5, device=dev)
    delta = ((t1 - t0) / n).unsqueeze(1)  # (Rh, 1)
    t = t0.unsqueeze(1) + (torch.arange(n, device=dev) + u) * delta  # (Rh, N)
    pts = (o.unsqueeze(1) + t.unsqueeze(-1) * d.unsqueeze(1)).reshape(-1, 3)
    keep = field.occupancy.query(pts) if use_occupancy and cfg.occupancy else torch.ones_like(pts[:, 0], dtype=torch.bool)
    idx = keep.nonzero().squeeze(1)
    if need_normals is None:
        need_normals = shading != "albedo"
    if need_normals:
        sig_k, alb_k, nrm_k = density_normals(field, pts[idx], create_graph=torch.is_grad_enabled())
    else:
        (sig_k, alb_k), nrm_k = field.density_and_albedo(pts[idx]), None
    m = pts.shape[0]
    sigma = pts.new_zeros(m).index_put((idx,), sig_k).view(-1, n)
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([alpha.new_ones(alpha.shape[0], 1), 1.0 - alpha + 1e-10], 1), 1)[:, :-1]
    weights = alpha * trans  # (Rh, N)

    # colours at the evaluated samples, then scattered
    d_k = d.repeat_interleave(n, 0)[idx]
    if shading == "normal":
        col_k = (nrm_k + 1.0) / 2.0
    else:
        if shading == "albedo" and alb_k is None:
            raise ValueError("volume shading 'albedo' needs colours: set geometry.appearance=albedo")
        base = alb_k if alb_k is not None and shading != "textureless" else sig_k.new_full((idx.shape[0], 3), grey)
        if shading == "albedo":
            col_k = base
        else:
            p_k = pts[idx]
            vb = ray_b[rays].repeat_interleave(n, 0)[idx]
            if light_positions is None:
                light = -forward[vb]
            else:
                light = F.normalize(light_positions.to(p_k)[vb] - p_k, dim=-1, eps=1e-12)
            ndotl = (nrm_k * light).sum(-1, keepdim=True).clamp(min=0)
            col_k = base * (ambient + (1.0 - ambient) * ndotl)
    color = pts.new_zeros(m, 3).index_put((idx,), col_k).view(-1, n, 3)
    rgb_h = (weights.unsqueeze(-1) * color).sum(1)
    acc_h = weights.sum(1, keepdim=True)
    depth_h = (weights * t).sum(1, keepdim=True)
    orient = pts.new_zeros(())
    nrm_h = pts.new_zeros(rays.shape[0], 3)
    if nrm_k is not None:
        nrm = pts.new_zeros(m, 3).index_put((idx,), nrm_k).view(-1, n, 3)
        nrm_h = (weights.unsqueeze(-1) * nrm).sum(1)
        # DreamFusion / Ref-NeRF: normals that face away from the camera are penalised
        facing_away = pts.new_zeros(m).index_put((idx,), (nrm_k * d_k).sum(-1).clamp(min=0).square()).view(-1, n)
        orient = (weights.detach() * facing_away).sum() / (acc_h > 1e-3).sum().clamp(min=1)

    r_all = b * h * w
    bg = pts.new_zeros(r_all, 3) if background is None else background.to(pts).reshape(-1, 3)
    acc = pts.new_zeros(r_all, 1).index_put((rays,), acc_h)
    image = bg * (1.0 - acc)
    image = image.index_put((rays,), image[rays] + rgb_h)
    return {
        "image": image.view(b, h, w, 3),
        "alpha": acc.view(b, h, w, 1),
        "depth": pts.new_zeros(r_all, 1).index_put((rays,), depth_h).view(b, h, w, 1),
        "normals": pts.new_zeros(r_all, 3).index_put((rays,), nrm_h).view(b, h, w, 3),
        "orient": orient,
        "n_evaluated": int(idx.shape[0]),
        "n_samples": int(m),
    }


def opacity_loss(alpha: Tensor) -> Tensor:
    """DreamFusion's sparsity loss on the accumulated opacity (B, H, W, 1): mean sqrt(a^2 + 0.01)."""
    return (alpha.square() + 0.01).sqrt().mean()
