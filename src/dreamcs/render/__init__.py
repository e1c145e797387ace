"""Rendering shared by every stage: cameras, a differentiable rasteriser in plain torch, thumbnails.

from dreamcs.render import render, sample_cameras, render_views
out = render(vertices, faces, sample_cameras(4), resolution=64)  # out["image"] (4, 64, 64, 3)
"""

from dreamcs.render.cameras import (
    DEFAULT_DISTANCE,
    DEFAULT_FOV,
    VIEW_NAMES,
    Cameras,
    sample_cameras,
    turntable,
    view_directions,
    view_prompts,
    view_suffixes,
)
from dreamcs.render.raster import Fragments
from dreamcs.render.renderer import (
    RenderConfig,
    face_normals,
    make_config,
    rasterize,
    render,
    shade,
    vertex_normals,
)
from dreamcs.render.views import render_views, save_turntable_png, turntable_strip

__all__ = [
    "DEFAULT_DISTANCE",
    "DEFAULT_FOV",
    "VIEW_NAMES",
    "Cameras",
    "Fragments",
    "RenderConfig",
    "face_normals",
    "make_config",
    "rasterize",
    "render",
    "render_views",
    "sample_cameras",
    "save_turntable_png",
    "shade",
    "turntable",
    "turntable_strip",
    "vertex_normals",
    "view_directions",
    "view_prompts",
    "view_suffixes",
]
