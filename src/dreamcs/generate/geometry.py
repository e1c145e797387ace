"""The geometry registry: ``geometry.name`` -> the field a run optimises.

- ``dmtet``: :class:`~dreamcs.generate.dmtet.DMTet` (a surface, rasterised). ``geometry.init``
  may also be the folder of an earlier ``nerf`` run: the DMTet SDF is then fitted to that field
  and its albedo starts as the coarse one, copied or distilled (Magic3D's coarse -> fine,
  threestudio's ``geometry_convert_from``).
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
    """A DMTet started from the newest checkpoint of the coarse nerf run in ``run_dir`` (see below)."""
    return dmtet_from_volume(geo, load_volume_run(run_dir, device), device, source=str(run_dir))


def dmtet_from_volume(geo: Any, coarse: nn.Module, device: torch.device | str = "cpu", source: str = "the coarse field"
                      ) -> nn.Module:
    """A DMTet whose SDF is fitted to ``iso_threshold - density`` of ``coarse`` at its grid vertices,
    and whose albedo (``appearance: albedo``) starts as the coarse one (:func:`carry_albedo`).

    The level is rescaled so its largest magnitude is the grid's half-extent (a linear rescale keeps
    every zero crossing and so the extracted surface); an explicit field takes it exactly, an mlp
    field is fitted to it for ``geometry.init_steps``.
    """
    from dreamcs.generate import dmtet

    names = {f.name for f in dataclasses.fields(dmtet.DMTetConfig)}
    src = {k: v for k, v in dataclasses.asdict(geo).items() if k in names}
    field = dmtet.DMTet(dmtet.DMTetConfig(**{**src, "init": "sphere", "init_steps": 0}), device=device)
    with torch.no_grad():
        pts = field.base_vertices
        level = torch.cat([coarse.config.iso_threshold - coarse.density(pts[i:i + 65536])
                           for i in range(0, pts.shape[0], 65536)])
        if not (level < 0).any():
            peak = float(coarse.config.iso_threshold - level.min())
            raise ValueError(f"{source}: the coarse field has no surface at nerf.iso_threshold="
                             f"{coarse.config.iso_threshold} (its largest density on the grid is {peak:.3g}); "
                             "train the coarse stage longer or lower nerf.iso_threshold")
        target = level * (geo.grid_scale / level.abs().max().clamp(min=1e-8))
    field.fit_sdf(target, steps=geo.init_steps)
    field.config.init = source
    if field.has_albedo and coarse.has_albedo:
        carry_albedo(coarse, field, steps=geo.init_steps, lr=geo.init_lr)
    elif field.has_albedo:
        import warnings

        warnings.warn(f"{source}: the coarse field has no colours (appearance: none); the fine albedo starts fresh",
                      stacklevel=2)
    return field


def carry_albedo(coarse: nn.Module, fine: nn.Module, steps: int = 300, lr: float = 1e-2,
                 n_points: int = 32768) -> tuple[str, float]:
    """Start ``fine``'s albedo field (a DMTet's) as ``coarse``'s (a NeRFField's): ``(how, mse)``.

    ``copied`` (mse 0) when the networks match (the same encoding with the same settings, the same
    MLP widths and depth, as magic3d-sd's two stages): the encoding's weights, the hidden layers,
    and the colour rows 1:4 of the last layer (the NeRF's row 0 is its density), as threestudio's
    ``geometry_convert_from`` copies the coarse feature network. Otherwise ``distilled``: ``steps``
    Adam steps fitting the fine colours to the coarse ones at points on and near the fine
    surface (jittered by a grid cell), where the first renders look; mse is over all those points.
    """
    if _same_albedo_network(coarse, fine):
        with torch.no_grad():
            fine.albedo_encoding.load_state_dict(coarse.encoding.state_dict())
            src, dst = _linears(coarse.net), _linears(fine.albedo_net)
            for i, (a, b) in enumerate(zip(src, dst, strict=True)):
                rows = slice(1, 4) if i == len(src) - 1 else slice(None)
                b.weight.copy_(a.weight[rows])
                b.bias.copy_(a.bias[rows])
        return "copied", 0.0
    points = _points_near_surface(fine, n_points)
    with torch.no_grad():
        target = coarse.albedo(points)
    params = [*fine.albedo_encoding.parameters(), *fine.albedo_net.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(0)  # its own stream: the fine run's seeded one is untouched
    for _ in range(steps):
        batch = torch.randint(0, points.shape[0], (4096,), generator=gen).to(points.device)
        loss = (fine.albedo(points[batch]) - target[batch]).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return "distilled", float((fine.albedo(points) - target).square().mean())


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def _same_albedo_network(coarse: nn.Module, fine: nn.Module) -> bool:
    """The coarse encoding + MLP (1 + 3 outputs) and the fine albedo's (3 outputs) compute alike."""
    ce, fe = coarse.encoding, fine.albedo_encoding
    if type(ce) is not type(fe) or ce.out_dim != fe.out_dim or ce.bound != fe.bound:
        return False
    if getattr(ce, "resolutions", None) != getattr(fe, "resolutions", None) or getattr(ce, "config", None) != getattr(
            fe, "config", None):
        return False
    sc, sf = ce.state_dict(), fe.state_dict()
    if sc.keys() != sf.keys() or any(sc[k].shape != sf[k].shape for k in sc):
        return False
    lc, lf = _linears(coarse.net), _linears(fine.albedo_net)
    if len(lc) != len(lf) or [type(m) for m in coarse.net] != [type(m) for m in fine.albedo_net]:
        return False
    same_hidden = all(a.weight.shape == b.weight.shape for a, b in zip(lc[:-1], lf[:-1], strict=True))
    return same_hidden and lc[-1].weight.shape[0] == 4 and lf[-1].weight.shape == (3, lc[-1].weight.shape[1])


@torch.no_grad()
def _points_near_surface(field: nn.Module, n: int) -> torch.Tensor:
    """(n, 3) points: uniform on the field's surface, plus N(0, cell) jitter (its vertices' box without a surface)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    verts, faces = field()
    dev = verts.device
    if faces.shape[0] == 0:
        lo, hi = field.base_vertices.min(0).values, field.base_vertices.max(0).values
        return lo + (hi - lo) * torch.rand(n, 3, generator=gen).to(dev)
    tri = verts[faces]  # (F, 3, 3)
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1).norm(dim=1)
    pick = torch.multinomial(area.cpu() + 1e-12, n, replacement=True, generator=gen).to(dev)
    u, v = torch.rand(2, n, 1, generator=gen).to(dev)
    flip = (u + v) > 1  # fold the unit square onto the triangle
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    t = tri[pick]
    on = t[:, 0] + u * (t[:, 1] - t[:, 0]) + v * (t[:, 2] - t[:, 0])
    return on + torch.randn(n, 3, generator=gen).to(dev) * field.grid.cell_size
