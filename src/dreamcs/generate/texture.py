"""Bake a colour field into a UV texture: xatlas unwraps the mesh, the project's rasteriser finds
the triangle under each texel, and the field is read at that texel's surface point.

    mesh = bake_texture(verts, faces, field.albedo, size=1024)    # a trimesh with TextureVisuals
    write_textured(mesh, run_dir / "textured")                   # textured.obj + .mtl + .png, .glb

Needs the optional ``xatlas`` package (``pip install dreamcs[texture]``), imported when called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamcs.render.raster import _cross2, rasterize_face_ids
from dreamcs.utils import atomic_write_bytes


def unwrap(verts: np.ndarray, faces: np.ndarray, size: int = 1024, padding: int = 2) -> tuple[np.ndarray, ...]:
    """xatlas charts packed for a ``size`` texture with ``padding`` texels between them: (new vertex
    -> old vertex (N,), faces (F, 3) into the new vertices, uv (N, 2) in [0, 1])."""
    try:
        import xatlas
    except ImportError as e:
        raise ImportError("baking a UV texture needs the xatlas package: pip install 'dreamcs[texture]'") from e
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(verts, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.bilinear = int(size), int(padding), True
    atlas.generate(pack_options=pack)
    vmap, idx, uv = atlas[0]
    return vmap.astype(np.int64), idx.astype(np.int64), uv.astype(np.float32)


@torch.no_grad()
def bake_texture(
    verts: torch.Tensor,
    faces: torch.Tensor,
    albedo: Callable[[torch.Tensor], torch.Tensor],
    size: int = 1024,
    chunk: int = 1 << 18,
) -> Any:
    """A ``trimesh.Trimesh`` (vertices split along UV seams) whose texture is ``albedo`` baked at
    ``size`` x ``size``: verts (V, 3), faces (F, 3), albedo: world points (N, 3) -> colours (N, 3)."""
    import trimesh
    from PIL import Image
    from scipy import ndimage

    if faces.shape[0] == 0:
        raise ValueError("cannot bake a texture for a mesh without faces")
    v_np = verts.detach().cpu().numpy()
    vmap, new_faces, uv = unwrap(v_np, faces.detach().cpu().numpy(), size)
    dev = verts.device
    uv_t = torch.from_numpy(uv).to(dev)
    f_t = torch.from_numpy(new_faces).to(dev)
    # texel (row, col) has its centre at uv ((col + 0.5) / size, 1 - (row + 0.5) / size): v points up
    screen = torch.stack([uv_t[:, 0] * size - 0.5, (1.0 - uv_t[:, 1]) * size - 0.5], 1)
    face_id = rasterize_face_ids(screen, torch.ones(uv_t.shape[0], device=dev), f_t, size, size)
    texels = (face_id.reshape(-1) >= 0).nonzero().squeeze(1)
    fid = face_id.reshape(-1)[texels]
    p = torch.stack([texels % size, texels // size], 1).to(screen.dtype)
    tri = screen[f_t[fid]]  # (T, 3, 2)
    e1, e2, d = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], p - tri[:, 0]
    den = _cross2(e1, e2)
    den = torch.where(den.abs() < 1e-12, torch.full_like(den, 1e-12), den)
    b1, b2 = _cross2(d, e2) / den, _cross2(e1, d) / den
    bary = torch.stack([1 - b1 - b2, b1, b2], 1).clamp(0, 1)
    bary = bary / bary.sum(1, keepdim=True).clamp_min(1e-12)
    world = verts.detach()[torch.from_numpy(vmap).to(dev)[f_t[fid]]]  # (T, 3, 3)
    points = (bary.unsqueeze(-1) * world).sum(1)
    colours = torch.cat([albedo(points[i : i + chunk]).float().clamp(0, 1) for i in range(0, points.shape[0], chunk)])
    image = np.zeros((size * size, 3), np.float32)
    image[texels.cpu().numpy()] = colours.cpu().numpy()
    image = image.reshape(size, size, 3)
    # fill the empty texels with the nearest baked one, so bilinear lookups at chart seams stay clean
    empty = (face_id < 0).cpu().numpy()
    if empty.any() and not empty.all():
        _, (ri, ci) = ndimage.distance_transform_edt(empty, return_indices=True)
        image = image[ri, ci]
    png = Image.fromarray((image * 255.0 + 0.5).astype(np.uint8))
    visual = trimesh.visual.TextureVisuals(uv=uv, image=png)
    return trimesh.Trimesh(vertices=v_np[vmap], faces=new_faces, visual=visual, process=False)


def write_textured(mesh: Any, stem: str | Path) -> dict[str, Path]:
    """``stem.obj`` + ``stem.mtl`` + the texture PNG beside them, and ``stem.glb`` (texture embedded)."""
    from trimesh.exchange.obj import export_obj

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    text, files = export_obj(mesh, include_texture=True, return_texture=True, mtl_name=f"{stem.name}.mtl")
    paths = {"obj": atomic_write_bytes(stem.with_suffix(".obj"), text.encode("utf-8"))}
    for name, data in files.items():
        paths[Path(name).suffix.lstrip(".") or name] = atomic_write_bytes(stem.parent / name, data)
    paths["glb"] = atomic_write_bytes(stem.with_suffix(".glb"), mesh.export(file_type="glb"))
    return paths
