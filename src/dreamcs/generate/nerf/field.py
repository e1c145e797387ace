"""The density + albedo field of the implicit volume geometry (threestudio's ``implicit-volume``).

density(x) = softplus(MLP(enc(x))[0] + blob(x)), with DreamFusion's density bias
blob(x) = blob_density * (1 - |x| / blob_radius): a soft ball at the start, and empty space far
from the centre unless the guidance keeps asking for it. albedo(x) = sigmoid(MLP(enc(x))[1:4]).
The encoding and MLP settings are the ``geometry`` section's (the same keys as DMTet's field);
the volume settings are the ``nerf`` section (:class:`NeRFConfig`).

The mesh (for the 3D reward, ``mesh_every`` and the export) is marching tets on the tet grid of
``geometry.grid_resolution`` with SDF := ``iso_threshold - density``, so a reward gradient on
the mesh vertices flows into the density field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dreamcs.generate.encoding import FourierEncoding, HashGridEncoding, TcnnEncoding, mlp
from dreamcs.generate.nerf.occupancy import OccupancyGrid
from dreamcs.generate.tetgrid import TetGridBuffers, load_tetgrid


@dataclass
class NeRFConfig:
    """The volume settings of ``geometry.name: nerf`` (encoding and MLP come from ``geometry``)."""

    density_activation: str = "softplus"
    """``softplus`` or ``exp`` (threestudio's trunc_exp without the clamp of its gradient)."""
    blob_density: float = 10.0
    """DreamFusion's density bias at the centre (threestudio ``density_blob_scale``)."""
    blob_radius: float = 0.5
    """Where the bias crosses 0 (threestudio ``density_blob_std``)."""
    iso_threshold: float = 5.0
    """Density of the extracted surface: the mesh is marching tets on ``iso_threshold - density``."""
    radius: float = 1.0
    """Rays are sampled inside the sphere of this radius (the object lives in [-1, 1]^3)."""
    n_samples: int = 64
    """Stratified samples per ray (jittered while training, mid-points otherwise)."""
    occupancy: bool = True
    """Skip empty space with an occupancy grid (instant-ngp / threestudio style)."""
    occupancy_resolution: int = 32
    """Cells per side of the occupancy grid over [-radius, radius]^3."""
    occupancy_update_every: int = 16
    """Re-evaluate the grid every k steps (and at step 0)."""
    occupancy_threshold: float = 0.01
    """A cell is occupied while its (decayed) sampled density x the mean sample spacing
    (2 sqrt(3) radius / n_samples) is above this: threestudio / nerfacc's ``occ_thre`` on density x step."""
    occupancy_decay: float = 0.95
    """Each update keeps max(decay * old, new): a cell empties only after staying empty a while."""
    backend: str = "torch"
    """Sample placement (``dreamcs.generate.nerf.accel``): ``torch`` (the reference, N samples a ray),
    ``nerfacc`` (its CUDA ray marching through the occupied cells only, steps of 2 radius / N;
    ``pip install nerfacc``, device=cuda) or ``auto`` (nerfacc on a CUDA device where its extension
    loads, torch otherwise: on a CPU always torch). The default stays torch until the nerfacc path
    has passed ``make gpu-check`` on a GPU: it is written against nerfacc's API but has not run yet."""

    def validate(self) -> None:
        if self.density_activation not in ("softplus", "exp"):
            raise ValueError(f"nerf.density_activation: {self.density_activation!r} is not softplus or exp")
        if self.n_samples < 2 or self.occupancy_resolution < 2 or self.occupancy_update_every < 1:
            raise ValueError("nerf.n_samples and nerf.occupancy_resolution must be >= 2, occupancy_update_every >= 1")
        if self.radius <= 0 or self.blob_radius <= 0 or self.iso_threshold <= 0:
            raise ValueError("nerf.radius, nerf.blob_radius and nerf.iso_threshold must be > 0")
        if self.backend not in ("auto", "torch", "nerfacc"):
            raise ValueError(f"nerf.backend: {self.backend!r} is not auto, torch or nerfacc")
        if not 0.0 <= self.occupancy_decay <= 1.0:
            raise ValueError(f"nerf.occupancy_decay must be in [0, 1], got {self.occupancy_decay}")


def build_encoding(geo: Any) -> nn.Module:
    """The input encoding named by a geometry config (``encoding``, ``n_frequencies``, ``hash_*``)."""
    bound = geo.grid_scale
    if geo.encoding == "fourier":
        return FourierEncoding(geo.n_frequencies, bound)
    if geo.encoding != "hashgrid":
        raise ValueError(f"geometry.encoding {geo.encoding!r}: choose fourier or hashgrid")
    if geo.use_tcnn:
        growth = (geo.hash_max_resolution / geo.hash_base_resolution) ** (1 / max(geo.hash_levels - 1, 1))
        return TcnnEncoding({"otype": "HashGrid", "n_levels": geo.hash_levels, "n_features_per_level": geo.hash_features,
                             "log2_hashmap_size": geo.hash_log2_table_size,
                             "base_resolution": geo.hash_base_resolution, "per_level_scale": growth}, bound)
    return HashGridEncoding(geo.hash_levels, geo.hash_features, geo.hash_log2_table_size, geo.hash_base_resolution,
                            geo.hash_max_resolution, bound)


class NeRFField(TetGridBuffers, nn.Module):
    """Density (N,) and albedo (N, 3) at world points; ``forward() -> (verts, faces)`` the iso-surface.

    ``volume = True`` tells the pipeline to render this geometry by volume rendering.
    """

    volume = True

    def __init__(self, geo: Any, nerf: NeRFConfig | None = None, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.geo, self.config = geo, nerf or NeRFConfig()
        self.config.validate()
        if geo.appearance not in ("none", "albedo"):
            raise ValueError(f"geometry.appearance {geo.appearance!r}: choose none or albedo")
        self.encoding = build_encoding(geo).to(device)
        self._n_out = 4 if geo.appearance == "albedo" else 1
        self.net = mlp(self.encoding.out_dim, self._n_out, geo.hidden_dim, geo.n_hidden_layers).to(device)
        grid = load_tetgrid(geo.grid_resolution, scale=geo.grid_scale, cache_dir=geo.cache_dir, device=device)
        self._register_grid(grid)
        c = self.config
        # a submodule with persistent buffers: a resumed run skips the same space as the original
        step = 2.0 * math.sqrt(3.0) * c.radius / c.n_samples
        self.occupancy = OccupancyGrid(c.occupancy_resolution, c.radius, c.occupancy_threshold / step, c.occupancy_decay)
        self.occupancy.to(device)

    # -- the field -------------------------------------------------------------------------------
    def density_bias(self, points: torch.Tensor) -> torch.Tensor:
        """DreamFusion's blob (N,): ``blob_density * (1 - |x| / blob_radius)``."""
        c = self.config
        return c.blob_density * (1.0 - points.norm(dim=-1) / c.blob_radius)

    def _raw(self, points: torch.Tensor) -> torch.Tensor:
        return self.net(self.encoding(points))

    def _activate(self, raw_density: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        x = raw_density + self.density_bias(points)
        return F.softplus(x) if self.config.density_activation == "softplus" else torch.exp(x.clamp(max=15.0))

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density (N,) >= 0 at world points (N, 3)."""
        return self._activate(self._raw(points)[:, 0], points)

    def density_and_albedo(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Density (N,) and albedo (N, 3) in (0, 1) (None without ``appearance: albedo``), one MLP pass."""
        out = self._raw(points)
        albedo = torch.sigmoid(out[:, 1:4]) if self._n_out == 4 else None
        return self._activate(out[:, 0], points), albedo

    @property
    def has_albedo(self) -> bool:
        return self._n_out == 4

    def albedo(self, points: torch.Tensor) -> torch.Tensor:
        """Colours (N, 3) in (0, 1) at world points (N, 3); needs ``appearance: albedo``."""
        if not self.has_albedo:
            raise RuntimeError("this field has no colours (geometry.appearance is none)")
        return torch.sigmoid(self._raw(points)[:, 1:4])

    # -- occupancy ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update_occupancy(self) -> None:
        """Re-evaluate the occupancy grid from the current density."""
        self.occupancy.update(self.density)

    # -- the mesh ----------------------------------------------------------------------------------
    def level(self) -> torch.Tensor:
        """SDF-like level (M,) at the tet grid vertices: ``iso_threshold - density`` (negative inside)."""
        return self.config.iso_threshold - self.density(self.base_vertices)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The iso-surface: verts (V, 3) differentiable in the density field, faces (F, 3), CCW."""
        verts, faces, _ = self.grid.extract(self.level())
        return verts, faces

    def regularizers(self, verts: torch.Tensor, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        """None on the mesh: the volume losses (orient, opacity) come from the renders."""
        return {}
