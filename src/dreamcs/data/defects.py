"""Synthetic defects: dispreferred meshes made the way early SDS runs fail.

Each defect is a function ``(mesh, rng) -> mesh`` on a mesh normalised into [-1, 1]^3 (y up, the
front facing +z); the result is re-normalised by the build. All randomness comes from ``rng``, so a
given (mesh, defect, seed) always gives the same output.

- ``janus``: the front half kept, and a mirrored, slightly rotated copy of it fused onto the back
  (the multi-face "Janus" problem), with an unwelded, interpenetrating seam.
- ``floaters``: small detached blobs hovering around the object (density-field floaters).
- ``holes``: several patches of the surface torn out.
- ``incomplete``: a large part cut away by a plane (a missing part / unfinished shape).
- ``noise``: the surface made bumpy (random displacement on a refined mesh).
- ``melted``: over-smoothed (heavy Laplacian smoothing on a refined mesh) and sagging under gravity.
- ``flatten``: squashed along one axis to a nearly flat sheet.
A wrong prompt (another object's caption) is a sixth failure that leaves the mesh alone; it is made
in ``dreamcs.data.embedded``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from dreamcs.registry import Registry

DEFECTS: Registry = Registry("defect")
DefectFn = Callable[[trimesh.Trimesh, np.random.Generator], trimesh.Trimesh]


def _mesh(v: np.ndarray, f: np.ndarray) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices=np.asarray(v, dtype=np.float64), faces=np.asarray(f, dtype=np.int64), process=False)


def _refine(mesh: trimesh.Trimesh, min_faces: int = 2000, cap: int = 8000) -> trimesh.Trimesh:
    """Midpoint-subdivide (keeps the shape) until the surface can bend: >= min_faces, <= cap faces."""
    m = _mesh(mesh.vertices, mesh.faces)
    m.merge_vertices()
    v, f = m.vertices, m.faces
    while len(f) < min_faces and 4 * len(f) <= cap:
        v, f = trimesh.remesh.subdivide(v, f)
    return _mesh(v, f)


def _rot_y(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


@DEFECTS.register("janus")
def janus(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    front = f[v[f].mean(axis=1)[:, 2] >= 0.0]
    if len(front) < 4:  # nothing in front: fuse a turned copy of the whole object instead
        front = f
    mirrored = v * np.array([1.0, 1.0, -1.0])
    angle = rng.uniform(8.0, 25.0) * rng.choice([-1.0, 1.0])
    back_v = (mirrored @ _rot_y(angle).T) * rng.uniform(0.9, 1.05) + np.array([0.0, rng.uniform(-0.05, 0.05), -0.08])
    back_f = front[:, ::-1] + len(v)  # mirroring flips the winding; flip it back
    return _mesh(np.vstack([v, back_v]), np.vstack([front, back_f]))


@DEFECTS.register("floaters")
def floaters(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    from scipy.spatial import cKDTree

    tree = cKDTree(np.vstack([mesh.vertices, mesh.triangles_center]))
    parts_v, parts_f, off = [np.asarray(mesh.vertices)], [np.asarray(mesh.faces)], len(mesh.vertices)
    n, tries = int(rng.integers(4, 9)), 0
    while n > 0 and tries < 500:
        tries += 1
        c = rng.uniform(-1.1, 1.1, size=3)
        r = rng.uniform(0.04, 0.1)
        if tree.query(c)[0] < r + 0.15:
            continue  # must hover, not touch
        blob = trimesh.creation.icosphere(subdivisions=1, radius=r)
        bv = blob.vertices * rng.uniform(0.6, 1.4, size=3) + c
        parts_v.append(bv)
        parts_f.append(blob.faces + off)
        off += len(bv)
        n -= 1
    return _mesh(np.vstack(parts_v), np.vstack(parts_f))


@DEFECTS.register("holes")
def holes(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=1500)
    centers = m.triangles_center
    keep = np.ones(len(m.faces), dtype=bool)
    for _ in range(int(rng.integers(3, 7))):
        seed = centers[rng.integers(len(centers))]
        keep &= np.linalg.norm(centers - seed, axis=1) > rng.uniform(0.2, 0.35)
    if keep.sum() < 0.3 * len(keep):  # never tear away almost everything
        keep = np.ones(len(keep), dtype=bool)
        keep[rng.choice(len(keep), size=len(keep) // 3, replace=False)] = False
    return _mesh(m.vertices, m.faces[keep])


@DEFECTS.register("incomplete")
def incomplete(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=1500)
    normal = rng.normal(size=3)
    normal /= np.linalg.norm(normal)
    d = m.triangles_center @ normal
    cut = np.quantile(d, rng.uniform(0.55, 0.7))  # drop the top 30-45% along a random direction
    return _mesh(m.vertices, m.faces[d <= cut])


@DEFECTS.register("noise")
def noise(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=3000)
    sigma = rng.uniform(0.012, 0.025)
    return _mesh(m.vertices + rng.normal(scale=sigma, size=m.vertices.shape), m.faces)


@DEFECTS.register("melted")
def melted(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=2500)
    trimesh.smoothing.filter_laplacian(m, lamb=0.9, iterations=int(rng.integers(40, 80)), volume_constraint=False)
    v = np.array(m.vertices)
    # sag: points sink towards the floor, more the higher they are
    lo = v[:, 1].min()
    v[:, 1] = lo + (v[:, 1] - lo) * rng.uniform(0.45, 0.65)
    v[:, [0, 2]] *= 1.0 + 0.3 * (1.0 - (v[:, 1:2] - lo) / max(np.ptp(v[:, 1]), 1e-9))
    return _mesh(v, m.faces)


@DEFECTS.register("flatten")
def flatten(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    v = np.array(mesh.vertices)
    ext = np.ptp(v, axis=0)
    axis = int(rng.choice([a for a in range(3) if ext[a] > 0.3 * ext.max()]))  # squash a real dimension
    v[:, axis] *= rng.uniform(0.005, 0.025)
    return _mesh(v, mesh.faces)


def apply_defect(mesh: trimesh.Trimesh, name: str, seed: int) -> trimesh.Trimesh:
    """``DEFECTS[name]`` applied with a generator seeded by ``seed``; degenerate faces removed."""
    fn: DefectFn = DEFECTS.get(name)
    out = fn(mesh, np.random.default_rng(seed))
    out.update_faces(out.nondegenerate_faces())
    out.remove_unreferenced_vertices()
    return out
