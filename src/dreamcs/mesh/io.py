"""Reading and writing meshes: any supported file to one clean triangle mesh.

``load_mesh`` is the single entry point every stage uses. It accepts OBJ, PLY (ASCII, binary, and
triangle strips, which trimesh itself reads as a point cloud), OFF, STL and GLB/GLTF (scenes are
flattened with their node transforms). The result is a plain ``trimesh.Trimesh`` holding geometry
only (materials, UVs and colours are dropped), with:

- quads and n-gons triangulated (fan triangulation, as trimesh does on load);
- duplicate vertices merged (trimesh's ``merge_vertices`` on positions alone);
- degenerate faces (repeated vertex or zero height) and duplicate faces dropped;
- unreferenced vertices removed.

Anything that cannot become such a mesh raises ``MeshError`` naming the file and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from dreamcs.mesh.errors import MeshError
from dreamcs.mesh.ply import read_ply
from dreamcs.utils import atomic_write_bytes

#: File extensions ``load_mesh`` reads (lower case, with the dot).
MESH_EXTENSIONS: tuple[str, ...] = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")
#: File extensions ``save_mesh`` writes.
SAVE_EXTENSIONS: tuple[str, ...] = (".obj", ".ply", ".glb", ".off", ".stl")


def is_mesh_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has one of the extensions ``load_mesh`` reads."""
    return Path(path).suffix.lower() in MESH_EXTENSIONS


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Load a mesh file as one cleaned, triangulated ``trimesh.Trimesh``.

    Returns a mesh with ``vertices (V, 3) float64`` and ``faces (F, 3) int64``; F >= 1 and every
    coordinate finite. ``mesh.metadata["file_path"]`` holds the source path. Raises ``MeshError``
    for missing files, directories, unknown extensions, empty or unreadable files, files without
    faces, and NaN or infinite coordinates.
    """
    p = Path(path)
    if not p.exists():
        raise MeshError(p, "file not found")
    if p.is_dir():
        raise MeshError(p, "is a directory, not a mesh file")
    ext = p.suffix.lower()
    if ext not in MESH_EXTENSIONS:
        raise MeshError(p, f"unknown mesh format {ext or '(no extension)'!r}; expected one of {', '.join(MESH_EXTENSIONS)}")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise MeshError(p, f"cannot read file: {exc}") from exc
    if size == 0:
        raise MeshError(p, "empty file")

    vertices, faces = _read_raw(p, ext)
    return _clean(p, vertices, faces)


def _read_raw(p: Path, ext: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``p`` to flat ``vertices (V, 3)``, ``faces (F, 3)``, with scene transforms baked in."""
    try:
        if ext == ".ply" and _ply_has_tristrips(p):
            return read_ply(p)
        try:
            scene = trimesh.load_scene(str(p), file_type=ext[1:], process=False, skip_materials=True)
        except Exception:
            if ext != ".ply":
                raise
            # trimesh's binary PLY reader fails on mixed polygon sizes; ours reads them.
            return read_ply(p)
        parts = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    except MeshError:
        raise
    except MemoryError as exc:
        raise MeshError(p, "unreadable file: out of memory while parsing") from exc
    except Exception as exc:  # trimesh raises many types on malformed input
        raise MeshError(p, f"unreadable {ext[1:].upper()} file: {type(exc).__name__}: {exc}") from exc
    if not parts:
        raise MeshError(p, "no faces found (not a mesh, or only points/lines)")
    vs, fs, offset = [], [], 0
    for g in parts:
        v = np.asarray(g.vertices, dtype=np.float64).reshape(-1, 3)
        f = np.asarray(g.faces, dtype=np.int64).reshape(-1, 3)
        vs.append(v)
        fs.append(f + offset)
        offset += len(v)
    return np.concatenate(vs), np.concatenate(fs)


def _ply_has_tristrips(p: Path) -> bool:
    """True when the PLY header declares a ``tristrips`` element (which trimesh does not read)."""
    with open(p, "rb") as f:
        head = f.read(1 << 16)  # headers with long comment blocks still fit
    end = head.find(b"end_header")
    return b"element tristrips" in (head if end < 0 else head[:end])


def _clean(p: Path, vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """Validate and clean raw arrays with trimesh's own functions."""
    if len(faces) == 0:
        raise MeshError(p, "no faces found")
    if len(vertices) == 0:
        raise MeshError(p, "faces but no vertices")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(p, f"face index out of range (vertex count {len(vertices)})")
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        raise MeshError(p, f"NaN or infinite coordinates in {int(bad.sum())} of {len(vertices)} vertices")
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise MeshError(p, "no faces left after dropping degenerate and duplicate faces")
    mesh.metadata["file_path"] = str(p)
    return mesh


def save_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` atomically; the format follows the extension (.obj, .ply, .glb, .off, .stl).

    PLY is written binary. A killed process leaves the previous file or the new one, never half.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in SAVE_EXTENSIONS:
        raise MeshError(p, f"cannot save format {ext or '(no extension)'!r}; expected one of {', '.join(SAVE_EXTENSIONS)}")
    data = mesh.export(file_type=ext[1:])
    if isinstance(data, str):
        data = data.encode("utf-8")
    return atomic_write_bytes(p, data)
