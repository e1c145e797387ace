"""The geometry registry: ``geometry.name`` -> the field a run optimises.

- ``dmtet``: :class:`~dreamcs.generate.dmtet.DMTet` (a surface, rasterised). ``geometry.init``
  may also be the folder of an earlier ``nerf`` run: the DMTet SDF is then fitted to that field
  (Magic3D's coarse -> fine, threestudio's ``geometry_convert_from``).
- ``nerf``: :class:`~dreamcs.generate.nerf.NeRFField` (a density field, volume-rendered).

Every geometry is an ``nn.Module`` with ``forward() -> (verts, faces)`` (its surface, for the
reward, ``mesh_every`` and the export), ``has_albedo``, ``albedo(points)`` and
``regularizers(verts, faces)``; a volume geometry also has ``volume = True``.

    field = build_geometry(cfg, device)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dreamcs.registry import Registry

GEOMETRIES: Registry[Callable[[Any, torch.device], nn.Module]] = Registry("geometry")


@GEOMETRIES.register("dmtet")
def _build_dmtet(cfg: Any, device: torch.device) -> nn.Module:
    from dreamcs.generate import dmtet

    init = cfg.geometry.init
    if init != "sphere" and Path(init).is_dir():
        return dmtet_from_volume_run(cfg.geometry, Path(init), device)
    return dmtet.build_field(cfg.geometry, device=device)


@GEOMETRIES.register("nerf")
def _build_nerf(cfg: Any, device: torch.device) -> nn.Module:
    from dreamcs.generate.nerf import NeRFField

    return NeRFField(cfg.geometry, cfg.nerf, device=device)


def build_geometry(cfg: Any, device: torch.device | str = "cpu") -> nn.Module:
    """The field named by ``cfg.geometry.name`` (``cfg``: a ``GenerateConfig``)."""
    name = cfg.geometry.name
    if name not in GEOMETRIES:
        raise ValueError(f"geometry.name: {name!r} is not one of {', '.join(GEOMETRIES.names())}")
    return GEOMETRIES.get(name)(cfg, torch.device(device))


def load_volume_run(run_dir: Path, device: torch.device | str = "cpu") -> nn.Module:
    """The newest checkpoint of a ``geometry.name: nerf`` run folder, as a ``NeRFField``."""
    from dreamcs.config import load_config
    from dreamcs.generate import checkpoint as ckpt
    from dreamcs.generate.config import GenerateConfig
    from dreamcs.generate.nerf import NeRFField

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: geometry.init names a folder, but it holds no run (no config.yaml)")
    cfg = load_config(GenerateConfig, cfg_path)
    if cfg.geometry.name != "nerf":
        raise ValueError(f"{cfg_path}: geometry.init must be a nerf run to convert from, this one is {cfg.geometry.name!r}")
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise FileNotFoundError(f"{run_dir / 'checkpoints'}: the coarse run has no checkpoint yet")
    field = NeRFField(cfg.geometry, cfg.nerf, device=device)
    dummy = torch.optim.Adam(field.parameters())
    # restore_rng=False: converting must not disturb the fine run's seeded stream
    ckpt.load_checkpoint(found[-1], {"field": field}, _OptimizerSink(dummy), restore_rng=False)
    return field


class _OptimizerSink:
    """Takes the coarse run's optimizer state and drops it (only the field is converted)."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt

    def load_state_dict(self, state: dict) -> None:
        pass


def dmtet_from_volume_run(geo: Any, run_dir: Path, device: torch.device) -> nn.Module:
    """A DMTet whose SDF is fitted to ``iso_threshold - density`` of a coarse nerf run at its grid vertices.

    The level is rescaled so its largest magnitude is the grid's half-extent (a linear rescale keeps
    every zero crossing and so the extracted surface); an explicit field takes it exactly, an mlp
    field is fitted to it for ``geometry.init_steps``.
    """
    from dreamcs.generate import dmtet

    names = {f.name for f in dataclasses.fields(dmtet.DMTetConfig)}
    src = {k: v for k, v in dataclasses.asdict(geo).items() if k in names}
    field = dmtet.DMTet(dmtet.DMTetConfig(**{**src, "init": "sphere", "init_steps": 0}), device=device)
    coarse = load_volume_run(run_dir, device)
    with torch.no_grad():
        pts = field.base_vertices
        level = torch.cat([coarse.config.iso_threshold - coarse.density(pts[i:i + 65536])
                           for i in range(0, pts.shape[0], 65536)])
        if not (level < 0).any():
            peak = float(coarse.config.iso_threshold - level.min())
            raise ValueError(f"{run_dir}: the coarse field has no surface at nerf.iso_threshold="
                             f"{coarse.config.iso_threshold} (its largest density on the grid is {peak:.3g}); "
                             "train the coarse stage longer or lower nerf.iso_threshold")
        target = level * (geo.grid_scale / level.abs().max().clamp(min=1e-8))
    field.fit_sdf(target, steps=geo.init_steps)
    field.config.init = str(run_dir)
    return field
