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

Two ways to place the samples (``nerf.backend``, ``dreamcs.generate.nerf.accel``): ``torch``, the
reference, N per ray with the skipped ones at density 0 (dense (Rh, N) sums); ``nerfacc``, fixed
steps through the occupied cells only, packed ray after ray (the same sums by ``march_packed``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamcs.generate.background import ray_directions
from dreamcs.generate.nerf.accel import nerfacc_samples, packed_weights, resolve_backend

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


@dataclass
class Rays:
    """The rays of B views of H x W pixels, R = B H W of them, Rh of which cross the sphere."""

    b: int
    h: int
    w: int
    forward: Tensor
    """(B, 3) each camera's viewing direction (the headlight)."""
    ray_b: Tensor
    """(R,) the view of each ray."""
    index: Tensor
    """(Rh,) the rays that cross the sphere; ``o``, ``d`` (Rh, 3), ``near``, ``far`` (Rh,) are theirs."""
    o: Tensor
    d: Tensor
    near: Tensor
    far: Tensor


def cast_rays(cameras: Any, resolution: int, radius: float, device: torch.device) -> Rays:
    """One ray per pixel of each camera, clipped to the sphere of ``radius`` (unit directions)."""
    h = w = int(resolution)
    cams = cameras.to(device)
    eye, _, _, forward = cams.frames()
    b = eye.shape[0]
    dirs = ray_directions(cams, h, w).reshape(-1, 3)  # (R, 3), R = B H W
    ray_b = torch.arange(b, device=device).repeat_interleave(h * w)
    origins = eye[ray_b]
    near, far, hit = sphere_near_far(origins, dirs, radius)
    rays = hit.nonzero().squeeze(1)
    return Rays(b, h, w, forward, ray_b, rays, origins[rays], dirs[rays], near[rays], far[rays])


def stratified_samples(rays: Rays, n: int, perturb: bool) -> tuple[Tensor, Tensor]:
    """t (Rh, N): N stratified samples between near and far (jittered or mid-points); delta (Rh, 1)."""
    dev = rays.o.device
    m = rays.o.shape[0]
    u = torch.rand(m, n, device=dev) if perturb else torch.full((m, n), 0.5, device=dev)
    delta = ((rays.far - rays.near) / n).unsqueeze(1)  # (Rh, 1)
    return rays.near.unsqueeze(1) + (torch.arange(n, device=dev) + u) * delta, delta


def shade_samples(field: Any, rays: Rays, pts: Tensor, ray_k: Tensor, *, shading: str, ambient: float, grey: float,
              light_positions: Tensor | None, need_normals: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Density (K,), shaded colour (K, 3) and normals (K, 3) or None at points (K, 3) on rays ``ray_k`` (K,)."""
    if need_normals:
        sig_k, alb_k, nrm_k = density_normals(field, pts, create_graph=torch.is_grad_enabled())
    else:
        (sig_k, alb_k), nrm_k = field.density_and_albedo(pts), None
    if shading == "normal":
        return sig_k, (nrm_k + 1.0) / 2.0, nrm_k
    if shading == "albedo" and alb_k is None:
        raise ValueError("volume shading 'albedo' needs colours: set geometry.appearance=albedo")
    base = alb_k if alb_k is not None and shading != "textureless" else sig_k.new_full((pts.shape[0], 3), grey)
    if shading == "albedo":
        return sig_k, base, nrm_k
    vb = rays.ray_b[rays.index][ray_k]
    if light_positions is None:
        light = -rays.forward[vb]
    else:
        light = F.normalize(light_positions.to(pts)[vb] - pts, dim=-1, eps=1e-12)
    ndotl = (nrm_k * light).sum(-1, keepdim=True).clamp(min=0)
    return sig_k, base * (ambient + (1.0 - ambient) * ndotl), nrm_k


def _march_dense(field: Any, rays: Rays, perturb: bool, use_occupancy: bool, evaluate: Any) -> dict[str, Any]:
    """The reference: N samples a ray, the field evaluated in occupied cells, density 0 elsewhere."""
    cfg, n = field.config, field.config.n_samples
    t, delta = stratified_samples(rays, n, perturb)
    pts = (rays.o.unsqueeze(1) + t.unsqueeze(-1) * rays.d.unsqueeze(1)).reshape(-1, 3)
    keep = field.occupancy.query(pts) if use_occupancy and cfg.occupancy else torch.ones_like(pts[:, 0], dtype=torch.bool)
    idx = keep.nonzero().squeeze(1)
    sig_k, col_k, nrm_k = evaluate(pts[idx], torch.div(idx, n, rounding_mode="floor"))
    m = pts.shape[0]
    sigma = pts.new_zeros(m).index_put((idx,), sig_k).view(-1, n)
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([alpha.new_ones(alpha.shape[0], 1), 1.0 - alpha + 1e-10], 1), 1)[:, :-1]
    weights = alpha * trans  # (Rh, N)
    color = pts.new_zeros(m, 3).index_put((idx,), col_k).view(-1, n, 3)
    out = {"rgb": (weights.unsqueeze(-1) * color).sum(1), "acc": weights.sum(1, keepdim=True),
           "depth": (weights * t).sum(1, keepdim=True), "orient": pts.new_zeros(()),
           "normals": pts.new_zeros(rays.o.shape[0], 3), "n_evaluated": int(idx.shape[0]), "n_samples": int(m)}
    if nrm_k is not None:
        nrm = pts.new_zeros(m, 3).index_put((idx,), nrm_k).view(-1, n, 3)
        out["normals"] = (weights.unsqueeze(-1) * nrm).sum(1)
        # DreamFusion / Ref-NeRF: normals that face away from the camera are penalised
        d_k = rays.d.repeat_interleave(n, 0)[idx]
        facing_away = pts.new_zeros(m).index_put((idx,), (nrm_k * d_k).sum(-1).clamp(min=0).square()).view(-1, n)
        out["orient"] = (weights.detach() * facing_away).sum() / (out["acc"] > 1e-3).sum().clamp(min=1)
    return out


def march_packed(rays: Rays, ray_s: Tensor, t_s: Tensor, delta_s: Tensor, evaluate: Any) -> dict[str, Any]:
    """The same sums over packed samples (S,) (``ray_s`` sorted, ``t_s`` mid-points, ``delta_s`` lengths),
    as nerfacc returns them: only the samples in occupied cells exist."""
    m = rays.o.shape[0]
    pts = rays.o[ray_s] + t_s.unsqueeze(1) * rays.d[ray_s]
    sig_k, col_k, nrm_k = evaluate(pts, ray_s)
    w = packed_weights(ray_s, sig_k, delta_s, m)  # (S,)

    def per_ray(values: Tensor) -> Tensor:  # (S, C) -> (Rh, C), weighted sums
        return pts.new_zeros(m, values.shape[1]).index_add(0, ray_s, w.unsqueeze(1) * values)

    out = {"rgb": per_ray(col_k), "acc": per_ray(pts.new_ones(pts.shape[0], 1)), "depth": per_ray(t_s.unsqueeze(1)),
           "orient": pts.new_zeros(()), "normals": pts.new_zeros(m, 3), "n_evaluated": int(pts.shape[0])}
    if nrm_k is not None:
        out["normals"] = per_ray(nrm_k)
        facing_away = (nrm_k * rays.d[ray_s]).sum(-1).clamp(min=0).square()
        out["orient"] = (w.detach() * facing_away).sum() / (out["acc"] > 1e-3).sum().clamp(min=1)
    return out


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
    backend: str | None = None,
) -> dict[str, Any]:
    """Render B views at ``resolution`` x ``resolution``.

    ``light_positions`` (B, 3) point lights (None: a headlight); ``background`` (B, H, W, 3) or None
    (black); ``backend`` torch, nerfacc or auto (None: the field's ``nerf.backend``). Returns image
    (B, H, W, 3), alpha (B, H, W, 1) = sum of weights, depth (B, H, W, 1), normals (B, H, W, 3)
    (weight-composited, zeros without normals), orient () the orientation loss, n_evaluated
    (samples the field was evaluated at), n_samples (the torch path's samples: Rh x N) and backend.
    """
    if shading not in SHADINGS:
        raise ValueError(f"volume shading {shading!r}: choose one of {', '.join(SHADINGS)}")
    cfg = field.config
    dev = field.base_vertices.device
    chosen = resolve_backend(cfg.backend if backend is None else backend, dev)
    rays = cast_rays(cameras, resolution, cfg.radius, dev)
    evaluate = functools.partial(shade_samples, field, rays, shading=shading, ambient=ambient, grey=grey,
                                 light_positions=light_positions,
                                 need_normals=shading != "albedo" if need_normals is None else need_normals)
    if chosen == "nerfacc":
        # steps of the longest chord / N: no ray gets more samples than on the torch path
        occ = field.occupancy if use_occupancy and cfg.occupancy else None
        samples = nerfacc_samples(occ, cfg.radius, rays.o, rays.d, rays.near, rays.far, 2.0 * cfg.radius / cfg.n_samples,
                                  perturb)
        per_ray = march_packed(rays, *samples, evaluate)
        per_ray["n_samples"] = int(rays.o.shape[0] * cfg.n_samples)
    else:
        per_ray = _march_dense(field, rays, perturb, use_occupancy, evaluate)
    out = composite(rays, per_ray, background)
    out["backend"] = chosen
    return out


def composite(rays: Rays, per_ray: dict[str, Any], background: Tensor | None) -> dict[str, Any]:
    """Per-ray sums (Rh, C) over the background (B, H, W, 3) or black into (B, H, W, C) images."""
    b, h, w = rays.b, rays.h, rays.w
    acc_h = per_ray["acc"]
    r_all = b * h * w
    bg = acc_h.new_zeros(r_all, 3) if background is None else background.to(acc_h).reshape(-1, 3)

    def scatter(values: Tensor) -> Tensor:
        return values.new_zeros(r_all, values.shape[1]).index_put((rays.index,), values).view(b, h, w, -1)

    acc = scatter(acc_h).view(-1, 1)
    image = bg * (1.0 - acc)
    image = image.index_put((rays.index,), image[rays.index] + per_ray["rgb"])
    return {
        "image": image.view(b, h, w, 3),
        "alpha": acc.view(b, h, w, 1),
        "depth": scatter(per_ray["depth"]),
        "normals": scatter(per_ray["normals"]),
        "orient": per_ray["orient"],
        "n_evaluated": per_ray["n_evaluated"],
        "n_samples": per_ray["n_samples"],
    }


def opacity_loss(alpha: Tensor) -> Tensor:
    """DreamFusion's sparsity loss on the accumulated opacity (B, H, W, 1): mean sqrt(a^2 + 0.01)."""
    return (alpha.square() + 0.01).sqrt().mean()
