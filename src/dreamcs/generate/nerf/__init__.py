"""The implicit volume geometry (DreamFusion's NeRF, Magic3D's coarse stage): a density + albedo
field rendered by volume rendering, with an occupancy grid that skips empty space, and a mesh
extracted differentiably by marching tets at an iso-level of the density (for the 3D reward).

    field = NeRFField(cfg.geometry, cfg.nerf)            # geometry.name: nerf
    out = render_volume(field, cameras, 64, shading="textureless")   # image, alpha, normals, ...
    verts, faces = field()                                # marching tets on threshold - density

Modules: ``field`` (density + albedo, NeRFConfig), ``occupancy`` (the grid that skips empty space),
``volume_render`` (the renderer, torch reference), ``accel`` (nerfacc as the optional sampler,
``nerf.backend``), ``step`` (one pipeline step).
"""

from dreamcs.generate.nerf.field import NeRFConfig, NeRFField
from dreamcs.generate.nerf.occupancy import OccupancyGrid
from dreamcs.generate.nerf.volume_render import render_volume

__all__ = ["NeRFConfig", "NeRFField", "OccupancyGrid", "render_volume"]
