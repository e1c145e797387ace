"""Normalisation and simplification of triangle meshes.

Axis convention (shared by every dreamcs stage): **y is up**, objects sit in [-1, 1]^3, and faces
wind counter-clockwise seen from outside. ``normalize`` does not guess orientation: a z-up file
stays z-up unless the caller says ``up="z"``, which rotates it so that +z becomes +y.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import trimesh

from dreamcs.mesh.errors import MeshError

# Rotation of -90 degrees about x: +z -> +y, +y -> -z (right-handed, winding preserved).
_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _label(mesh: trimesh.Trimesh) -> str:
    return str(mesh.metadata.get("file_path", "<mesh>")) if hasattr(mesh, "metadata") else "<mesh>"


def normalize(mesh: trimesh.Trimesh, up: Literal["y", "z"] = "y") -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale its longest side to 2.

    Returns a new mesh (the input is not modified) whose vertices lie in [-1, 1]^3 with at least
    one axis spanning exactly [-1, 1]. ``up="z"`` first rotates a z-up mesh into dreamcs's y-up
    frame. A mesh with zero extent (all vertices in one point) or non-finite coordinates raises
    ``MeshError``. The scale and offset used are stored in ``metadata["normalize"]`` so that
    ``v_original = v_normalised / scale + center`` (before any ``up`` rotation).
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if len(v) == 0:
        raise MeshError(_label(mesh), "cannot normalise a mesh without vertices")
    if not np.isfinite(v).all():
        raise MeshError(_label(mesh), "cannot normalise: NaN or infinite coordinates")
    lo, hi = v.min(axis=0), v.max(axis=0)
    extent = float((hi - lo).max())
    if not extent > 0.0:
        raise MeshError(_label(mesh), "cannot normalise a mesh of zero extent (all vertices coincide)")
    center = (lo + hi) / 2.0
    scale = 2.0 / extent
    out_v = (v - center) * scale
    if up == "z":
        out_v = out_v @ _Z_UP_TO_Y_UP.T
    elif up != "y":
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    # Clip the last ulp so that rounding can never leave [-1, 1].
    out_v = np.clip(out_v, -1.0, 1.0)
    out = trimesh.Trimesh(vertices=out_v, faces=np.asarray(mesh.faces).copy(), process=False, validate=False)
    out.metadata.update(mesh.metadata)
    out.metadata["normalize"] = {"center": center.tolist(), "scale": scale, "up": up}
    return out


def simplify(mesh: trimesh.Trimesh, max_faces: int = 16384, agg: float = 7.0) -> trimesh.Trimesh:
    """Reduce ``mesh`` to at most ``max_faces`` faces by quadric edge collapse (fast-simplification).

    A mesh with ``len(mesh.faces) <= max_faces`` is returned unchanged: the *same object*, not a
    copy. Otherwise a new mesh is returned with ``len(faces) <= max_faces`` (QEM usually lands on
    the target exactly or a few faces under it), degenerate and unreferenced parts removed.
    ``agg`` is fast-simplification's aggressiveness (lower keeps shape better, may stop early).
    """
    import fast_simplification

    if max_faces < 1:
        raise ValueError(f"max_faces must be >= 1, got {max_faces}")
    n = len(mesh.faces)
    if n <= max_faces:
        return mesh
    v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    f = np.ascontiguousarray(mesh.faces, dtype=np.int32)
    target = max_faces
    # QEM can stop a little above the target (it cannot collapse some edges); ask for less and retry.
    for _ in range(6):
        v2, f2 = fast_simplification.simplify(v, f, target_count=target, agg=agg)
        out = trimesh.Trimesh(vertices=v2, faces=f2, process=False, validate=False)
        out.update_faces(out.nondegenerate_faces())
        out.remove_unreferenced_vertices()
        if len(out.faces) <= max_faces:
            break
        target = max(1, target - (len(out.faces) - max_faces) - max(1, max_faces // 100))
    else:
        # Last resort: drop the smallest faces so the count bound always holds.
        keep = np.sort(np.argsort(out.area_faces)[::-1][:max_faces])
        out.update_faces(keep)
        out.remove_unreferenced_vertices()
    out.metadata.update(mesh.metadata)
    return out
