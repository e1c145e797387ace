"""Parts of a mesh that float free of its main body (floaters), exactly and differentiably.

The fused 256 x 64 patch layout that RewardCS reads keeps few faces of a small part, so a model can
hardly see a floater there (held-out floaters ranked at chance, docs/reward-floaters.md). This
module reads them on the mesh itself, the way the geometric scorer's ``parts_far_small`` figure
does: the edge-connected components after welding, chained into groups by an area-uniform point
sample (parts closer than ``gap`` form one group, so an unwelded CAD model or a scan in pieces is one
body), and the groups under ``small`` of the area that are not the largest count.

``far_small_faces`` is the grouping (NumPy, no gradient); ``detached_area_share`` turns it into the
area share of those faces as a function of the vertex positions, so a generator's reward can push
a floater's surface away (the grouping itself is held fixed within a step, like a fused layout).
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from torch import Tensor

#: Area-uniform sample size of the grouping (the scorer's ``N_SAMPLES``).
N_SAMPLES = 4000


def welded_components(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray]:
    """A welded copy of ``mesh`` (faces in the same order) and its faces' edge-connected component labels (F,)."""
    m = trimesh.Trimesh(vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces), process=False)
    m.merge_vertices()
    labels = trimesh.graph.connected_component_labels(m.face_adjacency, node_count=len(m.faces))
    return m, labels


def far_small_faces(
    m: trimesh.Trimesh, labels: np.ndarray, pts: np.ndarray, fid: np.ndarray, gap: float, small: float = 0.1
) -> np.ndarray:
    """(F,) bool: the faces of part groups under ``small`` of the area, other than the largest group.

    m: a welded mesh in the [-1, 1] cube; labels (F,): its components; pts (S, 3), fid (S,): an
    area-uniform surface sample and its faces. Components whose points come within ``gap`` of each
    other are chained into one group (so several large separate parts, a car and its wheels, are
    not counted: only groups under ``small`` of the area are)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n_comp = int(labels.max()) + 1 if len(labels) else 0
    if n_comp <= 1:
        return np.zeros(len(labels), dtype=bool)
    comp_area = np.bincount(labels, weights=m.area_faces, minlength=n_comp)
    # the area sample covers large parts; small ones (which it may miss) bring their own corners
    n_faces = np.bincount(labels, minlength=n_comp)
    few = np.flatnonzero(n_faces[labels] <= 200)
    allp = np.vstack([pts, m.vertices[m.faces[few]].reshape(-1, 3)])
    lab = np.concatenate([labels[fid], np.repeat(labels[few], 3)])
    pairs = cKDTree(allp).query_pairs(gap, output_type="ndarray")
    pairs = pairs[lab[pairs[:, 0]] != lab[pairs[:, 1]]]
    g = coo_matrix((np.ones(len(pairs)), (lab[pairs[:, 0]], lab[pairs[:, 1]])), shape=(n_comp, n_comp))
    group = connected_components(g, directed=False)[1]
    g_area = np.bincount(group, weights=comp_area)
    main = int(np.argmax(g_area))
    total = max(float(comp_area.sum()), 1e-12)
    far_small = (np.arange(len(g_area)) != main) & (g_area < small * total)
    return far_small[group[labels]]


def _one_piece(n_vertices: int, faces: np.ndarray) -> bool:
    """Whether the faces, joined through their shared vertex indices, form one piece. Parts that
    share a vertex touch, so they are one body for any gap; an unwelded mesh falls through to the
    welded grouping."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    used = np.unique(faces)
    a = np.concatenate([faces[:, 0], faces[:, 1]])
    b = np.concatenate([faces[:, 1], faces[:, 2]])
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(n_vertices, n_vertices))
    labels = connected_components(g, directed=False)[1]
    return len(np.unique(labels[used])) == 1


def detached_faces(vertices: np.ndarray, faces: np.ndarray, gap: float = 0.05, small: float = 0.1) -> np.ndarray:
    """(F,) bool: which faces of a mesh (V, 3), (F, 3) lie in small parts away from its main body.

    The mesh is measured in the [-1, 1] cube (bounding box centred, longest side 2), as the
    scorer measures it, whatever its own scale."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros(0, dtype=bool)
    if _one_piece(len(v), f):  # a generated surface mostly is: skip welding and the sample (~4x faster)
        return np.zeros(len(f), dtype=bool)
    lo, hi = v.min(axis=0), v.max(axis=0)
    v = (v - (lo + hi) / 2) * (2.0 / max(float((hi - lo).max()), 1e-12))
    m, labels = welded_components(trimesh.Trimesh(vertices=v, faces=f, process=False))
    if labels.max(initial=0) == 0:
        return np.zeros(len(f), dtype=bool)
    if m.area <= 0:
        return np.zeros(len(f), dtype=bool)
    pts, fid = trimesh.sample.sample_surface(m, N_SAMPLES, seed=0)
    return far_small_faces(m, labels, pts, fid, gap, small)


def detached_area_share(vertices: Tensor, faces: Tensor, gap: float = 0.05, small: float = 0.1) -> Tensor:
    """The area share () of a mesh's floaters (``detached_faces``), differentiable in ``vertices`` (V, 3).

    faces (F, 3) long. The grouping is read on detached positions; the share is then the floaters'
    area over the whole area, so its gradient shrinks the floaters and grows the rest. 0 (with a
    zero gradient) when the mesh is one body."""
    f = faces.long()
    if f.numel() == 0:
        return vertices.new_zeros(())
    mask = detached_faces(vertices.detach().cpu().double().numpy(), f.detach().cpu().numpy(), gap, small)
    if not mask.any():
        return vertices.sum() * 0.0  # keeps the graph (and device) of the callers' other terms
    tri = vertices[f]
    area = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    m = torch.as_tensor(mask, device=vertices.device)
    return area[m].sum() / area.sum().clamp_min(1e-12)
