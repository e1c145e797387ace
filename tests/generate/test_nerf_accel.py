"""The optional nerfacc path of the volume renderer: backend dispatch, and the packed compositing it
uses checked against the dense torch reference on the same samples (on the CPU). The nerfacc
sampler itself runs only on a CUDA machine with nerfacc installed (the last test)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from dreamcs.config import load_config
from dreamcs.generate.config import GenerateConfig, resolve_config_path
from dreamcs.generate.dmtet import DMTetConfig
from dreamcs.generate.nerf import NeRFConfig, NeRFField, accel, render_volume
from dreamcs.generate.nerf import volume_render as vr
from dreamcs.render import Cameras

GEO = DMTetConfig(grid_resolution=8, encoding="fourier", n_frequencies=3, hidden_dim=32, n_hidden_layers=2,
                  appearance="albedo")
CAMS = Cameras(torch.tensor([20.0, -5.0]), torch.tensor([30.0, 200.0]), torch.tensor([2.6]), torch.tensor([50.0]))


@functools.lru_cache(maxsize=1)
def _box_state() -> dict:
    """A field fitted to a box (density ~30 inside) with colours, and its occupancy grid updated."""
    torch.manual_seed(0)
    field = NeRFField(GEO, NeRFConfig(n_samples=48, occupancy_resolution=16, radius=1.0))
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    half = torch.tensor([0.5, 0.3, 0.4])
    for _ in range(120):
        p = torch.rand(2048, 3) * 2.2 - 1.1
        sigma, albedo = field.density_and_albedo(p)
        loss = (sigma - 30.0 * (p.abs() < half).all(-1).float()).square().mean() + (albedo - (p + 1) / 2).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        field.update_occupancy()
    return field.state_dict()


def box_field() -> NeRFField:
    field = NeRFField(GEO, NeRFConfig(n_samples=48, occupancy_resolution=16, radius=1.0))
    field.load_state_dict(_box_state())
    return field


def test_packed_weights_match_nerfaccs_documented_example() -> None:
    """nerfacc's render_transmittance_from_density docstring: 3 rays, unit intervals."""
    sigma = torch.tensor([0.4, 0.8, 0.1, 0.8, 0.1, 0.0, 0.9])
    ray_s = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    w = accel.packed_weights(ray_s, sigma, torch.ones(7), 3)
    trans = torch.tensor([1.00, 0.67, 0.30, 1.00, 0.45, 1.00, 1.00])
    alphas = torch.tensor([0.33, 0.55, 0.095, 0.55, 0.095, 0.00, 0.59])
    assert torch.allclose(w, trans * alphas, atol=6e-3)
    # a ray without samples between two with samples changes nothing
    w2 = accel.packed_weights(torch.tensor([0, 0, 0, 2, 2, 3, 3]), sigma, torch.ones(7), 4)
    assert torch.equal(w, w2)
    assert accel.packed_weights(ray_s[:0], sigma[:0], sigma[:0], 3).shape == (0,)


@pytest.mark.parametrize("shading", ["albedo", "lambertian", "textureless"])
def test_packed_marching_reproduces_the_dense_reference(shading) -> None:
    """The nerfacc path's sums (march_packed) over the torch path's own kept samples, packed: the same
    image, alpha, depth, normals, orientation loss and field gradient."""
    field = box_field()
    lights = torch.tensor([[1.0, 2.0, 1.5], [-1.5, 0.5, -1.0]])
    kw = {"shading": shading, "ambient": 0.2, "light_positions": lights}
    ref = render_volume(field, CAMS, 24, backend="torch", **kw)
    g_ref = torch.autograd.grad(ref["image"].square().sum() + ref["orient"], list(field.parameters()))

    rays = vr.cast_rays(CAMS, 24, field.config.radius, torch.device("cpu"))
    n = field.config.n_samples
    t, delta = vr.stratified_samples(rays, n, perturb=False)
    pts = (rays.o.unsqueeze(1) + t.unsqueeze(-1) * rays.d.unsqueeze(1)).reshape(-1, 3)
    idx = field.occupancy.query(pts).nonzero().squeeze(1)  # what the occupancy grid keeps, sorted by ray then t
    ray_s = idx // n
    evaluate = functools.partial(vr.shade_samples, field, rays, grey=0.8, need_normals=shading != "albedo", **kw)
    out = vr.composite(rays, {**vr.march_packed(rays, ray_s, t.reshape(-1)[idx], delta[ray_s, 0], evaluate),
                           "n_samples": ref["n_samples"]}, None)
    g_out = torch.autograd.grad(out["image"].square().sum() + out["orient"], list(field.parameters()))

    assert out["n_evaluated"] == ref["n_evaluated"] < 0.6 * ref["n_samples"]  # the grid skipped space
    assert float(ref["alpha"].detach().max()) > 0.9 and float(ref["image"].detach().std()) > 0.05  # an opaque, coloured box
    for key in ("image", "alpha", "depth", "normals"):
        assert torch.allclose(out[key], ref[key], atol=2e-5), (key, float((out[key] - ref[key]).abs().max()))
    assert float(out["orient"].detach()) == pytest.approx(float(ref["orient"].detach()), rel=1e-4, abs=1e-7)
    for a, b in zip(g_out, g_ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5 * float(b.abs().max())), float((a - b).abs().max())


def test_packed_weights_equal_nerfaccs_own_on_the_cpu() -> None:
    """nerfacc's batched render_weight_from_density is plain torch: it runs here where nerfacc imports."""
    nerfacc = pytest.importorskip("nerfacc")
    torch.manual_seed(0)
    sigma = torch.rand(5, 12) * torch.tensor([0.0, 1.0, 5.0, 20.0, 100.0]).unsqueeze(1)
    t = torch.cumsum(torch.rand(5, 13) * 0.1, 1)
    ref, _, _ = nerfacc.render_weight_from_density(t[:, :-1], t[:, 1:], sigma)
    ray_s = torch.arange(5).repeat_interleave(12)
    ours = accel.packed_weights(ray_s, sigma.reshape(-1), (t[:, 1:] - t[:, :-1]).reshape(-1), 5)
    assert torch.allclose(ours.view(5, 12), ref, atol=1e-6)


def test_backend_dispatch_and_its_errors(monkeypatch) -> None:
    assert accel.resolve_backend("torch", "cpu") == "torch"
    assert accel.resolve_backend("auto", "cpu") == "torch"  # a CPU never probes nerfacc
    with pytest.raises(ValueError, match="nerfacc needs device=cuda"):
        accel.resolve_backend("nerfacc", "cpu")
    with pytest.raises(ValueError, match="nerf.backend: 'cuda'"):
        accel.resolve_backend("cuda", "cpu")
    reason = accel.nerfacc_unavailable()
    if reason is not None:  # this machine: auto falls back, an explicit nerfacc says why not
        assert accel.resolve_backend("auto", "cuda") == "torch"
        with pytest.raises(ImportError, match="use nerf.backend=torch"):
            accel.resolve_backend("nerfacc", "cuda")
    # where the probe succeeds, auto on a GPU picks nerfacc (and still torch on a CPU)
    monkeypatch.setattr(accel, "nerfacc_unavailable", lambda: None)
    assert accel.resolve_backend("auto", "cuda:0") == "nerfacc" and accel.resolve_backend("nerfacc", "cuda") == "nerfacc"
    assert accel.resolve_backend("auto", "cpu") == "torch"


def test_config_names_a_bad_backend() -> None:
    cfg = load_config(GenerateConfig, resolve_config_path("dreamfusion-embedded"), ["prompt=a vase"])
    assert cfg.nerf.backend == "torch"  # nerfacc is opt-in until it has run on a GPU
    cfg.validate()
    for value, msg in (("nerfacc", "nerfacc needs device=cuda"), ("fast", "nerf.backend: 'fast'")):
        cfg.nerf.backend = value
        with pytest.raises(ValueError, match=msg):
            cfg.validate()


def test_auto_renders_with_torch_on_the_cpu() -> None:
    field = box_field()
    auto = render_volume(field, CAMS, 16, shading="albedo")
    ref = render_volume(field, CAMS, 16, shading="albedo", backend="torch")
    assert auto["backend"] == ref["backend"] == "torch" and torch.equal(auto["image"], ref["image"])


@pytest.mark.skipif(not torch.cuda.is_available() or accel.nerfacc_unavailable() is not None,
                    reason="needs a CUDA GPU with nerfacc and its extension")
def test_nerfacc_and_torch_render_the_same_image_on_a_gpu() -> None:  # pragma: no cover - never run on the CPU
    field = box_field().cuda()
    with torch.no_grad():
        field.update_occupancy()
        ref = render_volume(field, CAMS, 32, shading="lambertian", backend="torch")
        fast = render_volume(field, CAMS, 32, shading="lambertian", backend="nerfacc")
    assert fast["backend"] == "nerfacc" and fast["n_evaluated"] <= ref["n_evaluated"]
    # different quadrature (fixed steps of 2r/N against chord/N): close, not equal
    diff = (fast["image"] - ref["image"]).abs()
    assert float(diff.mean()) < 0.01 and float(diff.max()) < 0.15, (float(diff.mean()), float(diff.max()))
    assert float((fast["alpha"] - ref["alpha"]).abs().mean()) < 0.01
    assert math.isfinite(float(fast["orient"]))
