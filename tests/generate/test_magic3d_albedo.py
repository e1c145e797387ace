"""Magic3D's fine stage starts from the coarse stage's colours: the DMTet's albedo is the coarse
NeRF's, copied when the networks match and distilled otherwise, so the first fine render (a
rasterised mesh) shows the colours of the last coarse render (a volume render)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dreamcs import render
from dreamcs.generate.dmtet import DMTet, DMTetConfig
from dreamcs.generate.geometry import carry_albedo, dmtet_from_volume
from dreamcs.generate.nerf import NeRFConfig, NeRFField, render_volume
from dreamcs.render import Cameras

COARSE = DMTetConfig(grid_resolution=16, encoding="fourier", n_frequencies=2, hidden_dim=32, n_hidden_layers=2,
                     appearance="albedo")
# a sharp blob: density 4000 per unit inside r = 0.5, so the volume render's surface (optical depth 1
# at r ~ 0.478) and the iso-surface (density 100 at r = 0.475) are within a sample of each other
SHARP = NeRFConfig(blob_density=2000.0, blob_radius=0.5, iso_threshold=100.0, n_samples=256, occupancy=False)
CAMS = Cameras(torch.tensor([15.0, 30.0, -10.0]), torch.tensor([0.0, 120.0, 250.0]), torch.tensor([2.4]),
               torch.tensor([40.0]))


def coloured_coarse() -> NeRFField:
    """A coarse field with strong, smooth colours (the colour rows of its last layer scaled up)."""
    torch.manual_seed(0)
    field = NeRFField(COARSE, SHARP)
    with torch.no_grad():
        field.net[-1].weight[1:4] *= 12.0
        field.net[-1].bias[1:4] = 0.0
    return field


def renders(coarse: NeRFField, fine: DMTet, albedo=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel |coarse volume render - fine mesh render| (N, 3) where both are opaque, and the
    coarse render's colour spread there (the size of a difference that would matter)."""
    with torch.no_grad():
        vol = render_volume(coarse, CAMS, 48, shading="albedo")
        verts, faces = fine()
        mesh = render.render(verts, faces, CAMS, 48, render.RenderConfig(shading="albedo"),
                             albedo=fine.albedo if albedo is None else albedo)
    both = ((vol["alpha"] > 0.99) & (mesh["alpha"] > 0.99))[..., 0]
    assert int(both.sum()) > 500  # most of the ball, in three views
    return (vol["image"][both] - mesh["image"][both]).abs(), vol["image"][both].std(0)


def test_matching_networks_copy_the_coarse_albedo_exactly() -> None:
    coarse = coloured_coarse()
    fine = dmtet_from_volume(dataclasses.replace(COARSE, parameterization="explicit"), coarse)
    with torch.no_grad():
        verts, _ = fine()
        assert torch.allclose(fine.albedo(verts), coarse.albedo(verts), atol=1e-6)
    diff, spread = renders(coarse, fine)
    fresh = DMTet(dataclasses.replace(COARSE, parameterization="explicit"))  # what the fine stage used to start from
    diff_fresh, _ = renders(coarse, fine, albedo=fresh.albedo)
    assert float(spread.mean()) > 0.07  # the colours vary: matching them says something
    # the first fine render shows the coarse colours (up to the volume's blend across a sample or two)
    assert float(diff.mean()) < 0.02 and float(diff_fresh.mean()) > 8 * float(diff.mean()), (
        float(diff.mean()), float(diff_fresh.mean()))


def test_other_networks_distil_the_coarse_albedo_near_the_surface() -> None:
    coarse = coloured_coarse()
    geo = dataclasses.replace(COARSE, parameterization="explicit", n_frequencies=3, hidden_dim=48, n_hidden_layers=1)
    fine = dmtet_from_volume(geo, coarse)  # the networks differ: carry_albedo distils
    how, mse = carry_albedo(coarse, fine, steps=0)  # 0 more steps: the error it was left with
    assert how == "distilled" and mse < 1e-3, mse
    diff, _ = renders(coarse, fine)
    assert float(diff.mean()) < 0.02, float(diff.mean())


def test_a_coarse_field_without_colours_leaves_a_fresh_albedo() -> None:
    torch.manual_seed(0)
    coarse = NeRFField(dataclasses.replace(COARSE, appearance="none"), SHARP)
    with pytest.warns(UserWarning, match="starts fresh"):
        fine = dmtet_from_volume(dataclasses.replace(COARSE, parameterization="explicit"), coarse)
    assert fine.has_albedo
