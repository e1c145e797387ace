"""An occupancy grid over [-radius, radius]^3 that lets the volume renderer skip empty space.

As instant-ngp / threestudio: every k steps the density is sampled at a jittered point in each
cell; a cell's value is max(decay * old, new) and the cell is occupied while that value is above
a threshold. Samples in unoccupied cells get density 0 without evaluating the field.

    grid = OccupancyGrid(32, radius=1.0, threshold=0.01)
    grid.update(field.density)                  # (N, 3) -> (N,)
    keep = grid.query(points)                   # (N,) bool
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class OccupancyGrid(nn.Module):
    """A dense R^3 grid of decayed density maxima; persistent buffers (they go into checkpoints)."""

    def __init__(self, resolution: int = 32, radius: float = 1.0, threshold: float = 0.01, decay: float = 0.95) -> None:
        super().__init__()
        self.resolution, self.radius, self.threshold, self.decay = int(resolution), float(radius), threshold, decay
        r = self.resolution
        # +inf until the first update: everything counts as occupied, so nothing is skipped by mistake
        self.register_buffer("values", torch.full((r, r, r), float("inf")))
        idx = torch.stack(torch.meshgrid(*(torch.arange(r),) * 3, indexing="ij"), -1).reshape(-1, 3)
        self.register_buffer("cells", idx, persistent=False)

    @property
    def cell_size(self) -> float:
        return 2.0 * self.radius / self.resolution

    @property
    def occupied(self) -> torch.Tensor:
        """(R, R, R) bool, dilated by one cell: one jittered sample per cell can miss a thin edge."""
        occ = (self.values > self.threshold).float()[None, None]
        return torch.nn.functional.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0

    @property
    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())

    @torch.no_grad()
    def update(self, density_fn: Callable[[torch.Tensor], torch.Tensor], chunk: int = 65536) -> None:
        """Sample ``density_fn`` at one jittered point per cell (global torch RNG) and decay-max."""
        jitter = torch.rand(self.cells.shape[0], 3, device=self.cells.device)
        points = (self.cells.to(jitter.dtype) + jitter) * self.cell_size - self.radius
        new = torch.cat([density_fn(points[i:i + chunk]) for i in range(0, points.shape[0], chunk)])
        new = new.view(self.values.shape).to(self.values.dtype)
        old = self.values
        self.values.copy_(torch.where(torch.isinf(old), new, torch.maximum(old * self.decay, new)))

    def query(self, points: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the point lies in an occupied cell (points outside the grid are empty)."""
        u = (points + self.radius) / self.cell_size
        inside = ((u >= 0) & (u < self.resolution)).all(-1)
        ijk = u.floor().long().clamp(0, self.resolution - 1)
        occ = self.occupied[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        return occ & inside
