"""Thumbnails and turntables: a mesh to uint8 images or a PNG strip."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from dreamcs.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOV, turntable
from dreamcs.render.renderer import RenderConfig, render
from dreamcs.utils import atomic_write_bytes


@torch.no_grad()
def render_views(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    n_views: int = 8,
    resolution: int = 128,
    *,
    elevation: float = 20.0,
    distance: float = DEFAULT_DISTANCE,
    fov: float = DEFAULT_FOV,
    config: RenderConfig | None = None,
    batch: int = 8,
) -> np.ndarray:
    """(N, H, W, 3) uint8 views of a mesh (vertices (V, 3), faces (F, 3)) around a turntable.

    View 0 looks at the front (azimuth 0); the mesh is rendered as given (expected in [-1, 1]^3).
    """
    v = torch.as_tensor(
        np.asarray(vertices, dtype=np.float32) if isinstance(vertices, np.ndarray) else vertices
    )
    f = torch.as_tensor(np.asarray(faces, dtype=np.int64) if isinstance(faces, np.ndarray) else faces)
    v, f = v.detach().float(), f.long().to(v.device)
    cams = turntable(n_views, elevation=elevation, distance=distance, fov=fov)
    out = []
    for s in range(0, n_views, batch):
        img = render(v, f, cams[s : s + batch], resolution, config)["image"]
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
