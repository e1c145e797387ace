"""Geometric quality figures of a triangle mesh, in vectorised numpy.

The data stage builds its geometric scorer on these figures, so each is defined precisely here:

- ``n_vertices``, ``n_faces``, ``n_edges`` (undirected, self-loops of degenerate faces excluded).
- ``n_components``: connected components of the face graph where two faces are adjacent when they
  share an edge (touching at a single vertex does not connect). ``largest_component_faces`` and
  ``area_outside_largest``: the share of surface area (0..1) not in the component of largest area.
- ``boundary_edges``: edges used by exactly one face. ``nonmanifold_edges``: used by more than two.
- ``inconsistent_edges``: edges shared by exactly two faces that traverse it in the same direction
  (one of the two faces is wound the wrong way round). ``winding_consistent`` = none such.
- ``watertight``: no boundary and no non-manifold edges (every edge has exactly two faces).
- ``degenerate_faces``: faces with a repeated vertex index or area <= ``1e-12 * extent**2``
  (``extent`` = longest bounding-box side). ``duplicate_faces``: faces on a vertex triple that an
  earlier face already uses (any order).
- ``area``: total surface area; ``volume``: enclosed volume when watertight and consistently
  wound, else ``None``; ``extent``: the bounding box side lengths (x, y, z).

All values are plain Python ``int``/``float``/``bool``/``None``/lists, ready for JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# A face is degenerate when its area is at most this share of the squared bounding-box extent.
DEGENERATE_REL_AREA = 1e-12


def quality(mesh: Any) -> dict[str, Any]:
    """Quality figures of ``mesh`` (anything with ``vertices (V, 3)`` and ``faces (..., 3)``).

    ``faces`` may be in the patch layout ``(P, K, 3)``; it is flattened to ``(F, 3)``.
    See the module docstring for the definition of every key.
    """
    v = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    return quality_arrays(v, f)


def quality_arrays(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """``quality`` on raw arrays: ``vertices (V, 3) float``, ``faces (F, 3) int``."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n_f = len(f)
    extent = (v.max(axis=0) - v.min(axis=0)) if len(v) else np.zeros(3)
    out: dict[str, Any] = {"n_vertices": int(len(v)), "n_faces": int(n_f)}
    if n_f == 0:
        out.update(
            n_edges=0, n_components=0, largest_component_faces=0, area_outside_largest=0.0,
            boundary_edges=0, nonmanifold_edges=0, inconsistent_edges=0, winding_consistent=True,
            watertight=False, degenerate_faces=0, duplicate_faces=0, area=0.0, volume=None,
            extent=[float(x) for x in extent],
        )
        return out

    # Face areas; degenerate = repeated index or (near-)zero area relative to the mesh size.
    tri = v[f]  # (F, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    areas = 0.5 * np.linalg.norm(cross, axis=1)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    tiny = areas <= DEGENERATE_REL_AREA * float(extent.max()) ** 2
    degenerate = repeated | tiny
    dup = n_f - _count_unique_rows(np.sort(f, axis=1), len(v))

    # Directed edges (3F, 2): face i contributes (a,b), (b,c), (c,a); self-loops dropped.
    directed = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edge_face = np.repeat(np.arange(n_f), 3)
    keep = directed[:, 0] != directed[:, 1]
    directed, edge_face = directed[keep], edge_face[keep]
    lo = directed.min(axis=1)
    hi = directed.max(axis=1)
    key = lo * (int(len(v)) + 1) + hi  # unique int per undirected edge
    # One sort groups the directed edges by undirected edge (cheaper than np.unique + argsort).
    order = np.argsort(key)
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    group = np.cumsum(np.r_[True, ks[1:] != ks[:-1]]) - 1  # undirected edge id, sorted order
    n_edges = len(starts)
    counts = np.bincount(group, minlength=n_edges)
    boundary = int((counts == 1).sum())
    nonmanifold = int((counts > 2).sum())

    # Winding: a consistent interior edge is traversed once as (lo, hi) and once as (hi, lo).
    forward = (directed[order, 0] < directed[order, 1]).astype(np.float64)
    fwd_per_edge = np.bincount(group, weights=forward, minlength=n_edges)
    inconsistent = int(((counts == 2) & (fwd_per_edge != 1)).sum())

    # Components: link every face on an edge to the first face listed on that edge.
    faces_sorted = edge_face[order]
    a, b = faces_sorted, faces_sorted[starts[group]]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_f, n_f))
    n_comp, labels = connected_components(graph, directed=False)
    comp_area = np.bincount(labels, weights=areas, minlength=n_comp)
    comp_faces = np.bincount(labels, minlength=n_comp)
    biggest = int(np.argmax(comp_area)) if comp_area.max() > 0 else int(np.argmax(comp_faces))
    total_area = float(areas.sum())
    comp_total = float(comp_area.sum())  # same summation as comp_area: one component gives exactly 0
    outside = (comp_total - comp_area[biggest]) / comp_total if comp_total > 0 else 0.0

    watertight = boundary == 0 and nonmanifold == 0
    volume = None
    if watertight and inconsistent == 0:
        # Divergence theorem: sum of signed tetrahedra against the origin.
        volume = float(abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0)

    out.update(
        n_edges=int(n_edges),
        n_components=int(n_comp),
        largest_component_faces=int(comp_faces[biggest]),
        area_outside_largest=float(max(0.0, outside)),
        boundary_edges=boundary,
        nonmanifold_edges=nonmanifold,
        inconsistent_edges=inconsistent,
        winding_consistent=inconsistent == 0,
        watertight=bool(watertight),
        degenerate_faces=int(degenerate.sum()),
        duplicate_faces=int(dup),
        area=total_area,
        volume=volume,
        extent=[float(x) for x in extent],
    )
    return out


def _count_unique_rows(rows: np.ndarray, n_vertices: int) -> int:
    """Number of distinct rows of ``rows (F, 3)`` of vertex indices in [0, n_vertices)."""
    base = n_vertices + 1
    if base**3 < 2**62:  # pack each row into one int64 key (a sort of ints beats unique(axis=0))
        key = (rows[:, 0] * base + rows[:, 1]) * base + rows[:, 2]
        return len(np.unique(key))
    return len(np.unique(rows, axis=0))
