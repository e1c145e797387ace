"""Further synthetic defects (registered in ``dreamcs.data.defects.DEFECTS``), graded by ``severity``.

Same contract as ``dreamcs.data.defects``: ``(mesh, rng, severity) -> mesh`` on a mesh in
[-1, 1]^3, y up; all randomness from ``rng``; ``severity`` in [0, 1] (``None``: drawn from ``rng``
between 0.4 and 0.9).

- ``oversmooth``: details washed out by Laplacian smoothing (no sagging, unlike ``melted``).
- ``thin_shell``: the volume collapses onto its local mid-surface along one axis: the silhouette is
  kept, the body becomes a double-sided sheet (a DMTet field that thins out).
- ``duplicate_parts``: a piece of the surface copied, turned and stuck on elsewhere (an extra limb).
- ``missing_parts``: whole parts gone: small disconnected parts of a multi-part object dropped, or a
  ball around an extremity torn away on a single-piece object.
- ``cracks``: thin slits across the surface (bands of faces along random plane sections removed).
- ``bloating``: the surface pushed out along its normals (puffy, thin parts thickened).
- ``topo_noise``: spurious handles (small tori) and blobs stuck into the surface (wrong genus).
"""

from __future__ import annotations

import numpy as np
import trimesh

from dreamcs.data.defects import DEFECTS, _mesh, _refine, smooth


def _sev(rng: np.random.Generator, severity: float | None) -> float:
    return float(rng.uniform(0.4, 0.9)) if severity is None else float(np.clip(severity, 0.0, 1.0))


def _welded(mesh: trimesh.Trimesh, min_faces: int) -> trimesh.Trimesh:
    """A refined copy with shared vertices (so that smoothing and normals see one surface)."""
    m = _refine(mesh, min_faces=min_faces)
    m.merge_vertices()
    return m


def _vertex_normals(m: trimesh.Trimesh) -> np.ndarray:
    n = np.zeros_like(m.vertices)
    fn = m.face_normals * m.area_faces[:, None]
    for k in range(3):
        np.add.at(n, m.faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@DEFECTS.register("oversmooth")
def oversmooth(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    s = _sev(rng, severity)
    m = _welded(mesh, 2500)
    smooth(m, 0.6, int(round(5 + 55 * s)))
    return _mesh(m.vertices, m.faces)


@DEFECTS.register("thin_shell")
def thin_shell(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    from scipy.spatial import cKDTree

    s = _sev(rng, severity)
    m = _welded(mesh, 1500)
    v = np.array(m.vertices)
    ext = np.ptp(v, axis=0)
    axis = int(rng.choice([a for a in range(3) if ext[a] > 0.3 * ext.max()]))
    other = [a for a in range(3) if a != axis]
    # local mid-surface: the mean coordinate along `axis` of the vertices in the same column
    tree = cKDTree(v[:, other])
    nbrs = tree.query_ball_point(v[:, other], r=0.12)
    mid = np.array([v[idx, axis].mean() for idx in nbrs])
    v[:, axis] = mid + (v[:, axis] - mid) * (1.0 - 0.97 * (0.3 + 0.7 * s))
    return _mesh(v, m.faces)


def _region(m: trimesh.Trimesh, rng: np.random.Generator, radius: float) -> np.ndarray:
    """Face indices within ``radius`` of a random face centre (a surface 'part')."""
    c = m.triangles_center
    seed = c[rng.integers(len(c))]
    return np.flatnonzero(np.linalg.norm(c - seed, axis=1) < radius)


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return trimesh.transformations.rotation_matrix(np.deg2rad(rng.uniform(-max_deg, max_deg)), axis)[:3, :3]


@DEFECTS.register("duplicate_parts")
def duplicate_parts(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    s = _sev(rng, severity)
    m = _refine(mesh, min_faces=1500)
    parts_v, parts_f, off = [np.asarray(m.vertices)], [np.asarray(m.faces)], len(m.vertices)
    for _ in range(1 + int(round(2 * s))):
        sel = _region(m, rng, 0.2 + 0.25 * s)
        if len(sel) < 4:
            continue
        f = m.faces[sel]
        used, inv = np.unique(f, return_inverse=True)
        pv = m.vertices[used]
        ctr = pv.mean(axis=0)
        shift = rng.normal(size=3)
        shift *= (0.15 + 0.35 * s) / np.linalg.norm(shift)
        pv = (pv - ctr) @ _rotation(rng, 60.0).T + ctr + shift
        parts_v.append(pv)
        parts_f.append(inv.reshape(-1, 3) + off)
        off += len(pv)
    return _mesh(np.vstack(parts_v), np.vstack(parts_f))


@DEFECTS.register("missing_parts")
def missing_parts(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    s = _sev(rng, severity)
    m = _refine(mesh, min_faces=1500)
    labels = trimesh.graph.connected_component_labels(m.face_adjacency, node_count=len(m.faces))
    areas = np.bincount(labels, weights=m.area_faces)
    share = 0.1 + 0.3 * s  # of the surface area to remove
    keep = np.ones(len(m.faces), dtype=bool)
    main = int(np.argmax(areas))
    if len(areas) >= 3 and areas.sum() - areas[main] >= share * areas.sum():
        gone = 0.0
        for k in rng.permutation(len(areas)):
            if k == main or gone >= share * areas.sum():
                continue
            keep &= labels != k
            gone += areas[k]
    else:  # one piece: tear off an extremity (a ball around a far point) of the requested share
        c = m.triangles_center
        far = np.argsort(np.linalg.norm(c - c.mean(axis=0), axis=1))[-max(1, len(c) // 10):]
        d = np.linalg.norm(c - c[far[rng.integers(len(far))]], axis=1)
        order = np.argsort(d)
        cum = np.cumsum(m.area_faces[order])
        keep[order[: int(np.searchsorted(cum, share * cum[-1])) + 1]] = False
    if keep.sum() < 4:
        keep[:] = True
        keep[: len(keep) // 3] = False
    return _mesh(m.vertices, m.faces[keep])


@DEFECTS.register("cracks")
def cracks(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    s = _sev(rng, severity)
    m = _refine(mesh, min_faces=4000, cap=16000)
    c = m.triangles_center
    edge = float(np.sqrt(m.area_faces.mean() * 2.3))  # the typical edge length
    keep = np.ones(len(m.faces), dtype=bool)
    for _ in range(1 + int(round(3 * s))):
        p = c[rng.integers(len(c))]
        n = rng.normal(size=3)
        n /= np.linalg.norm(n)
        band = np.abs((c - p) @ n) < max(0.5 * edge, 0.004 + 0.012 * s)
        near = np.linalg.norm(c - p, axis=1) < 0.25 + 0.6 * s
        keep &= ~(band & near)
    if keep.sum() < 0.5 * len(keep):
        keep[:] = True
    return _mesh(m.vertices, m.faces[keep])


@DEFECTS.register("bloating")
def bloating(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    s = _sev(rng, severity)
    m = _welded(mesh, 2500)
    v = m.vertices + _vertex_normals(m) * (0.03 + 0.12 * s) * rng.uniform(0.9, 1.1)
    m = _mesh(v, m.faces)
    return smooth(m, 0.5, int(round(2 + 6 * s)))


@DEFECTS.register("topo_noise")
def topo_noise(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    s = _sev(rng, severity)
    m = _refine(mesh, min_faces=1000)
    pts, fid = trimesh.sample.sample_surface(m, 64, seed=int(rng.integers(2**31)))
    normals = m.face_normals[fid]
    parts_v, parts_f, off = [np.asarray(m.vertices)], [np.asarray(m.faces)], len(m.vertices)
    for k in range(2 + int(round(8 * s))):
        j = int(rng.integers(len(pts)))
        r = rng.uniform(0.03, 0.05 + 0.05 * s)
        if k % 2 == 0:  # a handle: a torus standing on the surface, half sunk into it
            t = trimesh.creation.torus(major_radius=r, minor_radius=0.3 * r, major_sections=16, minor_sections=6)
            z = np.array([0.0, 0.0, 1.0])
            rot = trimesh.geometry.align_vectors(z, np.cross(normals[j], rng.normal(size=3)) + 1e-9)[:3, :3]
            bv = t.vertices @ rot.T + pts[j]
            bf = t.faces
        else:  # a blob half sunk into the surface
            b = trimesh.creation.icosphere(subdivisions=1, radius=r)
            bv = b.vertices * rng.uniform(0.7, 1.3, size=3) + pts[j] + 0.3 * r * normals[j]
            bf = b.faces
        parts_v.append(bv)
        parts_f.append(bf + off)
        off += len(bv)
    return _mesh(np.vstack(parts_v), np.vstack(parts_f))
