"""Synthetic defects: dispreferred meshes made the way early SDS runs fail.

Each defect is a function ``(mesh, rng, severity) -> mesh`` on a mesh normalised into [-1, 1]^3
(y up, the front facing +z); the result is re-normalised by the build. All randomness comes from
``rng``, so a given (mesh, defect, seed, severity) always gives the same output. ``severity`` in
[0, 1] grades the damage (0: barely visible, 1: gross); ``None`` draws the magnitude from ``rng``
in the range the embedded set was built with (so that set stays as it was).

- ``janus``: the front half kept, and a mirrored, slightly rotated copy of it fused onto the back
  (the multi-face "Janus" problem), with an unwelded, interpenetrating seam.
- ``floaters``: small detached blobs hovering around the object (density-field floaters).
- ``holes``: several patches of the surface torn out.
- ``incomplete``: a large part cut away by a plane (a missing part / unfinished shape).
- ``noise``: the surface made bumpy (random displacement on a refined mesh).
- ``melted``: over-smoothed (heavy Laplacian smoothing on a refined mesh) and sagging under gravity.
- ``flatten``: squashed along one axis to a nearly flat sheet.
More kinds (over-smoothing, thin-shell collapse, duplicated and missing parts, cracks, bloating,
topological noise) are in ``dreamcs.data.defects_extra``. A wrong prompt (another object's caption)
is a failure that leaves the mesh alone; it is made by the item lists (``dreamcs.data.embedded``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from dreamcs.registry import Registry

DEFECTS: Registry = Registry("defect")
DefectFn = Callable[[trimesh.Trimesh, np.random.Generator, "float | None"], trimesh.Trimesh]
#: the defects the embedded preset draws from (fixed, so that adding kinds leaves that set alone)
EMBEDDED_DEFECTS = ("flatten", "floaters", "holes", "incomplete", "janus", "melted", "noise")


class DefectError(ValueError):
    """A defect that cannot be applied to this mesh (it would leave nothing usable)."""


def amount(rng: np.random.Generator, severity: float | None, lo: float, hi: float, s_lo: float | None = None, s_hi: float | None = None) -> float:
    """A magnitude: ``rng.uniform(lo, hi)`` when ``severity`` is None, else linear in severity
    from ``s_lo`` (severity 0) to ``s_hi`` (severity 1), which default to ``lo`` and ``hi``."""
    if severity is None:
        return float(rng.uniform(lo, hi))
    a, b = (lo if s_lo is None else s_lo), (hi if s_hi is None else s_hi)
    return float(a + float(np.clip(severity, 0.0, 1.0)) * (b - a))


def count(rng: np.random.Generator, severity: float | None, lo: int, hi: int, s_lo: int, s_hi: int) -> int:
    """An integer count: ``rng.integers(lo, hi)`` when ``severity`` is None, else rounded linear."""
    if severity is None:
        return int(rng.integers(lo, hi))
    return int(round(s_lo + float(np.clip(severity, 0.0, 1.0)) * (s_hi - s_lo)))


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


def densify(mesh: trimesh.Trimesh, min_faces: int) -> trimesh.Trimesh:
    """Midpoint-subdivide a mesh below ``min_faces`` faces until it has at least that many (at
    most 4x more; the shape is kept). Every refinement a defect asks for (``_refine``, at most
    4,000 faces with a cap of 16,000) is then a no-op, so clean and defective meshes share one density.
    Vertices are welded as ``_refine`` welds them, for the same reason."""
    return _refine(mesh, min_faces=min_faces, cap=4 * min_faces)


def smooth(m: trimesh.Trimesh, lamb: float, iterations: int) -> trimesh.Trimesh:
    """Laplacian smoothing in place, except that vertices with fewer than three neighbours (loose
    triangles of a triangle soup, e.g. leaves) keep their place instead of collapsing to a point."""
    before = np.array(m.vertices)
    trimesh.smoothing.filter_laplacian(m, lamb=lamb, iterations=iterations, volume_constraint=False)
    valence = np.bincount(m.edges_unique.ravel(), minlength=len(before))
    if (valence < 3).any():
        v = np.array(m.vertices)
        v[valence < 3] = before[valence < 3]
        m.vertices = v
    return m


def _rot_y(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


@DEFECTS.register("janus")
def janus(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    z = v[f].mean(axis=1)[:, 2]
    # severity grades how deep a slice of the front is copied: z >= c, c from half the front depth
    # (a small second face on the back) down to 0 (the whole front half, the embedded set's case)
    c = 0.0 if severity is None else 0.5 * (1.0 - severity) * max(float(z.max()), 0.0)
    front = f[z >= c]
    kept = f[z >= -c]  # the back region the copy replaces is gone
    if len(front) < 4:  # nothing in front: fuse a turned copy of the whole object instead
        front, kept = f, f
    mirrored = v * np.array([1.0, 1.0, -1.0])
    angle = rng.uniform(8.0, 25.0) * rng.choice([-1.0, 1.0])
    back_v = (mirrored @ _rot_y(angle).T) * rng.uniform(0.9, 1.05) + np.array([0.0, rng.uniform(-0.05, 0.05), -0.08])
    back_f = front[:, ::-1] + len(v)  # mirroring flips the winding; flip it back
    return _mesh(np.vstack([v, back_v]), np.vstack([kept, back_f]))


@DEFECTS.register("floaters")
def floaters(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    from scipy.spatial import cKDTree

    tree = cKDTree(np.vstack([mesh.vertices, mesh.triangles_center]))
    parts_v, parts_f, off = [np.asarray(mesh.vertices)], [np.asarray(mesh.faces)], len(mesh.vertices)
    n, tries = count(rng, severity, 4, 9, 1, 10), 0
    while n > 0 and tries < 500:
        tries += 1
        c = rng.uniform(-1.1, 1.1, size=3)
        r = amount(rng, severity, 0.04, 0.1, 0.025, 0.12) * (1.0 if severity is None else rng.uniform(0.8, 1.2))
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
def holes(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=1500)
    centers = m.triangles_center
    keep = np.ones(len(m.faces), dtype=bool)
    for _ in range(count(rng, severity, 3, 7, 1, 7)):
        seed = centers[rng.integers(len(centers))]
        keep &= np.linalg.norm(centers - seed, axis=1) > amount(rng, severity, 0.2, 0.35, 0.1, 0.35)
    if keep.sum() < 0.3 * len(keep):  # never tear away almost everything
        keep = np.ones(len(keep), dtype=bool)
        keep[rng.choice(len(keep), size=len(keep) // 3, replace=False)] = False
    return _mesh(m.vertices, m.faces[keep])


@DEFECTS.register("incomplete")
def incomplete(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=1500)
    normal = rng.normal(size=3)
    normal /= np.linalg.norm(normal)
    d = m.triangles_center @ normal
    cut = np.quantile(d, amount(rng, severity, 0.55, 0.7, 0.85, 0.5))  # drop the top 30-45% along a random direction
    return _mesh(m.vertices, m.faces[d <= cut])


@DEFECTS.register("noise")
def noise(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=3000)
    sigma = amount(rng, severity, 0.012, 0.025, 0.005, 0.03)
    return _mesh(m.vertices + rng.normal(scale=sigma, size=m.vertices.shape), m.faces)


@DEFECTS.register("melted")
def melted(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    m = _refine(mesh, min_faces=2500)
    smooth(m, 0.9, count(rng, severity, 40, 80, 10, 90))
    v = np.array(m.vertices)
    # sag: points sink towards the floor, more the higher they are
    lo = v[:, 1].min()
    v[:, 1] = lo + (v[:, 1] - lo) * amount(rng, severity, 0.45, 0.65, 0.85, 0.4)
    spread = 0.3 if severity is None else 0.1 + 0.3 * severity
    v[:, [0, 2]] *= 1.0 + spread * (1.0 - (v[:, 1:2] - lo) / max(np.ptp(v[:, 1]), 1e-9))
    return _mesh(v, m.faces)


@DEFECTS.register("flatten")
def flatten(mesh: trimesh.Trimesh, rng: np.random.Generator, severity: float | None = None) -> trimesh.Trimesh:
    v = np.array(mesh.vertices)
    ext = np.ptp(v, axis=0)
    axis = int(rng.choice([a for a in range(3) if ext[a] > 0.3 * ext.max()]))  # squash a real dimension
    v[:, axis] *= amount(rng, severity, 0.005, 0.025, 0.2, 0.005)
    return _mesh(v, mesh.faces)


def apply_defect(mesh: trimesh.Trimesh, name: str, seed: int, severity: float | None = None) -> trimesh.Trimesh:
    """``DEFECTS[name]`` applied with a generator seeded by ``seed`` at ``severity`` (None: the
    embedded set's random magnitude); degenerate faces removed."""
    if severity is not None and not 0.0 <= severity <= 1.0:
        raise ValueError(f"defect {name!r}: severity must be in [0, 1], got {severity}")
    fn: DefectFn = DEFECTS.get(name)
    out = fn(mesh, np.random.default_rng(seed), severity)
    out.update_faces(out.nondegenerate_faces())
    out.remove_unreferenced_vertices()
    if len(out.faces) < 4 or not np.isfinite(out.vertices).all():
        # e.g. heavy smoothing of a tree of thin branches: nothing of the object is left
        raise DefectError(f"defect {name!r} left {len(out.faces)} usable faces of {len(mesh.faces)}")
    return out


from dreamcs.data import defects_extra as _extra  # noqa: E402,F401  (registers the further kinds)
