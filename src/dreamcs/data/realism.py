"""Clean variants that look like real meshes: label-preserving changes, so that "open" or "made of
unwelded pieces" stops standing in for "damaged".

Real scans and CAD models (the held-out Greg Turk set, much of Objaverse) are clean yet open at the
base, and made of pieces that meet without sharing vertices; the synthetic defects (holes, cracks,
cut-away parts) also open a mesh. A reward trained on closed procedural objects beside opened
defective copies learns "any boundary = bad" (docs/teacher-eval.md found the geometric teacher
doing the same). These variants give it clean meshes whose boundaries run straight, along creases
or a cut plane, as they do on real objects; torn-out faces leave ragged loops instead.

Each variant is ``(mesh, rng) -> mesh`` on a mesh normalised into [-1, 1]^3 (y up); all randomness
comes from ``rng``.

- ``open_base``: a thin slice at the bottom cut off by one horizontal plane (a scan's open
  underside, or the open ends of a chair's legs).
- ``unweld``: the surface split into its smooth regions along sharp creases (dihedral > 40 deg),
  each region with its own vertices, moved apart by a hair (1e-4 of the extent) so that no exact
  duplicate is merged again: a CAD model's separately modelled faces and parts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from dreamcs.registry import Registry

REALISM: Registry = Registry("realism variant")
RealismFn = Callable[[trimesh.Trimesh, np.random.Generator], trimesh.Trimesh]
#: a crease between two smooth regions (degrees); lower splits rounded CAD surfaces into slivers
CREASE_DEG = 40.0


def _mesh(v: np.ndarray, f: np.ndarray) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices=np.asarray(v, dtype=np.float64), faces=np.asarray(f, dtype=np.int64), process=False)


@REALISM.register("open_base")
def open_base(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """Slice off the bottom 2-6% of the height along one horizontal plane (triangles cut through, so
    the new boundary runs straight, as a scanner's cut does; removing whole faces would leave the
    zig-zag loop of a torn-out region)."""
    y0, y1 = float(mesh.bounds[0, 1]), float(mesh.bounds[1, 1])
    cut = y0 + rng.uniform(0.02, 0.06) * (y1 - y0)
    out = trimesh.intersections.slice_faces_plane(
        np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), plane_normal=np.array([0.0, 1.0, 0.0]),
        plane_origin=np.array([0.0, cut, 0.0]))
    v, f = out[0], out[1]
    if len(f) < 0.5 * len(mesh.faces):  # a flat object would lose too much
        return mesh
    m = _mesh(v, f)
    m.merge_vertices()  # the cut makes a vertex per cut edge and face: weld the copies
    m.remove_unreferenced_vertices()
    return m


@REALISM.register("unweld")
def unweld(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """Split along creases into regions with their own vertices, each nudged by <= 1e-4 of the extent."""
    n_faces = len(mesh.faces)
    adj = mesh.face_adjacency
    smooth = mesh.face_adjacency_angles < np.radians(CREASE_DEG)
    groups = trimesh.graph.connected_components(adj[smooth], nodes=np.arange(n_faces), min_len=1)
    if len(groups) < 2:
        return mesh
    label = np.empty(n_faces, dtype=np.int64)
    for g, faces in enumerate(groups):
        label[faces] = g
    # one vertex copy per (vertex, region) pair
    corner_v = mesh.faces.reshape(-1)
    corner_g = np.repeat(label, 3)
    keys, inverse = np.unique(corner_v * len(groups) + corner_g, return_inverse=True)
    src_v, src_g = keys // len(groups), keys % len(groups)
    extent = float(np.ptp(mesh.vertices, axis=0).max())
    nudge = rng.normal(size=(len(groups), 3))
    nudge *= 1e-4 * extent / np.maximum(np.linalg.norm(nudge, axis=1, keepdims=True), 1e-12)
    v = mesh.vertices[src_v] + nudge[src_g]
    return _mesh(v, inverse.reshape(-1, 3))


def apply_realism(mesh: trimesh.Trimesh, name: str, seed: int) -> trimesh.Trimesh:
    """Variant ``name`` of ``mesh`` with a generator seeded by ``seed`` (unknown names: KeyError)."""
    return REALISM.get(name)(mesh, np.random.default_rng(seed))
