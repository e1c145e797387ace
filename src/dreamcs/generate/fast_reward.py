"""The field reward branch (``reward.path: field``, an option): RewardCS on the DMTet surface every
step, fusing only now and then. Not the default: SDS folds carried faces at nearly every step, so it
fuses nearly every step and costs more than the surface path (README, "reward.path").

The surface path (``pipeline.RewardBranch``) fuses the extracted surface on every scored step: at
grid 128 that is ~170k faces QEM-simplified to 16k and grouped into 256 x 64 patches, ~0.3 s
before the model runs. This branch keeps a fused layout (the patched faces, and each patched
vertex as a point ``u`` of the undeformed lattice, in cells) and moves it with the field:

- Marching tets is exact on the lattice's Kuhn tets: the surface is ``Phi({u : s(u) = 0})`` where
  ``s`` is the piecewise-linear interpolant of the grid's SDF on the tets and ``Phi`` the
  piecewise-linear interpolant of the deformed vertex positions. A point with ``s(u) = 0`` maps
  onto a marching-tets face exactly, so a layout vertex is put on the current surface by Newton
  steps ``u <- u - s(u) grad s / |grad s|^2`` (exact in one step inside a tet) and then ``Phi``.
- So a layout vertex moves along the level set's normal only, and a carried layout encloses the
  fresh fusion's volume (within 0.5% on smooth shapes, tested). Carrying vertices by their grid
  edge instead (the previous carry) slid them along the edges, tangentially, by up to a cell for
  an SDF change of a hundredth of one. Neither carry is invisible to the shipped RewardCS: it
  reads triangulation noise (iid jitter of 1e-5 of the normalised mesh lowers its reward by 0.01,
  1e-4 by 0.07, against a spread of 0.09 over ten shapes), and (before folds were caught) a carried layout scored ~0.05
  below a fresh fusion (the previous carry ~0.07).
- The gradient is the implicit one: the last Newton step is taken differentiably, so
  ``d x / d s_k = -lambda_k J_Phi grad s / |grad s|^2`` (normal motion) and ``d x / d p_k = lambda_k``.
  At a fresh fusion the reward equals the surface path's, and so does the patched vertices' normal
  motion; the surface path adds a tangential one (its vertices slide along grid edges), which
  re-triangulates without changing the shape. With the shipped RewardCS that tangential part is
  most of its gradient (cosine 0.19 and 0.52 to this one's on two shapes at grid 64), and it is
  noise: the surface path's gradient after a fresh fusion of the SDF + 1e-5 has cosine 0.03 to it
  on a torus, and a step along it raises the surface path's reward no more than a random step.
- A vertex that does not land (no zero within ``NEWTON_STEPS`` damped steps), lands farther than
  one cell from where it was, or ends an edge stretched by over a cell since the fusion (the
  surface tore or grew there) counts as changed; when more than ``max_change`` of the layout has,
  or ``max_age`` calls after a fusion, the surface is fused again (in a worker thread while the
  carried layout scores, with ``overlap``; the new layout is then projected like any other).

- Folds: each vertex lands on its own, so a sliver (marching tets makes many; fusion keeps them)
  turns over when its corners move by more than its width. The shipped RewardCS reads folds as
  heavy damage (18 folded faces of 16,384 took a sphere's reward from 3.80 to 1.95), so a fold (a
  face against its fused normal, or newly against one of its vertex normals) fuses again
  (``max_flipped``, default 0). With ``repair_rounds`` > 0 ``layout_repair.untangle`` first smooths the
  folded faces' vertices tangentially and lands them again (10-60 ms); the differentiable Newton step
  is then taken at the repaired points, and only folds it leaves fuse. On the ``dmtet-embedded``
  recipe (grid 24) the branch without it fuses at every step (i.e. it is the surface path); with it
  at 23-73% of steps on three prompts, but on one (teddy bear) a repaired layout with no fold left
  still read up to 1.8 below a fresh fusion on 8% of steps, so it is off by default
  (docs/fast-reward-agreement.md).

``reward.grid`` (``restrict_lattice``) runs all of this on a coarser lattice of the same field:
the SDF tent-filtered onto it, so a fusion costs what it costs at that grid. Measured at 128 -> 64
it is slower per step than the field's own lattice (the filter costs more than the rare fusion saves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dreamcs.generate.layout_repair import (
    MAX_SHIFT_EDGES,
    against_vertex_normals,
    folded,
    neighbour_mean_operator,
    untangle,
    vertex_face_operator,
)
from dreamcs.generate.tetgrid import TetGrid, load_tetgrid
from dreamcs.mesh.channels import patch_extra_channels
from dreamcs.utils import take_rows

#: Newton steps per call: one lands a vertex whose tet still holds the surface, more follow it
#: across tets; each is capped at half a cell so that a vertex walks rather than jumps.
NEWTON_STEPS = 4
MAX_NEWTON_STEP = 0.5


def restrict_lattice(values: Tensor, resolution: int, coarse: int) -> Tensor:
    """Values (M,) on the lattice of ``resolution`` cubes per side -> (M_c,) on its ``coarse`` one.

    The tent filter: each coarse vertex takes the fine values around it, weighted (f - |o|) / f^2
    per axis at offset o (f = resolution / coarse): the transpose of trilinear interpolation from
    the coarse lattice to the fine one, normalised. Linear functions pass exactly (away from the
    lattice's border, where the values are replicated), every fine vertex receives gradient (a
    plain subsampling would feed only every f-th one: a checkerboard in an explicit field), and a
    smooth SDF's zero set moves by O((f h)^2 curvature) only.
    Lattice order: vertex ``i * n^2 + j * n + k`` (n = R + 1), as ``load_tetgrid`` builds it.
    """
    if coarse < 1 or resolution % coarse:
        raise ValueError(f"reward.grid must divide the grid's {resolution} cubes per side, got {coarse}")
    f, n, m = resolution // coarse, resolution + 1, coarse + 1
    if values.shape != (n**3,):
        raise ValueError(f"expected ({n**3},) lattice values for a grid of {resolution}, got {tuple(values.shape)}")
    x = values.reshape(n, n, n)
    for axis in range(3):  # separable: one 1-D tent per axis, on strided views of the padded values
        edge = [x.narrow(axis, 0, 1)] * (f - 1), [x.narrow(axis, n - 1, 1)] * (f - 1)
        xp = torch.cat([*edge[0], x, *edge[1]], axis)  # replicate the border f - 1 times each side
        out = 0
        for o in range(2 * f - 1):  # fine offset o - (f - 1) from each coarse vertex
            pick = [slice(None)] * 3
            pick[axis] = slice(o, o + (m - 1) * f + 1, f)
            out = out + xp[tuple(pick)] * ((f - abs(o - (f - 1))) / (f * f))
        x = out
    return x.reshape(m**3)


def sublattice_indices(resolution: int, coarse: int) -> Tensor:
    """Indices (M_c,) of the fine lattice's vertices at the coarse lattice's (``coarse`` divides
    ``resolution``): vertex ``i * n^2 + j * n + k`` (n = R + 1) for i, j, k multiples of R / coarse."""
    n, idx = resolution + 1, torch.arange(0, resolution + 1, resolution // coarse)
    return (idx.view(-1, 1, 1) * (n * n) + idx.view(1, -1, 1) * n + idx.view(1, 1, -1)).reshape(-1)


def _kuhn_tet(u: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points u (V, 3) in lattice cells -> the Kuhn tet holding each: corner vertex ids (V, 4), axis
    order (V, 3) (descending fractional part), the cell corner (V, 3) and the barycentrics (V, 4).

    Corner k of the tet is the cell corner plus unit steps along the first k axes of the order
    (tetgrid's path 000 -> 111), and the barycentrics are 1 - f1, f1 - f2, f2 - f3, f3 for the
    sorted fractional parts f1 >= f2 >= f3. NumPy: a few dozen small array operations per call,
    which torch's thread pool makes slower on a busy CPU."""
    n = resolution + 1
    cell = np.clip(np.floor(u), 0, resolution - 1)
    order = np.argsort(-(u - cell), axis=1, kind="stable")
    corners = cell.astype(np.int64)[:, None, :] + np.concatenate(
        [np.zeros((len(u), 1, 3), np.int64), np.eye(3, dtype=np.int64)[order].cumsum(1)], 1)
    ids = corners[..., 0] * (n * n) + corners[..., 1] * n + corners[..., 2]
    f = np.take_along_axis(u - cell, order, 1)
    lam = np.stack([1 - f[:, 0], f[:, 0] - f[:, 1], f[:, 1] - f[:, 2], f[:, 2]], 1)
    return ids, order, cell, lam


def _tet_gradient(s: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Gradient (V, 3) per cell of the linear SDF in each tet, from its corner values s (V, 4)."""
    g = np.zeros((len(s), 3))
    np.put_along_axis(g, order, s[:, 1:] - s[:, :-1], 1)
    return g


def _newton(uu: np.ndarray, s_np: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Lattice points uu (V, 3) float64 -> Newton-landed points (V, 3), the landed mask (V,) (|s|
    below 1e-4 of a cell's worth of gradient) and the last tet's data (ids, order, cell, lam, g, g2)."""
    for _ in range(NEWTON_STEPS + 1):
        ids, order, cell, lam = _kuhn_tet(uu, resolution)
        corner = s_np[ids].astype(np.float64)
        value = (lam * corner).sum(1)
        g = _tet_gradient(corner, order)
        g2 = (g * g).sum(1)
        landed = np.abs(value) <= 1e-4 * np.sqrt(g2)
        if landed.all() or _ == NEWTON_STEPS:
            break  # all on the surface (the usual case after one step), or out of steps
        step = value[:, None] * g / np.maximum(g2, 1e-30)[:, None]
        step *= MAX_NEWTON_STEP / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), MAX_NEWTON_STEP)
        uu = np.clip(uu - step, 0, resolution)
    return uu, landed, (ids, order, cell, lam, g, g2)


#: A repair of landed points: (points (V, 3), level-set gradient there (V, 3), a projection of moved
#: points (K, 3) -> (landed points, gradient, landed mask)) -> repaired points (the input if none moved).
Repair = Callable[[np.ndarray, np.ndarray, Callable[[np.ndarray], tuple[np.ndarray, ...]]], np.ndarray]


def project_to_level_set(u: Tensor, sdf: Tensor, positions: Tensor, resolution: int, repair: Repair | None = None
                         ) -> tuple[Tensor, Tensor, Tensor]:
    """Lattice points u (V, 3) (cells, detached) -> the zero set of the grid's piecewise-linear SDF.

    sdf (N,), positions (N, 3): the grid's SDF and deformed vertices (differentiable).
    Returns the surface points (V, 3) (``Phi`` of the projection; differentiable in sdf and
    positions through the last Newton step: for a point on the surface, its normal motion), the
    projected u (V, 3) float64 detached, and a mask (V,) of the points that landed (|s| below 1e-4
    of a cell's worth of gradient). ``repair`` (e.g. ``layout_repair.untangle``) may move the landed
    points along the level set first; the differentiable step is then taken at the repaired points.
    """
    s_np = sdf.detach().cpu().numpy()
    uu, landed, tet = _newton(u.detach().cpu().numpy().astype(np.float64), s_np, resolution)
    if repair is not None:

        def land(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            q, ok, t = _newton(p, s_np, resolution)
            return q, t[4], ok

        fixed = repair(uu, tet[4], land)
        if fixed is not uu:
            uu, landed, tet = _newton(fixed, s_np, resolution)
    ids, order, cell, lam, g, g2 = tet
    # the last step again, differentiably: u* = u - s(u) g / |g|^2 (g held), its value is u
    dev, dt = sdf.device, sdf.dtype
    ids_t, order_t = torch.from_numpy(ids).to(dev), torch.from_numpy(order).to(dev)
    cell_t, uf = torch.from_numpy(cell).to(dev, dt), torch.from_numpy(uu).to(dev, dt)
    s_u = (torch.from_numpy(lam).to(dev, dt) * take_rows(sdf, ids_t)).sum(1, keepdim=True)
    u_star = uf - s_u * torch.from_numpy(g / np.maximum(g2, 1e-30)[:, None]).to(dev, dt)
    f = torch.gather(u_star - cell_t, 1, order_t)
    lam_star = torch.stack([1 - f[:, 0], f[:, 0] - f[:, 1], f[:, 1] - f[:, 2], f[:, 2]], 1)
    return (lam_star[..., None] * take_rows(positions, ids_t)).sum(1), torch.from_numpy(uu), torch.from_numpy(landed)


def lattice_coordinates(edges: Tensor, sdf: Tensor, resolution: int) -> Tensor:
    """Marching-tets vertices as lattice points (V, 3) (cells): each on its grid edge (V, 2) at
    ``t = s_a / (s_a - s_b)``, as ``marching_tets`` places it."""
    n = resolution + 1
    a, b = edges[:, 0], edges[:, 1]
    sa, sb = take_rows(sdf, a).double(), take_rows(sdf, b).double()
    t = (sa / (sa - sb))[:, None]

    def ijk(i: Tensor) -> Tensor:
        return torch.stack([i // (n * n), (i // n) % n, i % n], 1).double()

    return ijk(a) + t * (ijk(b) - ijk(a))


class _Layout:
    """A fused PatchedMesh's faces (P, K, 3), its vertices as lattice points u (V, 3) and, for a
    model that reads it, its boundary channels (P, K, 2): fixed until the next fusion."""

    def __init__(self, patched: Any, u: Tensor, extra_channels: int = 0) -> None:
        self.faces = torch.from_numpy(np.asarray(patched.faces, dtype=np.int64))
        # the extra channels the model reads (open share, boundary turn, isolation), at the fusion
        self.boundary = (patch_extra_channels(torch.as_tensor(patched.vertices, dtype=torch.float32), self.faces,
                                              extra_channels) if extra_channels else None)
        self.u, self.age = u, 0
        self.normals = self.face_normals(u.numpy())
        self.edges = np.unique(np.sort(self.faces.reshape(-1, 3).numpy()[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1), axis=0)
        self.lengths = self.edge_lengths(u.numpy())
        f = self.faces.reshape(-1, 3).numpy()
        self._vf_op = vertex_face_operator(f, len(u))
        self._exempt = against_vertex_normals(u.numpy(), f, self._vf_op)  # so at the fusion already
        self._mean_op: Any = None
        self.folded = self.repaired = 0  # the last repair's folds before it and the ones it undid

    def untangle(self, u: np.ndarray, grad: np.ndarray, land: Any, rounds: int) -> np.ndarray:
        """``layout_repair.untangle`` on this layout (a ``project_to_level_set`` repair); counts kept."""
        if self._mean_op is None:
            self._mean_op = neighbour_mean_operator(self.edges, len(u))
        out, self.folded, left = untangle(u, grad, self.faces.reshape(-1, 3).numpy(), self.flipped, self._mean_op,
                                          land, rounds, MAX_SHIFT_EDGES * float(self.lengths.mean()))
        self.repaired = self.folded - left
        return out

    def edge_lengths(self, u: np.ndarray) -> np.ndarray:
        """Lengths (E,) of the layout's edges at lattice points u (V, 3), in cells."""
        return np.linalg.norm(u[self.edges[:, 0]] - u[self.edges[:, 1]], axis=1)

    def face_normals(self, u: np.ndarray) -> np.ndarray:
        """Unnormalised normals (F, 3) of the layout's faces at lattice points u (V, 3)."""
        f = self.faces.reshape(-1, 3).numpy()
        return np.cross(u[f[:, 1]] - u[f[:, 0]], u[f[:, 2]] - u[f[:, 0]])

    def flipped(self, u: np.ndarray) -> np.ndarray:
        """(F,) faces turned over since the fusion (against their fused normal, or newly against one
        of their vertex normals). Each vertex lands on the level set on its own, so a sliver (marching
        tets makes many, fusion keeps them) folds over when its corners move by more than its width;
        the shipped RewardCS reads a handful of folded faces as heavy damage (18 of 16,384 halved its
        reward on a sphere): ``untangle`` repairs folds, and one it leaves fuses again."""
        return folded(u, self.faces.reshape(-1, 3).numpy(), self.normals, self._vf_op, self._exempt)

    def changed(self, u: np.ndarray, landed: np.ndarray) -> np.ndarray:
        """(V,) vertices that did not land, moved over a cell since the last call, or end an edge
        stretched by over a cell since the fusion (the surface tore or grew there: the layout's
        sampling no longer follows it, though every vertex is on it)."""
        out = ~landed | (np.linalg.norm(u - self.u.numpy(), axis=1) > 1.0)
        out[self.edges[self.edge_lengths(u) > self.lengths + 1.0].ravel()] = True
        return out


class FieldRewardBranch:
    """A DMTet field's grid (SDF, deformed vertices) -> RewardCS reward (), differentiable in both.

    Args:
        model: a RewardCS (frozen here).
        prompt: the text prompt.
        n_patches: P of the fused layout (faces per patch from the model's config).
        max_change: fuse again when more than this share of the layout's vertices did not land.
        max_age: fuse again at the latest this many calls after the last fusion.
        overlap: fuse again in a worker thread while the carried layout scores this step; the new
            layout is used from the next call on (projected onto that call's surface).
        normalize: normalise the patched mesh into [-1, 1]^3 (differentiably) first.
        grid: cubes per side of a coarser lattice of the field's (0: the field's own): the SDF is
            tent-filtered onto it (``restrict_lattice``), and the reward's surface is that one.
        max_flipped: fuse again when more than this many of the layout's faces are still turned over
            after the repair.
        repair_rounds: rounds of ``layout_repair.untangle`` on folded faces after each projection (0: none,
            the default: measured, a repaired layout still reads as damaged on some steps; see the module doc).
    """

    def __init__(self, model: Any, prompt: str, n_patches: int, max_change: float = 0.3, max_age: int = 50,
                 overlap: bool = False, normalize: bool = True, grid: int = 0, max_flipped: int = 0,
                 repair_rounds: int = 0) -> None:
        self.model, self.prompt, self.n_patches, self.normalize = model, prompt, int(n_patches), normalize
        self.faces_per_patch = int(model.config.faces_per_patch)
        self.max_change, self.max_age, self.overlap, self.grid = float(max_change), int(max_age), bool(overlap), int(grid)
        self.max_flipped, self.repair_rounds = int(max_flipped), int(repair_rounds)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self._layout: _Layout | None = None
        self._pool: Any = None
        self._pending: Any = None
        self._coarse: tuple[TetGrid, Tensor] | None = None
        self.n_fused = self.n_calls = 0
        self.last_fused, self.last_change, self.last_flipped, self.last_repaired = False, 0.0, 0, 0

    def lattice(self, sdf: Tensor, positions: Tensor, grid: TetGrid) -> tuple[Tensor, Tensor, TetGrid]:
        """The reward's lattice: (sdf (N,), positions (N, 3), grid) as given, or restricted to
        ``self.grid`` cubes per side (SDF tent-filtered, positions at the coarse lattice's vertices:
        the offsets are at most a quarter of a fine cell, and filtering three more channels would
        cost three times the SDF's filter)."""
        if self.grid <= 0 or self.grid == grid.resolution:
            return sdf, positions, grid
        if self._coarse is None or self._coarse[0].resolution != self.grid or self._coarse[1].device != sdf.device:
            self._coarse = (load_tetgrid(self.grid, scale=grid.scale, device=sdf.device),
                            sublattice_indices(grid.resolution, self.grid).to(sdf.device))
        coarse, index = self._coarse
        return restrict_lattice(sdf, grid.resolution, self.grid), positions.index_select(0, index), coarse

    def _fuse(self, sdf: Tensor, positions: Tensor, grid: TetGrid) -> _Layout:
        """Marching tets + ``fuse`` on detached copies: the layout, its vertices as lattice points."""
        import trimesh

        from dreamcs.mesh import MeshError, fuse

        verts, faces, _, edges = grid.extract(sdf, positions, return_edges=True)
        if len(faces) == 0:
            raise MeshError("<reward surface>", "no faces to fuse")
        pm = fuse(trimesh.Trimesh(verts.double().numpy(), faces.numpy(), process=False),
                  n_patches=self.n_patches, faces_per_patch=self.faces_per_patch)
        # W's rows are barycentric on one input face, which lies in one tet where Phi is affine:
        # W @ u is the lattice point of each patched vertex (W @ verts = Phi(W @ u))
        u = lattice_coordinates(edges, sdf, grid.resolution).numpy()
        return _Layout(pm, torch.from_numpy(pm.W.astype(np.float64) @ u), self.model.config.extra_channels)

    def __call__(self, sdf: Tensor, positions: Tensor, grid: TetGrid, figure_values: Tensor | None = None) -> Tensor:
        """sdf (N,), deformed vertices (N, 3) of ``grid`` (differentiable) -> reward ().

        figure_values: (T,) teacher ramps read off the step's surface (``RewardCS.reward_from_vertices``)."""
        sdf, positions, grid = self.lattice(sdf, positions, grid)
        self.n_calls += 1
        self.last_fused = False
        if self._pending is not None:  # the worker's fusion of an earlier surface (waited for: a
            fut, self._pending = self._pending, None  # run must not depend on timing)
            self._layout, self.last_fused = fut.result(), True
            self.n_fused += 1
        detached = (sdf.detach().cpu(), positions.detach().cpu(), grid.to("cpu"))
        if self._layout is None:
            self._layout, self.last_fused = self._fuse(*detached), True
            self.n_fused += 1
        layout = self._layout
        x, u, landed = project_to_level_set(layout.u.to(sdf.device), sdf, positions, grid.resolution,
                                            self._repair(layout))
        self.last_repaired = layout.repaired
        self.last_change = change = float(layout.changed(u.numpy(), landed.numpy()).mean())
        self.last_flipped = flipped = int(layout.flipped(u.numpy()).sum())
        if change > self.max_change or layout.age >= self.max_age or flipped > self.max_flipped:
            if self.overlap and change <= 2 * self.max_change:
                if self._pending is None:  # score with the carried layout; the new one joins next call
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamcs-fuse")
                    self._pending = self._pool.submit(self._fuse, *detached)
            else:
                self._layout = layout = self._fuse(*detached)
                self.n_fused += 1
                self.last_fused = True
                x, u, _ = project_to_level_set(layout.u.to(sdf.device), sdf, positions, grid.resolution,
                                               self._repair(layout))
        layout.u, layout.age = u.cpu(), layout.age + 1
        if self.normalize:
            from dreamcs.generate.pipeline import normalize_vertices

            x = normalize_vertices(x)
        boundary = None if layout.boundary is None else layout.boundary.to(x.device)
        return self.model.reward_from_vertices(x, layout.faces, self.prompt, boundary=boundary, figure_values=figure_values)

    def _repair(self, layout: _Layout) -> Repair | None:
        layout.folded = layout.repaired = 0
        if self.repair_rounds <= 0:
            return None
        return lambda u, grad, land: layout.untangle(u, grad, land, self.repair_rounds)

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
