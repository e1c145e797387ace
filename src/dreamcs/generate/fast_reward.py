"""The fast reward branch: RewardCS on the DMTet surface every step, fusing only now and then.

The surface path (``pipeline.RewardBranch``) fuses the rendered surface on every scored step: at
grid 128 that is ~170k faces QEM-simplified to 16k and grouped into 256 x 64 patches, ~0.3 s
before the model runs. This branch keeps the fused layout (its sparse map W from the surface's
vertices to the patched ones) from step to step and carries it through the vertices' identities:
every marching-tets vertex lies on one grid edge (a, b), and the edge is its name across steps.

- Vertices whose edge is still cut map to the same-named vertex of the new surface. This part is
  exact in kind: a W row is a barycentric combination on a face of the surface as it was fused;
  while that face's three edges stay cut, the point stays on the moved face of the current surface.
- Vertices whose edge is no longer cut (the surface moved across a grid vertex there) map to the
  nearest vertex of the new surface. This part is approximate; it is bounded by ``max_change``:
  when more than that share of the layout's vertices is gone, the layout is fused again, in a
  worker thread while the stale one keeps scoring (``overlap``), or at once.
- ``max_age`` steps after a fusion the layout is fused again anyway (the sampling follows the shape).

Optionally the reward extracts its own surface on a sub-lattice of the field's grid
(``FieldRewardBranch.sublattice_surface``: the field's SDF and deformed vertices at every s-th
lattice point); that is a coarser sampling of the same level set, an approximation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from dreamcs.generate.tetgrid import TetGrid, load_tetgrid


def sublattice_indices(resolution: int, coarse: int) -> Tensor:
    """Indices (M_c,) of the fine lattice's vertices that form a ``coarse``-cube sub-lattice.

    The lattice of ``resolution`` cubes per side has vertex ``i * n^2 + j * n + k`` (n = R + 1);
    the sub-lattice takes ``round(linspace(0, R, coarse + 1))`` on each axis: the same Kuhn
    triangulation on a coarser (monotone, hence equally oriented) set of points.
    """
    if coarse < 1 or coarse > resolution:
        raise ValueError(f"reward.grid must be in [1, {resolution}] for a grid of {resolution}, got {coarse}")
    n = resolution + 1
    idx = torch.from_numpy(np.rint(np.linspace(0, resolution, coarse + 1)).astype(np.int64))
    return (idx.view(-1, 1, 1) * (n * n) + idx.view(1, -1, 1) * n + idx.view(1, 1, -1)).reshape(-1)


def edge_keys(edges: Tensor, n_grid_vertices: int) -> np.ndarray:
    """(V, 2) grid edges -> (V,) int64 names ``a * M + b`` (unique per edge)."""
    e = edges.detach().cpu().numpy().astype(np.int64)
    return np.minimum(e[:, 0], e[:, 1]) * int(n_grid_vertices) + np.maximum(e[:, 0], e[:, 1])


def _project(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) -> the nearest-centroid face of (verts, faces): its vertex ids (N, 3) and the
    barycentrics (N, 3) of the point's projection onto its plane, clipped into the triangle."""
    from scipy.spatial import cKDTree

    tri = verts[faces]  # (F, 3, 3)
    f = faces[cKDTree(tri.mean(1)).query(points)[1]]
    a, b, c = verts[f[:, 0]], verts[f[:, 1]], verts[f[:, 2]]
    e0, e1, d = b - a, c - a, points - a
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    d20, d21 = (d * e0).sum(1), (d * e1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) > 1e-20, den, 1.0)  # a degenerate face: all weight to its first vertex
    v, w = (d11 * d20 - d01 * d21) / den, (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.stack([1.0 - v - w, v, w], 1), 0.0, None)
    s = bary.sum(1, keepdims=True)
    bary = np.where(s > 0, bary / np.where(s > 0, s, 1.0), np.array([1.0, 0.0, 0.0]))
    return f, bary


class _Layout:
    """A fused PatchedMesh plus the names (V_in,) and positions (V_in, 3) of the vertices it was fused from."""

    def __init__(self, patched: Any, keys: np.ndarray, verts: np.ndarray) -> None:
        self.patched, self.keys, self.verts, self.age = patched, keys, verts, 0
        self.W = patched.W.tocsr()
        self.sorted_keys = np.sort(keys)

    def carry(self, keys: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, float]:
        """W re-mapped onto a new surface (vertex names ``keys`` (V,), positions (V, 3), faces (F, 3)):
        (V_patched, V) CSR, and the share of this layout's vertices whose edge is gone.

        W' = W @ B with B (V_in, V): a kept vertex -> its namesake; a gone one -> its projection
        onto the nearest new face (barycentric weights), so every input point is on the new surface.
        """
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        pos = np.searchsorted(ordered, self.keys).clip(max=len(keys) - 1)
        found = ordered[pos] == self.keys
        n_in = len(self.keys)
        cols = np.repeat(order[pos][:, None], 3, 1)
        vals = np.zeros((n_in, 3))
        vals[:, 0] = 1.0
        gone = np.flatnonzero(~found)
        if len(gone):
            # candidates: the faces touching a vertex the layout has not seen (where the surface
            # moved across the grid); all faces if there are none
            seen = self.sorted_keys
            is_new = seen[np.searchsorted(seen, keys).clip(max=n_in - 1)] != keys
            near = faces[is_new[faces].any(1)]
            cols[gone], vals[gone] = _project(self.verts[gone], verts, near if len(near) else faces)
        B = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, 3 * n_in + 1, 3)), shape=(n_in, len(keys)))
        return (self.W @ B).tocsr(), len(gone) / max(n_in, 1)


class FieldRewardBranch:
    """A DMTet surface with its vertices' grid edges -> RewardCS reward (), differentiable in the vertices.

    Args:
        model: a RewardCS (frozen here).
        prompt: the text prompt.
        n_patches: P of the fused layout (faces per patch from the model's config).
        max_change: re-fuse when more than this share of the layout's vertices left the surface.
        max_age: re-fuse at the latest this many calls after the last fusion.
        overlap: re-fuse in a worker thread while the carried layout scores this step, joined on
            the next call, unless the change exceeds ``2 * max_change``; False: re-fuse at once.
        normalize: normalise the patched mesh into [-1, 1]^3 (differentiably) first.
    """

    def __init__(self, model: Any, prompt: str, n_patches: int, max_change: float = 0.3, max_age: int = 50,
                 overlap: bool = False, normalize: bool = True) -> None:
        self.model, self.prompt, self.n_patches, self.normalize = model, prompt, int(n_patches), normalize
        self.faces_per_patch = int(model.config.faces_per_patch)
        self.max_change, self.max_age, self.overlap = float(max_change), int(max_age), bool(overlap)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self._layout: _Layout | None = None
        self._pool: Any = None
        self._pending: Any = None
        self._sub: tuple[Tensor, TetGrid] | None = None
        self.n_fused = self.n_calls = 0
        self.last_fused, self.last_change = False, 0.0

    # -- surfaces --------------------------------------------------------------------------------
    def sublattice_surface(self, sdf: Tensor, positions: Tensor, resolution: int, coarse: int
                           ) -> tuple[Tensor, Tensor, Tensor, int]:
        """Marching tets on a ``coarse``-cube sub-lattice of the field's lattice (sdf (N,), deformed
        vertices (N, 3)): verts (V, 3) differentiable, faces (F, 3), edges (V, 2), grid vertex count."""
        if self._sub is None or self._sub[1].resolution != coarse or self._sub[0].device != sdf.device:
            self._sub = (sublattice_indices(resolution, coarse).to(sdf.device), load_tetgrid(coarse, device=sdf.device))
        index, grid = self._sub
        verts, faces, _, edges = grid.extract(sdf.index_select(0, index), positions.index_select(0, index),
                                              return_edges=True)
        return verts, faces, edges, grid.num_vertices

    # -- the layout ------------------------------------------------------------------------------
    def _fuse(self, verts: np.ndarray, faces: np.ndarray, keys: np.ndarray) -> _Layout:
        import trimesh

        from dreamcs.mesh import MeshError, fuse

        if len(faces) == 0:
            raise MeshError("<reward surface>", "no faces to fuse")
        pm = fuse(trimesh.Trimesh(verts, faces, process=False), n_patches=self.n_patches,
                  faces_per_patch=self.faces_per_patch)
        return _Layout(pm, keys, verts)

    def _pending_layout(self) -> _Layout | None:
        """The worker's fusion started on the previous call (waited for: the step it joins must not
        depend on timing, so that a run stays reproducible), or None."""
        if self._pending is not None:
            fut, self._pending = self._pending, None
            return fut.result()
        return None

    def __call__(self, verts: Tensor, faces: Tensor, edges: Tensor, n_grid_vertices: int) -> Tensor:
        """verts (V, 3) differentiable, faces (F, 3), edges (V, 2) grid edge of each vertex -> reward ()."""
        if faces.shape[0] == 0:  # e.g. a thin shape that a coarse sub-lattice misses
            from dreamcs.mesh import MeshError

            raise MeshError("<reward surface>", "no faces to score")
        keys = edge_keys(edges, n_grid_vertices)
        v_np = verts.detach().cpu().numpy().astype(np.float64)
        self.n_calls += 1
        self.last_fused = False
        ready = self._pending_layout()
        if ready is not None:  # the worker's fusion of an earlier surface, carried to this one
            self._layout = ready
            self.n_fused += 1
            self.last_fused = True
        f_np = faces.detach().cpu().numpy()
        W, change = (None, 1.0) if self._layout is None else self._layout.carry(keys, v_np, f_np)
        self.last_change = change  # before any re-fusion: how far the layout had to be carried
        stale = self._layout is None or change > self.max_change or self._layout.age >= self.max_age
        if stale:
            if self.overlap and self._layout is not None and change <= 2 * self.max_change:
                if self._pending is None:  # fuse this surface in the background; score with the carried layout
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamcs-fuse")
                    self._pending = self._pool.submit(self._fuse, v_np, f_np, keys)
            else:
                self._layout = self._fuse(v_np, f_np, keys)
                W, change = self._layout.W, 0.0
                self.n_fused += 1
                self.last_fused = True
        self._layout.age += 1
        rows = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
        idx = torch.from_numpy(np.stack([rows, W.indices]).astype(np.int64))
        w = torch.sparse_coo_tensor(idx, torch.from_numpy(W.data).to(verts.dtype), size=W.shape, check_invariants=False)
        v = torch.sparse.mm(w.to(verts.device), verts)  # (V_patched, 3) = W @ verts, differentiable
        if self.normalize:
            from dreamcs.generate.pipeline import normalize_vertices

            v = normalize_vertices(v)
        return self.model.reward_from_vertices(v, self._layout.patched.faces, self.prompt)

    def reset(self) -> None:
        """Forget the layout (and any fusion in flight): the next call fuses afresh. The pipeline
        calls it on checkpoint steps, so that a resumed run scores exactly as an uninterrupted one."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        self._layout = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
