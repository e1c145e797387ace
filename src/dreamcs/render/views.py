"""Thumbnails and turntables: a mesh to uint8 images or a PNG strip."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from dreamcs.render.cameras import DEFAULT_FOV, turntable
from dreamcs.render.renderer import RenderConfig, make_config, render
from dreamcs.utils import atomic_write_bytes


def framing_distance(radius: float, fov: float, margin: float = 1.08) -> float:
    """Camera distance at which a bounding sphere of ``radius`` fits a ``fov``-degree view (with a margin)."""
    return margin * radius / math.sin(math.radians(fov) / 2.0)


@torch.no_grad()
def render_views(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    n_views: int = 8,
    resolution: int = 128,
    *,
    elevation: float = 20.0,
    distance: float | None = None,
    fov: float = DEFAULT_FOV,
    config: RenderConfig | None = None,
    batch: int = 8,
    colors: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """(N, H, W, 3) uint8 views of a mesh (vertices (V, 3), faces (F, 3)) around a turntable.

    View 0 looks at the front (azimuth 0). ``distance=None`` frames the whole mesh: the camera
    looks at the centre of its bounding box from where its bounding sphere fills the view; a
    number keeps the mesh where it is and the camera at that distance from the origin.
    ``colors`` (V, 3) in [0, 1]: per-vertex colours, lit by the headlight (``lambertian``).
    """
    v = torch.as_tensor(
        np.asarray(vertices, dtype=np.float32) if isinstance(vertices, np.ndarray) else vertices
    )
    f = torch.as_tensor(np.asarray(faces, dtype=np.int64) if isinstance(faces, np.ndarray) else faces)
    v, f = v.detach().float(), f.long().to(v.device)
    if distance is None:
        if v.shape[0]:
            centre = (v.min(0).values + v.max(0).values) / 2
            v = v - centre  # cameras look at the origin: move the mesh, not the cameras
            radius = float(v.norm(dim=1).max())
        else:
            radius = 1.0
        distance = max(framing_distance(max(radius, 1e-3), fov), 1e-2)
    cams = turntable(n_views, elevation=elevation, distance=distance, fov=fov)
    albedo = None
    if colors is not None:
        albedo = torch.as_tensor(np.asarray(colors, np.float32) if isinstance(colors, np.ndarray) else colors)
        albedo = albedo.detach().float().to(v.device)
        if albedo.shape != v.shape:
            raise ValueError(f"colors must be (V, 3) = {tuple(v.shape)}, got {tuple(albedo.shape)}")
        config = make_config(config, shading="lambertian")
    out = []
    for s in range(0, n_views, batch):
        img = render(v, f, cams[s : s + batch], resolution, config, albedo=albedo)["image"]
        out.append((img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy())
    return np.concatenate(out, 0) if out else np.zeros((0, resolution, resolution, 3), np.uint8)


def turntable_strip(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (H, N * W, 3): views side by side."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    return np.concatenate(list(images), axis=1)


def save_turntable_png(
    path: str | os.PathLike,
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    n_views: int = 8,
    resolution: int = 128,
    **kwargs,
) -> Path:
    """Render ``n_views`` turntable views and write them as one horizontal PNG strip (atomic)."""
    from PIL import Image

    strip = turntable_strip(render_views(vertices, faces, n_views, resolution, **kwargs))
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
