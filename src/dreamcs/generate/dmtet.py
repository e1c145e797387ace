"""DMTet: a signed distance field and a bounded deformation on a tetrahedral grid.

The field gives every grid vertex an SDF value and an offset ``tanh(raw) * deform_scale * cell``;
marching tets turns it into a triangle mesh whose vertices are differentiable in both. Two
parameterisations: ``explicit`` (one free value and offset per vertex) or ``mlp`` (an implicit
network with a Fourier or hash-grid encoding, evaluated at the grid vertices).

    field = build_field(DMTetConfig(grid_resolution=32))
    verts, faces = field()                       # (V, 3), (F, 3), CCW seen from outside
    losses = field.regularizers(verts, faces)    # {"sdf", "normal_consistency", "laplacian"}
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch import nn

from dreamcs.generate.encoding import FourierEncoding, HashGridEncoding, TcnnEncoding, mlp
from dreamcs.generate.tetgrid import TetGridBuffers, load_tetgrid


@dataclass
class DMTetConfig:
    """A DMTet field. Field names shared with ``generate.config.GeometryConfig`` mean the same."""

    name: str = "dmtet"
    """Geometry family."""
    grid_resolution: int = 32
    """Cubes per side of the tetrahedral grid (6 R^3 tets, (R+1)^3 vertices)."""
    grid_scale: float = 1.0
    """The grid spans [-scale, scale]^3."""
    parameterization: Literal["explicit", "mlp"] = "explicit"
    """``explicit``: an SDF value and an offset per vertex; ``mlp``: an implicit network."""
    deform_scale: float = 0.25
    """Largest vertex offset per axis as a fraction of a cell (tanh-bounded); 0 = no deformation."""
    init: str = "sphere"
    """``sphere`` or a mesh file path (the SDF of that mesh, as loaded)."""
    init_radius: float = 0.5
    """Radius of the initial sphere."""
    encoding: Literal["fourier", "hashgrid"] = "fourier"
    """MLP input encoding."""
    n_frequencies: int = 6
    """Fourier encoding: frequencies per axis."""
    hash_levels: int = 8
    """Hash grid: resolution levels."""
    hash_features: int = 2
    """Hash grid: features per level."""
    hash_log2_table_size: int = 16
    """Hash grid: log2 of the table size per level."""
    hash_base_resolution: int = 8
    """Hash grid: coarsest resolution."""
    hash_max_resolution: int = 256
    """Hash grid: finest resolution."""
    use_tcnn: bool = False
    """Use tiny-cuda-nn's hash grid (CUDA only) instead of the plain-torch one."""
    hidden_dim: int = 64
    """MLP width."""
    n_hidden_layers: int = 2
    """MLP hidden layers."""
    sphere_bias: float = 0.0
    """MLP: weight of a fixed sphere SDF (radius ``init_radius``) added to the network's output, as
    threestudio's ``sdf_bias: sphere``. It keeps space far from the centre empty unless the guidance
    keeps asking for it, so SDS cannot swell the shape into the grid's walls."""
    init_steps: int = 300
    """MLP: Adam steps fitting the initial SDF (the explicit field is set directly)."""
    init_lr: float = 1e-2
    """MLP: learning rate of the initial fit."""
    appearance: Literal["none", "albedo"] = "none"
    """``none``: geometry only; ``albedo``: also a colour field beside the SDF (the same encoding
    kind, its own weights, sigmoid RGB), queried at surface points by the renderer and export."""
    cache_dir: Optional[str] = None  # noqa: UP045 (OmegaConf structured configs want Optional)
    """Where tet grids are cached (default ~/.cache/dreamcs/tetgrids)."""


def sphere_sdf(points: torch.Tensor, radius: float) -> torch.Tensor:
    """SDF (N,) of a sphere at the origin; negative inside."""
    return points.norm(dim=-1) - radius


class DMTet(TetGridBuffers, nn.Module):
    """The field; ``forward() -> (verts (V, 3), faces (F, 3))`` via marching tets."""

    def __init__(self, config: DMTetConfig | None = None, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.config = cfg = config or DMTetConfig()
        if cfg.parameterization not in ("explicit", "mlp"):
            raise ValueError(f"parameterization {cfg.parameterization!r}: choose explicit or mlp")
        if cfg.appearance not in ("none", "albedo"):
            raise ValueError(f"appearance {cfg.appearance!r}: choose none or albedo")
        if not 0.0 <= cfg.deform_scale < 0.5:
            raise ValueError(f"deform_scale must be in [0, 0.5) of a cell, got {cfg.deform_scale}")
        grid = load_tetgrid(cfg.grid_resolution, scale=cfg.grid_scale, cache_dir=cfg.cache_dir, device=device)
        self._register_grid(grid)
        n = grid.num_vertices
        if cfg.parameterization == "explicit":
            self.sdf = nn.Parameter(torch.zeros(n, device=device))
            self.deform = nn.Parameter(torch.zeros(n, 3, device=device))
        else:
            self.encoding = self._build_encoding().to(device)
            self.net = mlp(self.encoding.out_dim, 4, cfg.hidden_dim, cfg.n_hidden_layers).to(device)
        self._last_sdf: torch.Tensor | None = None
        self._last_positions: torch.Tensor | None = None
        self.initialize()
        # built after the SDF's initial fit, so a geometry-only run and a coloured one start alike
        self.albedo_encoding: nn.Module | None = None
        self.albedo_net: nn.Module | None = None
        if cfg.appearance == "albedo":
            self.albedo_encoding = self._build_encoding().to(device)
            self.albedo_net = mlp(self.albedo_encoding.out_dim, 3, cfg.hidden_dim, cfg.n_hidden_layers).to(device)

    def _build_encoding(self) -> nn.Module:
        cfg, bound = self.config, self.config.grid_scale
        if cfg.encoding == "fourier":
            return FourierEncoding(cfg.n_frequencies, bound)
        if cfg.encoding != "hashgrid":
            raise ValueError(f"encoding {cfg.encoding!r}: choose fourier or hashgrid")
        if cfg.use_tcnn:
            growth = (cfg.hash_max_resolution / cfg.hash_base_resolution) ** (1 / max(cfg.hash_levels - 1, 1))
            return TcnnEncoding(
                {
                    "otype": "HashGrid",
                    "n_levels": cfg.hash_levels,
                    "n_features_per_level": cfg.hash_features,
                    "log2_hashmap_size": cfg.hash_log2_table_size,
                    "base_resolution": cfg.hash_base_resolution,
                    "per_level_scale": growth,
                },
                bound,
            )
        return HashGridEncoding(
            cfg.hash_levels,
            cfg.hash_features,
            cfg.hash_log2_table_size,
            cfg.hash_base_resolution,
            cfg.hash_max_resolution,
            bound,
        )

    # -- the field ---------------------------------------------------------------------------
    def sdf_and_deformation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """SDF (N,) and bounded offsets (N, 3) at the grid vertices."""
        bound = self.config.deform_scale * self.grid.cell_size
        if self.config.parameterization == "explicit":
            return self.sdf, torch.tanh(self.deform) * bound
        out = self.net(self.encoding(self.base_vertices))
        sdf = out[:, 0]
        if self.config.sphere_bias:
            sdf = sdf + self.config.sphere_bias * sphere_sdf(self.base_vertices, self.config.init_radius)
        return sdf, torch.tanh(out[:, 1:]) * bound

    @property
    def has_albedo(self) -> bool:
        return self.albedo_net is not None

    def albedo(self, points: torch.Tensor) -> torch.Tensor:
        """Colours (N, 3) in (0, 1) at world points (N, 3); needs ``appearance: albedo``."""
        if self.albedo_net is None or self.albedo_encoding is None:
            raise RuntimeError("this field has no colours (geometry.appearance is none)")
        return torch.sigmoid(self.albedo_net(self.albedo_encoding(points)))

    def revive_loss(self) -> torch.Tensor | None:
        """For a step whose surface is empty (SDS erased it: thin legs and shelves at 32 px do): the
        SDF of a small core (half the initial sphere) pulled below zero, so that a surface, and
        gradients, return. None before ``forward`` ran with grad."""
        sdf = self._last_sdf
        if sdf is None or not sdf.requires_grad:
            return None
        core = self.base_vertices.norm(dim=-1) < 0.5 * self.config.init_radius
        return torch.relu(sdf[core] + 0.02).mean() if bool(core.any()) else None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The surface: verts (V, 3) float, faces (F, 3) long, CCW seen from outside."""
        verts, faces, _ = self.extract()
        return verts, faces

    def extract(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """verts (V, 3), faces (F, 3), tet_index (F,)."""
        sdf, deform = self.sdf_and_deformation()
        # Plain attribute, not a registered parameter: in explicit mode ``sdf`` *is* the Parameter,
        # and nn.Module would register it a second time under this name (a duplicate state_dict key).
        self.__dict__["_last_sdf"] = sdf
        positions = self.base_vertices + deform
        # the deformed grid, kept for the field reward branch (it reads the grid, not the mesh)
        self.__dict__["_last_positions"] = positions
        return self.grid.extract(sdf, positions)

    # -- initialisation ------------------------------------------------------------------------
    def initialize(self) -> None:
        """Set the field from ``config.init``: ``sphere`` or a mesh path."""
        init = self.config.init
        if init == "sphere":
            target = sphere_sdf(self.base_vertices, self.config.init_radius)
        else:
            target = self.target_sdf_from_mesh(init)
        self.fit_sdf(target)

    def target_sdf_from_mesh(self, mesh: str | os.PathLike | Any) -> torch.Tensor:
        """SDF (N,) of a mesh (a path or a trimesh.Trimesh) at the grid vertices."""
        import trimesh

        from dreamcs.generate.mesh_sdf import mesh_sdf

        if not isinstance(mesh, trimesh.Trimesh):
            path = os.fspath(mesh)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: init mesh not found")
            try:
                mesh = trimesh.load(path, force="mesh", process=True)
            except Exception as e:  # trimesh raises many types for bad files
                raise ValueError(f"{path}: cannot load the init mesh ({e})") from e
            if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
                raise ValueError(f"{path}: the init mesh has no triangles")
        sdf = mesh_sdf(mesh, self.base_vertices.detach().cpu().numpy())
        return torch.from_numpy(sdf).to(self.base_vertices.device)

    def fit_sdf(self, target: torch.Tensor, steps: int | None = None) -> float:
        """Make the field's SDF equal ``target (N,)`` (zero deformation); returns the final MSE."""
        target = target.to(self.base_vertices)
        if self.config.parameterization == "explicit":
            with torch.no_grad():
                self.sdf.copy_(target)
                self.deform.zero_()
            return 0.0
        opt = torch.optim.Adam(self.parameters(), lr=self.config.init_lr)
        # weight the band near the surface, where the extracted mesh is decided
        w = 1.0 + 10.0 * (target.abs() < 2 * self.grid.cell_size).to(target.dtype)
        loss = torch.zeros(())
        for _ in range(self.config.init_steps if steps is None else steps):
            opt.zero_grad(set_to_none=True)
            sdf, deform = self.sdf_and_deformation()
            loss = (w * (sdf - target).square()).mean() + deform.square().mean()
            loss.backward()
            opt.step()
        return float(loss.detach())

    # -- regularisers ----------------------------------------------------------------------------
    def sdf_smoothness(self, sdf: torch.Tensor | None = None) -> torch.Tensor:
        """DMTet's sign-change loss: on grid edges whose SDF changes sign, push each end towards
        the other's sign (binary cross-entropy on the SDF as logits); removes floaters."""
        sdf = self._last_sdf if sdf is None else sdf
        if sdf is None:
            sdf, _ = self.sdf_and_deformation()
        return sdf_sign_loss(sdf, self.grid_edges)

    def regularizers(self, verts: torch.Tensor, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        """``sdf``, ``normal_consistency`` and ``laplacian`` losses (scalars) for the last extraction."""
        return {
            "sdf": self.sdf_smoothness(),
            "normal_consistency": normal_consistency(verts, faces),
            "laplacian": laplacian_smoothing(verts, faces),
        }


def sdf_sign_loss(sdf: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean BCE over sign-changing edges (E, 2) of ``sdf (N,)``; 0 when none changes sign."""
    s = sdf[edges]  # (E, 2)
    cut = (s[:, 0] > 0) != (s[:, 1] > 0)
    s = s[cut]
    if s.shape[0] == 0:
        return sdf.sum() * 0.0
    bce = nn.functional.binary_cross_entropy_with_logits
    return bce(s[:, 0], (s[:, 1] > 0).to(s.dtype)) + bce(s[:, 1], (s[:, 0] > 0).to(s.dtype))


def normal_consistency(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos between the normals of faces sharing an edge (0 for a flat sheet).

    Degenerate faces (marching tets makes them where the SDF is exactly 0 at a grid vertex) have
    no normal; pairs touching one are skipped so their gradient cannot blow up.
    """
    from dreamcs.render.raster import edge_adjacency

    if faces.shape[0] == 0:
        return verts.sum() * 0.0
    _, adj = edge_adjacency(faces, verts.shape[0])
    v0, v1, v2 = (verts[faces[:, i]] for i in range(3))
    cross = torch.cross(v1 - v0, v2 - v0, dim=1)
    with torch.no_grad():
        area = cross.norm(dim=1)
        ok = area > 1e-6 * area.mean().clamp(min=1e-30)
        adj = adj[(adj[:, 1] >= 0) & ok[adj[:, 0]] & ok[adj[:, 1].clamp(min=0)]]
    if adj.shape[0] == 0:
        return verts.sum() * 0.0
    n = cross / torch.where(ok, area, torch.ones_like(area)).unsqueeze(1)
    return (1.0 - (n[adj[:, 0]] * n[adj[:, 1]]).sum(-1)).mean()


def laplacian_smoothing(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Mean squared uniform Laplacian ||mean(neighbours) - v||^2 over the mesh vertices."""
    if faces.shape[0] == 0:
        return verts.sum() * 0.0
    i = faces.reshape(-1)
    j = faces[:, [1, 2, 0]].reshape(-1)
    src, dst = torch.cat([i, j]), torch.cat([j, i])  # each edge in both directions (dupes weigh 2)
    nsum = torch.zeros_like(verts).index_add(0, src, verts[dst])
    deg = torch.zeros(verts.shape[0], dtype=verts.dtype, device=verts.device).index_add(
        0, src, torch.ones_like(src, dtype=verts.dtype)
    )
    lap = nsum / deg.clamp(min=1).unsqueeze(1) - verts
    return lap.square().sum(-1).mean()


def build_field(config: Any | None = None, device: torch.device | str = "cpu") -> DMTet:
    """A DMTet from a :class:`DMTetConfig` or any config with some of its fields (e.g. the
    pipeline's ``GeometryConfig``); fields it lacks keep their defaults."""
    if config is None or isinstance(config, DMTetConfig):
        return DMTet(config, device=device)
    names = {f.name for f in dataclasses.fields(DMTetConfig)}
    src = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    if src.get("name", "dmtet") != "dmtet":
        raise ValueError(f"geometry {src['name']!r}: only dmtet is available")
    return DMTet(DMTetConfig(**{k: v for k, v in src.items() if k in names}), device=device)


def mesh_volume(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Signed volume of a closed mesh (positive when the faces wind outward)."""
    v0, v1, v2 = (verts[faces[:, i]] for i in range(3))
    return (v0 * torch.cross(v1, v2, dim=1)).sum() / 6.0


def as_numpy_mesh(verts: torch.Tensor, faces: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Detached float32 / int64 numpy copies for export."""
    return verts.detach().cpu().numpy().astype(np.float32), faces.detach().cpu().numpy().astype(np.int64)
