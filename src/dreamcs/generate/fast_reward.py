"""The fast reward branch: RewardCS on a coarse extraction of the same DMTet field, every step.

The full branch (``pipeline.RewardBranch``) fuses the rendered surface: at grid 128 that is
~170k faces, QEM-simplified to 16k and grouped into 256 x 64 patches, ~0.3 s per step before the
model runs. The reward model only ever sees 16,384 faces, so this branch

1. runs marching tets on a sub-lattice of the field's grid (``reward.grid`` cubes per side: the
   grid's own SDF values and deformed vertices at every s-th lattice point, so the surface is the
   same field's level set at a coarser sampling, ~7k faces at 32, ~16k at 48), and
2. keeps the fused patch layout from step to step while the sub-lattice's inside/outside signs do
   not change. The signs alone decide marching tets' topology, so the faces are then identical and
   the layout's map W (barycentric rows on the coarse faces) still applies: the patched vertices
   ``W @ verts`` lie exactly on the current coarse surface. Only the sampling (which edges were
   bisected, which faces share a patch) is that of the step that last fused; it is redone as soon
   as one sign flips.

What is exact and what is not: step 2 is exact in the geometry it scores (every patched vertex is
on the current surface); step 1 is an approximation (a coarser sampling of the same level set),
measured against the full path in ``benchmarks/bench_fast_reward.py`` and the tests (Spearman of
rewards over varied surfaces). Reward gradients reach the field through the sub-lattice's SDF
values and vertex offsets only: for an MLP field that is every weight; for an explicit field it is
one grid vertex in s^3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from dreamcs.generate.tetgrid import TetGrid, load_tetgrid


def sublattice_indices(resolution: int, coarse: int) -> Tensor:
    """Indices (M_c,) of the fine lattice's vertices that form a ``coarse``-cube sub-lattice.

    The fine lattice of ``resolution`` cubes per side has vertex ``i * n^2 + j * n + k`` (n = R + 1);
    the sub-lattice takes ``round(linspace(0, R, coarse + 1))`` on each axis, so it is the same
    Kuhn triangulation on a coarser (monotone, hence equally oriented) set of points.
    """
    if coarse < 1 or coarse > resolution:
        raise ValueError(f"reward.grid must be in [1, {resolution}] for a grid of {resolution}, got {coarse}")
    n = resolution + 1
    idx = torch.from_numpy(np.rint(np.linspace(0, resolution, coarse + 1)).astype(np.int64))
    return (idx.view(-1, 1, 1) * (n * n) + idx.view(1, -1, 1) * n + idx.view(1, 1, -1)).reshape(-1)


class FieldRewardBranch:
    """(sdf (N,), deformed grid vertices (N, 3)) on a lattice -> RewardCS reward (), differentiable in both.

    Args:
        model: a RewardCS (frozen here).
        prompt: the text prompt.
        n_patches: P of the fused layout (faces per patch from the model's config).
        resolution: the field's grid (cubes per side).
        coarse: cubes per side of the sub-lattice the reward sees (clipped to ``resolution``).
        normalize: normalise the patched mesh into [-1, 1]^3 (differentiably) first.
    """

    def __init__(self, model: Any, prompt: str, n_patches: int, resolution: int, coarse: int,
                 normalize: bool = True) -> None:
        self.model, self.prompt, self.n_patches, self.normalize = model, prompt, int(n_patches), normalize
        self.faces_per_patch = int(model.config.faces_per_patch)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self.coarse = min(int(coarse), int(resolution))
        self._index = sublattice_indices(int(resolution), self.coarse)
        self._grid: TetGrid | None = None
        self._signs: Tensor | None = None  # the sub-lattice's inside mask the layout was fused for
        self._layout: Any = None
        self._pool: Any = None
        self._pending: tuple[Tensor, Any] | None = None
        self.n_fused = self.n_calls = 0  # how often the layout was rebuilt, of how many calls
        self.last_fused = False

    def _coarse(self, sdf: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, TetGrid]:
        """The sub-lattice's SDF (M_c,) and vertices (M_c, 3), and its TetGrid (on sdf's device)."""
        dev = sdf.device
        if self._index.device != dev:
            self._index = self._index.to(dev)
        if self._grid is None or self._grid.tets.device != dev:
            self._grid = load_tetgrid(self.coarse, device=dev)
        return sdf.index_select(0, self._index), positions.index_select(0, self._index), self._grid

    def extract(self, sdf: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Marching tets on the sub-lattice: verts (V, 3) differentiable, faces (F, 3), inside mask (M_c,)."""
        s, p, grid = self._coarse(sdf, positions)
        verts, faces, _ = grid.extract(s, p)
        return verts, faces, (s.detach() < 0)

    def _fuse(self, verts: Tensor, faces: Tensor) -> Any:
        from dreamcs.generate.outputs import to_trimesh
        from dreamcs.mesh import fuse

        if faces.shape[0] == 0:
            from dreamcs.mesh import MeshError

            raise MeshError("<reward sub-lattice>", f"no surface on the {self.coarse}^3 sub-lattice")
        return fuse(to_trimesh(verts.detach(), faces), n_patches=self.n_patches, faces_per_patch=self.faces_per_patch)

    def prefetch(self, sdf: Tensor, positions: Tensor) -> None:
        """Start re-fusing in a worker thread if the sub-lattice's signs changed (else nothing to do)."""
        from concurrent.futures import ThreadPoolExecutor

        with torch.no_grad():
            verts, faces, signs = self.extract(sdf.detach(), positions.detach())
        if self._signs is not None and torch.equal(signs, self._signs):
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamcs-fuse")
        self._pending = (signs, self._pool.submit(self._fuse, verts.cpu(), faces.cpu()))

    def __call__(self, sdf: Tensor, positions: Tensor) -> Tensor:
        """sdf (N,), positions (N, 3) of the whole grid -> reward (), differentiable in both."""
        verts, faces, signs = self.extract(sdf, positions)
        self.n_calls += 1
        pending, self._pending = self._pending, None
        self.last_fused = self._signs is None or not torch.equal(signs, self._signs)
        if self._signs is None or not torch.equal(signs, self._signs):
            # topology changed (or first call): a new layout, from the worker when it fused these signs
            if pending is not None and torch.equal(pending[0], signs):
                layout = pending[1].result()
            else:
                layout = self._fuse(verts, faces)
            self._layout, self._signs = layout, signs
            self.n_fused += 1
        v = self._layout.vertices_from(verts)
        if self.normalize:
            from dreamcs.generate.pipeline import normalize_vertices

            v = normalize_vertices(v)
        return self.model.reward_from_vertices(v, self._layout.faces, self.prompt)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
