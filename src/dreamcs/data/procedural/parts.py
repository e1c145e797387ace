"""Building blocks of the procedural generators: primitives, an assembly of named parts, the style.

Every primitive returns a y-up ``trimesh.Trimesh`` in world units; closed ones are watertight with
outward (counter-clockwise seen from outside) winding. trimesh's primitives are z-aligned, so the
``Y_FROM_Z`` rotation turns their axis into y. Open surfaces (a lampshade, a single-sheet bowl)
come from ``lathe(..., closed=False)``: a profile listed bottom to top gives outward normals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from trimesh import creation

# Rotation by -90 degrees about x: (x, y, z) -> (x, z, -y), so trimesh's z axis becomes y.
Y_FROM_Z = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass
class Style:
    """How an object is tessellated and finished; drawn once per object so that style varies
    independently of shape (a reward must not learn "procedural = smooth" or "= sharp boxes").

    ``detail`` 0 (low-poly) .. 3 (smooth) scales every curved primitive's section count;
    ``bevel`` is "sharp" | "chamfer" | "round" for boxes.
    """

    detail: int = 2
    bevel: str = "sharp"

    @property
    def sections(self) -> int:
        """Around-axis sections of cylinders and lathes."""
        return (6, 10, 18, 28)[self.detail]

    @property
    def rings(self) -> int:
        """Profile samples of curved lathe profiles."""
        return (4, 7, 11, 16)[self.detail]

    @property
    def sphere_subdiv(self) -> int:
        return (1, 1, 2, 3)[self.detail]

    @property
    def low_poly(self) -> bool:
        return self.detail == 0


def densify(asm: Assembly, budget: int, max_rounds: int = 64) -> int:
    """Midpoint-subdivide (1 -> 4 faces, shape and watertightness kept) the part with the longest
    mean edge, again and again, while the total stays within ``budget`` faces; returns the rounds.

    Procedural parts are coarse (a box is 12 faces); real meshes range from coarse CAD to dense
    scans and DMTet output, so a share of objects is made dense to keep density from telling
    "procedural" apart.
    """

    def mean_edge(p: Part) -> float:
        v, f = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
        return float(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1).mean())

    edges = [mean_edge(p) for p in asm.parts]
    n = asm.n_faces
    for rounds in range(max_rounds):
        k = int(np.argmax(edges))
        part = asm.parts[k]
        if n + 3 * len(part.mesh.faces) > budget:
            return rounds
        n += 3 * len(part.mesh.faces)
        v, f = trimesh.remesh.subdivide(part.mesh.vertices, part.mesh.faces)
        part.mesh = trimesh.Trimesh(v, f, process=False)
        edges[k] /= 2.0  # midpoint subdivision halves every edge
    return max_rounds


def draw_style(rng: np.random.Generator) -> Style:
    return Style(
        detail=int(rng.choice(4, p=[0.2, 0.3, 0.3, 0.2])),
        bevel=str(rng.choice(["sharp", "chamfer", "round"], p=[0.5, 0.3, 0.2])),
    )


@dataclass
class Part:
    """A named part; ``closed`` promises a watertight, outward-wound surface."""

    name: str
    mesh: trimesh.Trimesh
    closed: bool = True


@dataclass
class Assembly:
    """The parts of one object, in insertion order (which fixes the face order of the result)."""

    parts: list[Part] = field(default_factory=list)

    def add(self, name: str, mesh: trimesh.Trimesh, closed: bool = True) -> None:
        if closed and signed_volume(mesh) < 0:
            mesh.invert()  # outward winding whatever the primitive's convention
        self.parts.append(Part(name, mesh, closed))

    def count(self, prefix: str) -> int:
        return sum(p.name.startswith(prefix) for p in self.parts)

    @property
    def n_faces(self) -> int:
        return sum(len(p.mesh.faces) for p in self.parts)

    def normalised(self) -> tuple[trimesh.Trimesh, list[Part]]:
        """(the concatenated mesh, the parts) centred and scaled uniformly into [-1, 1]^3."""
        lo = np.min([p.mesh.bounds[0] for p in self.parts], axis=0)
        hi = np.max([p.mesh.bounds[1] for p in self.parts], axis=0)
        centre, scale = (lo + hi) / 2.0, 2.0 / float((hi - lo).max())
        parts = []
        for p in self.parts:
            v = np.clip((p.mesh.vertices - centre) * scale, -1.0, 1.0)
            parts.append(Part(p.name, trimesh.Trimesh(v, p.mesh.faces.copy(), process=False), p.closed))
        mesh = trimesh.util.concatenate([p.mesh for p in parts])
        return mesh, parts


# ----------------------------------------------------------------------------- primitives

_BOX_V = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
_BOX_F = np.array(
    [
        [0, 1, 3],
        [0, 3, 2],
        [4, 6, 7],
        [4, 7, 5],
        [0, 4, 5],
        [0, 5, 1],
        [2, 3, 7],
        [2, 7, 6],
        [0, 2, 6],
        [0, 6, 4],
        [1, 5, 7],
        [1, 7, 3],
    ]
)


def signed_volume(mesh: trimesh.Trimesh) -> float:
    """Volume by the divergence theorem: positive for a closed, outward-wound surface."""
    t = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)


def box(
    size, center=(0.0, 0.0, 0.0), bevel: str = "sharp", radius: float = 0.0, detail: int = 1
) -> trimesh.Trimesh:
    """An axis-aligned box of extents ``size`` (3,), optionally chamfered or rounded by ``radius``."""
    size, center = np.asarray(size, float), np.asarray(center, float)
    r = min(radius, 0.45 * float(size.min()))
    if bevel == "sharp" or r <= 1e-6:  # built directly: trimesh.creation.box validates, 10x slower
        return trimesh.Trimesh(_BOX_V * size + center, _BOX_F.copy(), process=False)
    half = size / 2.0 - r
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float) * half
    if bevel == "chamfer":  # each corner cut by moving it r along every axis
        pts = np.concatenate([corners + np.eye(3)[k] * np.sign(corners) * r for k in range(3)])
    else:  # round: the hull of a small sphere at every corner
        ball = creation.icosphere(subdivisions=1 if detail < 2 else 2, radius=r).vertices
        pts = (corners[:, None, :] + ball[None]).reshape(-1, 3)
    return hull(pts + center)


def cylinder(radius: float, p0, p1, sections: int) -> trimesh.Trimesh:
    """A capped cylinder from point ``p0`` to ``p1``."""
    return creation.cylinder(radius=radius, segment=np.array([p0, p1], float), sections=sections)


def ycylinder(radius: float, height: float, base=(0.0, 0.0, 0.0), sections: int = 16) -> trimesh.Trimesh:
    """A vertical cylinder standing on ``base``."""
    b = np.asarray(base, float)
    return cylinder(radius, b, b + [0.0, height, 0.0], sections)


def capsule(radius: float, p0, p1, sections: int) -> trimesh.Trimesh:
    """A rod with hemispherical ends whose sphere centres are ``p0`` and ``p1``."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    m = creation.capsule(
        height=float(np.linalg.norm(axis)), radius=radius, count=[sections, max(4, sections // 2)]
    )
    T = trimesh.geometry.align_vectors([0, 0, 1], axis / np.linalg.norm(axis))
    T[:3, 3] = (p0 + p1) / 2.0
    return m.apply_transform(T)


def sphere(radius, center=(0.0, 0.0, 0.0), subdiv: int = 2) -> trimesh.Trimesh:
    """An icosphere; ``radius`` may be (3,) for an ellipsoid."""
    m = creation.icosphere(subdivisions=subdiv, radius=1.0)
    m.vertices = m.vertices * np.asarray(radius, float) + np.asarray(center, float)
    return m


def ycone(radius: float, height: float, base=(0.0, 0.0, 0.0), sections: int = 16) -> trimesh.Trimesh:
    """A capped cone with its base disc at ``base`` and apex ``height`` above."""
    m = creation.cone(radius=radius, height=height, sections=sections).apply_transform(Y_FROM_Z)
    return m.apply_translation(base)


def lathe(profile, sections: int, closed: bool = True, base=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """Revolve a (radius, height) polyline about the y axis.

    Closed: the profile starts and ends on the axis (radius 0) and runs counter-clockwise in the
    (r, y) plane (out along the bottom, up the outside, back in along the top), giving a watertight
    solid. Open: a profile listed bottom to top gives an open surface with outward normals.
    """
    prof = np.asarray(profile, float)
    if closed:
        prof[0, 0] = prof[-1, 0] = 0.0
    m = creation.revolve(prof, sections=sections).apply_transform(Y_FROM_Z)
    return m.apply_translation(base)


def tube(path, radius, sections: int) -> trimesh.Trimesh:
    """A capped circular tube along a polyline ``path`` (N, 3); ``radius`` scalar or (N,)."""
    path = np.asarray(path, float)
    n = len(path)
    radii = np.broadcast_to(np.asarray(radius, float), (n,))
    tang = np.gradient(path, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    ref = np.array([0.0, 1.0, 0.0]) if abs(tang[0, 1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(tang[0], ref)
    u /= np.linalg.norm(u)
    ang = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    rings = []
    for i in range(n):  # parallel transport of the frame keeps the tube from twisting
        u = u - tang[i] * (u @ tang[i])
        u /= np.linalg.norm(u)
        w = np.cross(tang[i], u)
        rings.append(path[i] + radii[i] * (np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * w))
    verts = np.concatenate([np.concatenate(rings), path[[0, -1]]])
    faces = []
    for i in range(n - 1):
        a, b = i * sections, (i + 1) * sections
        for j in range(sections):
            k = (j + 1) % sections
            faces += [[a + j, b + j, b + k], [a + j, b + k, a + k]]
    c0, c1 = n * sections, n * sections + 1
    last = (n - 1) * sections
    for j in range(sections):
        k = (j + 1) % sections
        faces += [[c0, j, k], [c1, last + k, last + j]]
    m = trimesh.Trimesh(verts, np.array(faces), process=False)
    if m.volume < 0:
        m.invert()
    return m


def hull(points) -> trimesh.Trimesh:
    """The convex hull of ``points`` (N, 3): prisms, wedges, tapered wings, hull shapes.

    scipy's Qhull directly (trimesh's wrapper repairs and validates, 10x slower); every face is
    turned to face away from the hull's centroid, which is outward for a convex solid.
    """
    from scipy.spatial import ConvexHull

    pts = np.asarray(points, float)
    h = ConvexHull(pts)
    used = np.unique(h.simplices)
    remap = np.full(len(pts), -1)
    remap[used] = np.arange(len(used))
    v, f = pts[used], remap[h.simplices]
    t = v[f]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    flip = np.einsum("ij,ij->i", n, t.mean(1) - v.mean(0)) < 0
    f[flip] = f[flip][:, ::-1]
    return trimesh.Trimesh(v, f, process=False)


def prism(polygon_xy, z0: float, z1: float) -> trimesh.Trimesh:
    """A convex polygon (N, 2) in the x-y plane extruded along z from ``z0`` to ``z1``."""
    p = np.asarray(polygon_xy, float)
    return hull(np.concatenate([np.c_[p, np.full(len(p), z0)], np.c_[p, np.full(len(p), z1)]]))


def arc(center, radius: float, a0: float, a1: float, n: int, plane: str = "xy"):
    """(n, 3) points on a circular arc from angle ``a0`` to ``a1`` (radians) in ``plane``."""
    t = np.linspace(a0, a1, n)
    c = np.asarray(center, float)
    pts = np.zeros((n, 3))
    i, j = {"xy": (0, 1), "zy": (2, 1), "xz": (0, 2)}[plane]
    pts[:, i], pts[:, j] = np.cos(t) * radius, np.sin(t) * radius
    return pts + c
