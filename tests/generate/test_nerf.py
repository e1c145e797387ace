"""The implicit volume geometry: volume rendering against closed forms, the occupancy grid, the
orientation and opacity losses, the iso-surface mesh and the reward gradient into the density."""

from __future__ import annotations

import math

import pytest
import torch

from dreamcs.generate.dmtet import DMTetConfig
from dreamcs.generate.nerf import NeRFConfig, NeRFField, OccupancyGrid, render_volume
from dreamcs.generate.nerf.volume_render import opacity_loss, sphere_near_far
from dreamcs.render import Cameras

GEO = DMTetConfig(grid_resolution=12, encoding="fourier", n_frequencies=3, hidden_dim=32, n_hidden_layers=2)
FRONT = Cameras(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([2.6]), torch.tensor([50.0]))


class AnalyticField(NeRFField):
    """A NeRFField whose density is a given function of the point (the renderer's ground truth)."""

    def __init__(self, fn, **nerf) -> None:
        super().__init__(GEO, NeRFConfig(**nerf))
        self.fn = fn

    def density_and_albedo(self, points):
        return self.fn(points), None


def test_uniform_density_alpha_matches_beer_lambert() -> None:
    field = AnalyticField(lambda p: torch.full_like(p[:, 0], 0.5), radius=1.0, n_samples=256, occupancy=False)
    out = render_volume(field, FRONT, 33, shading="textureless")
    centre = float(out["alpha"][0, 16, 16, 0])  # the central ray crosses the unit sphere along its diameter
    assert centre == pytest.approx(1 - math.exp(-0.5 * 2.0), abs=2e-3)
    assert float(out["alpha"][0, 0, 0, 0]) == 0.0  # corner rays miss the sphere (fov 50 at distance 2.6)
    o = torch.tensor([[0.0, 0.0, 2.6]])
    near, far, hit = sphere_near_far(o, torch.tensor([[0.0, 0.0, -1.0]]), 1.0)
    assert bool(hit[0]) and float(near[0]) == pytest.approx(1.6) and float(far[0]) == pytest.approx(3.6)


def test_orientation_loss_penalises_normals_facing_away() -> None:
    solid = AnalyticField(lambda p: 40 * torch.sigmoid((0.5 - p.norm(dim=-1)) * 20), n_samples=96, occupancy=False)
    hollow = AnalyticField(lambda p: 40 * torch.sigmoid((p.norm(dim=-1) - 0.5) * 20), n_samples=96, occupancy=False)
    o_solid = float(render_volume(solid, FRONT, 24, shading="textureless")["orient"].detach())
    o_hollow = float(render_volume(hollow, FRONT, 24, shading="textureless")["orient"].detach())
    assert o_hollow > 0.1 and o_solid < 0.05 * o_hollow


def test_textureless_headlight_is_brightest_facing_the_camera() -> None:
    ball = AnalyticField(lambda p: 60 * torch.sigmoid((0.6 - p.norm(dim=-1)) * 30), n_samples=128, occupancy=False)
    img = render_volume(ball, FRONT, 33, shading="textureless", ambient=0.2)["image"][0, ..., 0].detach()
    assert float(img[16, 16]) == pytest.approx(0.8, abs=0.03)  # grey 0.8 x (0.2 + 0.8 n.l), n.l = 1
    assert float(img[16, 16]) > float(img[16, 10]) > 0.05  # darker towards the silhouette


def _fit_box(field: NeRFField, steps: int = 150) -> None:
    """Make the field a dense box (density ~ 30 inside, ~0 outside): a converged-ish field."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    half = torch.tensor([0.5, 0.3, 0.4])
    for _ in range(steps):
        p = torch.rand(4096, 3) * 2.2 - 1.1
        inside = (p.abs() < half).all(-1).float()
        loss = (field.density(p) - 30.0 * inside).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_occupancy_skipping_gives_the_same_image_on_a_converged_field() -> None:
    field = NeRFField(GEO, NeRFConfig(n_samples=64, occupancy_resolution=24, radius=1.0))
    _fit_box(field)
    with torch.no_grad():
        field.update_occupancy()
    assert 0.02 < field.occupancy.occupied_fraction < 0.5
    cams = Cameras(torch.tensor([20.0, -5.0]), torch.tensor([30.0, 200.0]), torch.tensor([2.6]), torch.tensor([50.0]))
    with torch.no_grad():
        full = render_volume(field, cams, 32, shading="textureless", use_occupancy=False)
        fast = render_volume(field, cams, 32, shading="textureless", use_occupancy=True)
    assert fast["n_evaluated"] < 0.7 * full["n_evaluated"]
    # skipped cells hold density x step < 0.01 (threestudio's threshold): a few per cent at most on a pixel
    diff = (fast["image"] - full["image"]).abs()
    assert diff.max() < 0.05 and diff.mean() < 0.003, (float(diff.max()), float(diff.mean()))
    assert (fast["alpha"] - full["alpha"]).abs().max() < 0.1  # several skipped samples on one ray add up
    assert float(full["alpha"].max()) > 0.9  # the box is there and opaque


def test_occupancy_grid_starts_full_and_decays() -> None:
    grid = OccupancyGrid(8, radius=1.0, threshold=0.5, decay=0.5)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [1.5, 0.0, 0.0]])
    assert grid.query(pts).tolist() == [True, True, False]  # nothing skipped before the first update
    grid.update(lambda p: (p.norm(dim=-1) < 0.3).float() * 2.0)
    assert grid.query(pts).tolist() == [True, False, False]
    grid.update(lambda p: torch.zeros_like(p[:, 0]))  # emptied: 2 -> 1 -> 0.5 -> ...
    assert grid.query(pts)[0]
    grid.update(lambda p: torch.zeros_like(p[:, 0]))
    assert not grid.query(pts)[0]


def test_opacity_loss_pushes_density_down() -> None:
    assert float(opacity_loss(torch.zeros(1, 4, 4, 1))) == pytest.approx(0.1)
    assert float(opacity_loss(torch.ones(1, 4, 4, 1))) == pytest.approx(math.sqrt(1.01))
    torch.manual_seed(0)
    field = NeRFField(GEO, NeRFConfig(n_samples=32, occupancy=False))
    opt = torch.optim.SGD(field.parameters(), lr=1.0)
    before = render_volume(field, FRONT, 16, shading="albedo" if field.has_albedo else "textureless")["alpha"]
    opacity_loss(before).backward()
    opt.step()
    with torch.no_grad():
        after = render_volume(field, FRONT, 16, shading="textureless")["alpha"]
    assert float(after.sum()) < float(before.detach().sum()) - 1e-3


def test_iso_surface_of_the_initial_blob_is_a_sphere() -> None:
    torch.manual_seed(0)
    nerf = NeRFConfig(blob_density=10.0, blob_radius=0.5, iso_threshold=2.5)
    field = NeRFField(DMTetConfig(grid_resolution=16, encoding="fourier", n_frequencies=2), nerf)
    verts, faces = field()
    # softplus(10 (1 - r / 0.5)) = 2.5  ->  r = 0.5 (1 - log(e^2.5 - 1) / 10), up to the MLP's small output
    expected = 0.5 * (1 - math.log(math.expm1(2.5)) / 10)
    radius = verts.detach().norm(dim=1)
    assert faces.shape[0] > 100 and float((radius.mean() - expected).abs()) < 0.05
    assert float(radius.std()) < 0.03


def test_reward_gradient_reaches_the_density_field() -> None:
    """d r / d theta through marching tets on iso - density -> fuse -> RewardCS = finite differences."""
    from dreamcs.generate.outputs import to_trimesh
    from dreamcs.generate.pipeline import normalize_vertices
    from dreamcs.mesh import fuse
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(0)
    model = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32")).eval()
    field = NeRFField(DMTetConfig(grid_resolution=8, encoding="fourier", n_frequencies=2, hidden_dim=16),
                      NeRFConfig(iso_threshold=2.5))
    verts, faces = field()
    pm = fuse(to_trimesh(verts, faces), n_patches=8, faces_per_patch=16)

    def reward_of_field() -> torch.Tensor:
        v, f = field()
        assert torch.equal(f, faces)  # the perturbation must not change the topology
        return model.reward_from_vertices(normalize_vertices(pm.vertices_from(v)), pm.faces, "a vase")

    params = [p for p in field.parameters() if p.requires_grad]
    grads = torch.autograd.grad(reward_of_field(), params)
    flat = torch.cat([g.flatten() for g in grads])
    assert torch.isfinite(flat).all() and flat.abs().sum() > 0
    # finite differences on the density output's bias (it moves the whole iso-surface at once): the
    # least-squares slope of r over 11 small symmetric steps (the reward is curved over wider ones)
    bias = field.net[-1].bias
    g_bias = float(grads[[i for i, p in enumerate(params) if p is bias][0]][0])
    steps = torch.linspace(-0.01, 0.01, 11)
    rs = []
    with torch.no_grad():
        b0 = float(bias[0])
        for e in steps:
            bias[0] = b0 + float(e)
            rs.append(float(reward_of_field()))
        bias[0] = b0
    rs_t = torch.tensor(rs, dtype=torch.float64)
    fd = float(((rs_t - rs_t.mean()) * steps.double()).sum() / steps.double().square().sum())
    # with the current RewardCS (per-channel standardised features, attention pooling) the slope is
    # ~10% above autograd at both +-0.05 and +-0.01 (float64 gradchecks of the reward alone agree to
    # 1e-8, so the gap sits in the field -> surface part; open question, see the issue note)
    assert abs(g_bias) > 1e-4 and fd == pytest.approx(g_bias, rel=0.15), (fd, g_bias)
