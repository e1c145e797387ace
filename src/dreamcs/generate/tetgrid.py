"""Tetrahedral grids made by the project: a cube lattice cut into 6 tetrahedra per cube.

Every cube is split along its main diagonal (Kuhn / Freudenthal subdivision): one tetrahedron per
path 000 -> 111 through the cube's corners, so all cubes are cut the same way and the grid is
conforming. Every edge of a tetrahedron joins corners ``a`` and ``a + d`` with ``d`` one of seven
directions in {0,1}^3, which lets :mod:`marching_tets` find crossings by slicing the lattice.

Layout (``R`` = resolution, ``M = (R+1)^3``):

- vertex ``(i, j, k)`` (x, y, z lattice indices) has index ``i*(R+1)^2 + j*(R+1) + k``;
- cube ``(i, j, k)`` has index ``c = i*R^2 + j*R + k`` and owns tetrahedra ``6c .. 6c+5``;
- an edge has a *lattice key* ``d*M + a`` (direction ``d``, lower vertex ``a``); ``edges`` lists
  the valid keys in increasing order, and ``tet_edges`` indexes into that list.

The unique edge list and the tet -> edge map are made once per grid (no ``torch.unique`` per step)
and cached on disk as ``.npz``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dreamcs.utils import atomic_write_bytes

#: The seven edge directions of the Kuhn subdivision, as (dx, dy, dz).
EDGE_DIRS = np.array(
    [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)], dtype=np.int64
)
#: Local tetrahedron edges (pairs of corner slots), the order shared with ``marching_tets``.
TET_EDGE_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

_CACHE_VERSION = 1


def _kuhn_tets() -> np.ndarray:
    """(6, 4, 3) corner offsets of the 6 tetrahedra of a unit cube, each positively oriented."""
    tets = []
    for perm in itertools.permutations(range(3)):
        corner = np.zeros(3, dtype=np.int64)
        path = [corner.copy()]
        for axis in perm:
            corner[axis] += 1
            path.append(corner.copy())
        t = np.stack(path)
        if np.linalg.det((t[1:] - t[0]).astype(np.float64)) < 0:
            t = t[[0, 1, 3, 2]]  # an odd permutation: swap two corners to make the volume positive
        tets.append(t)
    return np.stack(tets)


KUHN_TETS = _kuhn_tets()


def _dir_index(delta: np.ndarray) -> np.ndarray:
    """Direction index (0..6) of each offset in ``delta (..., 3)`` (entries in {0, 1})."""
    code = delta[..., 0] * 4 + delta[..., 1] * 2 + delta[..., 2]
    lut = np.full(8, -1, dtype=np.int64)
    for d, (dx, dy, dz) in enumerate(EDGE_DIRS):
        lut[dx * 4 + dy * 2 + dz] = d
    out = lut[code]
    if (out < 0).any():
        raise AssertionError("a Kuhn edge outside the seven directions")
    return out


def local_tet_tables(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Per local tet type: corner vertex offsets ``(6, 4)`` and edge lattice-key offsets ``(6, 6)``.

    Add a cube's lower-corner vertex index to get global vertex indices / edge lattice keys.
    """
    n = resolution + 1
    m = n**3
    lin = np.array([n * n, n, 1], dtype=np.int64)
    corner_off = KUHN_TETS @ lin  # (6, 4)
    edge_off = np.zeros((6, 6), dtype=np.int64)
    for e, (a, b) in enumerate(TET_EDGE_PAIRS):
        ca, cb = KUHN_TETS[:, a], KUHN_TETS[:, b]
        lo = np.where((cb - ca).min(axis=1, keepdims=True) >= 0, ca, cb)
        hi = np.where((cb - ca).min(axis=1, keepdims=True) >= 0, cb, ca)
        edge_off[:, e] = _dir_index(hi - lo) * m + lo @ lin
    return corner_off, edge_off


def build_tetgrid_arrays(resolution: int) -> dict[str, np.ndarray]:
    """Build vertices (M, 3) float32 in [-1, 1]^3, tets (6 R^3, 4), edges (E, 2), tet_edges (6 R^3, 6)."""
    if resolution < 1:
        raise ValueError(f"tet grid resolution must be >= 1, got {resolution}")
    r, n = resolution, resolution + 1
    m = n**3
    ax = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    vertices = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)

    idx = np.arange(r, dtype=np.int64)
    base = (idx[:, None, None] * n * n + idx[None, :, None] * n + idx[None, None, :]).reshape(-1)
    corner_off, edge_off = local_tet_tables(r)
    tets = (base[:, None, None] + corner_off[None]).reshape(-1, 4)
    keys = (base[:, None, None] + edge_off[None]).reshape(-1, 6)

    # Valid lattice keys, direction by direction: the owners a with a + dir_d inside the lattice
    # form a box, so a key's position in the sorted list is arithmetic (no search, no sort).
    ext = n - EDGE_DIRS  # (7, 3) box extents per direction
    start = np.concatenate([[0], np.cumsum(ext.prod(1))])
    valid = np.concatenate(
        [
            d * m
            + (
                np.arange(ext[d, 0])[:, None, None] * n * n
                + np.arange(ext[d, 1])[:, None] * n
                + np.arange(ext[d, 2])
            ).reshape(-1)
            for d in range(7)
        ]
    )
    lin = np.array([n * n, n, 1], dtype=np.int64)
    a = valid % m
    b = a + EDGE_DIRS[valid // m] @ lin
    edges = np.stack([a, b], 1)
    d, own = keys // m, keys % m
    i, j, k = own // (n * n), (own // n) % n, own % n
    tet_edges = start[d] + (i * ext[d, 1] + j) * ext[d, 2] + k
    dtype = np.int32 if m * 7 < 2**31 else np.int64
    return {
        "vertices": vertices,
        "tets": tets.astype(dtype),
        "edges": edges.astype(dtype),
        "tet_edges": tet_edges.astype(dtype),
    }


def default_cache_dir() -> Path:
    return Path(os.environ.get("DREAMCS_CACHE", Path.home() / ".cache" / "dreamcs")) / "tetgrids"


@dataclass
class TetGrid:
    """A lattice tetrahedral grid. All index tensors are int64 on ``device``.

    vertices: (M, 3) float32, M = (R+1)^3, in [-scale, scale]^3
    tets: (T, 4), T = 6 R^3, positively oriented
    edges: (E, 2) unique edges, lower vertex first
    tet_edges: (T, 6) index into ``edges`` for the local pairs ``TET_EDGE_PAIRS``
    """

    resolution: int
    scale: float
    vertices: torch.Tensor
    tets: torch.Tensor
    edges: torch.Tensor
    tet_edges: torch.Tensor

    @property
    def cell_size(self) -> float:
        return 2.0 * self.scale / self.resolution

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    def to(self, device: torch.device | str) -> TetGrid:
        return TetGrid(
            self.resolution,
            self.scale,
            self.vertices.to(device),
            self.tets.to(device),
            self.edges.to(device),
            self.tet_edges.to(device),
        )

    def extract(
        self, sdf: torch.Tensor, vertices: torch.Tensor | None = None, return_edges: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Marching tets on this grid: ``sdf (M,)``, optional deformed ``vertices (M, 3)``."""
        from dreamcs.generate.marching_tets import marching_tetrahedra

        verts = self.vertices if vertices is None else vertices
        return marching_tetrahedra(verts, self.tets, sdf, self.edges, self.tet_edges, grid=self,
                                   return_edges=return_edges)


class TetGridBuffers:
    """Mixin for an ``nn.Module`` field on a tet grid: the grid's tensors as buffers, so that
    ``.to(device)`` moves them, non-persistent because the grid is rebuilt from the config (it stays
    out of checkpoints); ``grid`` is a view of them."""

    def _register_grid(self, grid: TetGrid) -> None:
        self.register_buffer("base_vertices", grid.vertices, persistent=False)  # type: ignore[attr-defined]
        self.register_buffer("grid_edges", grid.edges, persistent=False)  # type: ignore[attr-defined]
        self.register_buffer("grid_tets", grid.tets, persistent=False)  # type: ignore[attr-defined]
        self.register_buffer("grid_tet_edges", grid.tet_edges, persistent=False)  # type: ignore[attr-defined]
        self._grid_size = (grid.resolution, grid.scale)

    @property
    def grid(self) -> TetGrid:
        """The tet grid as a view of this module's buffers (it follows ``.to(device)``)."""
        res, scale = self._grid_size
        return TetGrid(res, scale, self.base_vertices, self.grid_tets, self.grid_edges, self.grid_tet_edges)  # type: ignore[attr-defined]


def load_tetgrid(
    resolution: int,
    *,
    scale: float = 1.0,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    device: torch.device | str = "cpu",
) -> TetGrid:
    """The grid at ``resolution`` (cubes per side), from the disk cache or built (and cached).

    The cache file ``tetgrid_r{R}_v{version}.npz`` is written atomically; a corrupt or mismatched
    file is rebuilt rather than trusted.
    """
    arrays = None
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / f"tetgrid_r{resolution}_v{_CACHE_VERSION}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in ("vertices", "tets", "edges", "tet_edges")}
            if arrays["tets"].shape != (6 * resolution**3, 4):
                arrays = None
        except (OSError, ValueError, KeyError):
            arrays = None  # a torn or foreign file: rebuild and overwrite it
    if arrays is None:
        arrays = build_tetgrid_arrays(resolution)
        if use_cache:
            import io

            buf = io.BytesIO()
            np.savez(buf, **{k: arrays[k] for k in ("vertices", "tets", "edges", "tet_edges")})
            atomic_write_bytes(path, buf.getvalue())
    return TetGrid(
        resolution=resolution,
        scale=float(scale),
        vertices=torch.from_numpy(arrays["vertices"] * np.float32(scale)).to(device),
        tets=torch.from_numpy(arrays["tets"].astype(np.int64)).to(device),
        edges=torch.from_numpy(arrays["edges"].astype(np.int64)).to(device),
        tet_edges=torch.from_numpy(arrays["tet_edges"].astype(np.int64)).to(device),
    )


def load_tets(
    path: str | os.PathLike, *, fit: float | None = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A tet mesh from an ``.npz`` in threestudio's format (``vertices`` (N, 3), ``indices`` (T, 4)).

    For :func:`~dreamcs.generate.marching_tets.marching_tetrahedra` without ``grid=``. ``fit``
    rescales uniformly so that the bounding box is centred in ``[-fit, fit]^3`` (threestudio's
    grids span [0, 1]^3; ours [-1, 1]^3). No pickle is read.

    Returns:
        vertices (N, 3) float32 and tets (T, 4) int64 on ``device``.

    Raises:
        ValueError: naming the file: unreadable, a key missing, bad shapes or values.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("vertices", "indices") if k in z.files}
            found = z.files
    except Exception as e:  # FileNotFoundError, zipfile.BadZipFile, ValueError (a pickle), EOFError ...
        raise ValueError(f"{path}: unreadable tet mesh ({type(e).__name__}: {e})") from None
    if len(arrays) != 2:
        raise ValueError(f"{path}: not a tet mesh: needs 'vertices' and 'indices', found {found}")
    v, t = arrays["vertices"], arrays["indices"]
    if v.ndim != 2 or v.shape[1] != 3 or t.ndim != 2 or t.shape[1] != 4 or len(v) == 0:
        raise ValueError(f"{path}: expected vertices (N, 3) and indices (T, 4), got {v.shape} and {t.shape}")
    if not np.issubdtype(t.dtype, np.integer) or not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"{path}: expected float vertices and integer indices, got {v.dtype} and {t.dtype}")
    if not np.isfinite(v).all():
        raise ValueError(f"{path}: NaN or inf vertex coordinates")
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"{path}: tet indices outside [0, {len(v)})")
    v = v.astype(np.float64)
    if fit is not None:
        lo, hi = v.min(0), v.max(0)
        v = (v - (lo + hi) / 2) * (2.0 * fit / max(float((hi - lo).max()), 1e-12))
    return torch.from_numpy(v.astype(np.float32)).to(device), torch.from_numpy(t.astype(np.int64)).to(device)
