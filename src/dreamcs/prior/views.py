"""One object's training views, rendered the way the SDS branch of the ``embedded`` recipes renders
(``dreamcs.generate.pipeline.sample_views`` + ``render_batch``): flat grey Lambertian on black, y up,
cameras uniform in the recipe's elevation / azimuth / distance / fov ranges, rendered at
``image_size * supersample`` and shrunk with the antialiased bilinear filter guidance applies.

Framing: with ``margin`` set, the object is scaled so that its bounding sphere (about the bounding
box's centre, the origin) fills at most ``1 - margin`` of the half-frame at the closest distance
and narrowest fov of the ranges:

    R = d_min * sin(atan((1 - margin) * tan(fov_min / 2)))      # d 2.6, fov 50, margin 0.1: R = 1.006

so every view shows the whole object with a black border, and SDS, which reproduces the framing it
learnt, keeps shapes inside the unit sphere (the DMTet grid of the recipes spans +-1.15) instead of
swelling them into the grid's walls. ``margin`` None keeps the older box normalisation (longest side
2), whose views fill the frame edge to edge.

Light per view: the recipes' headlight; with ``light_random_share``, DreamFusion's random point
light (``render.light: random``, ``generate.appearance.sample_lights``); with ``normal_share``,
normal shading seen in grey (the 1-channel guidance averages the normal map's channels).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from dreamcs.prior.data import ViewDataConfig

#: per-view light kinds (``ViewDataset.light``)
LIGHTS = ("headlight", "random", "normal")


def framing_radius(cfg: ViewDataConfig) -> float | None:
    """The bounding-sphere radius objects are scaled to (module docstring), None without a margin."""
    if cfg.margin is None:
        return None
    d, fov = min(cfg.distance_range), min(cfg.fov_range)
    return d * math.sin(math.atan((1.0 - cfg.margin) * math.tan(math.radians(fov) / 2.0)))


def frame(vertices: np.ndarray, cfg: ViewDataConfig) -> np.ndarray:
    """vertices (V, 3) of a normalised mesh -> (V, 3) scaled about the origin to
    :func:`framing_radius` (unchanged when ``cfg.margin`` is None)."""
    radius = framing_radius(cfg)
    if radius is None:
        return vertices
    extent = float(np.linalg.norm(vertices, axis=1).max())
    if not extent > 0:
        raise ValueError("cannot frame a mesh whose vertices all sit at the origin")
    return vertices * (radius / extent)


def _light_kinds(n: int, cfg: ViewDataConfig, g: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=g)
    kinds = torch.zeros(n, dtype=torch.long)
    kinds[u < cfg.light_random_share + cfg.normal_share] = 1
    kinds[u < cfg.normal_share] = 2
    return kinds


@torch.no_grad()
def render_object_views(vertices: np.ndarray, faces: np.ndarray, cfg: ViewDataConfig, n_views: int, seed: int,
                        batch: int = 16) -> dict[str, np.ndarray]:
    """Render one normalised mesh (vertices (V, 3), faces (F, 3)) from ``n_views`` random cameras.

    Returns ``images`` (n, S, S) float32 in [0, 1], ``elevation`` and ``azimuth`` (n,) degrees,
    ``view`` (n,) int8 into ``render.VIEW_NAMES`` (the suffix SDS would append), ``light`` (n,)
    int8 into :data:`LIGHTS`. Seeded by ``seed`` alone.
    """
    from dreamcs.generate.appearance import sample_lights
    from dreamcs.generate.config import RenderSettings
    from dreamcs.render import VIEW_NAMES, RenderConfig, render, sample_cameras, view_directions

    g = torch.Generator().manual_seed(seed)
    cams = sample_cameras(n_views, elevation_range=tuple(cfg.elevation_range),
                          azimuth_range=tuple(cfg.azimuth_range), distance_range=tuple(cfg.distance_range),
                          fov_range=tuple(cfg.fov_range), generator=g)
    kinds = _light_kinds(n_views, cfg, g)
    # the recipes' render settings (RenderSettings defaults: ambient 0.2, DreamFusion's light sampling)
    lights = sample_lights(cams, RenderSettings(light="random"), generator=g)
    v = torch.as_tensor(frame(np.asarray(vertices, dtype=np.float64), cfg), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.long)
    hi = cfg.image_size * cfg.supersample
    images = torch.zeros(n_views, cfg.image_size, cfg.image_size)
    for kind in range(len(LIGHTS)):
        idx = (kinds == kind).nonzero().flatten()
        rcfg = RenderConfig(shading="normal" if kind == 2 else "diffuse", normals="flat", background=(0.0, 0.0, 0.0))
        for s in range(0, len(idx), batch):
            part = idx[s : s + batch]
            out = render(v, f, cams[part], hi, rcfg, light_positions=lights[part] if kind == 1 else None)
            grey = out["image"].mean(-1, keepdim=True)  # channels are equal unless normal-shaded
            small = F.interpolate(grey.permute(0, 3, 1, 2), size=(cfg.image_size, cfg.image_size), mode="bilinear",
                                  align_corners=False, antialias=cfg.supersample > 1)
            images[part] = small[:, 0].clamp(0, 1)
    view = torch.tensor([VIEW_NAMES.index(d) for d in view_directions(cams)], dtype=torch.int8)
    return {"images": images.numpy(), "elevation": cams.elevation.numpy(), "azimuth": cams.azimuth.numpy(),
            "view": view.numpy(), "light": kinds.to(torch.int8).numpy()}
