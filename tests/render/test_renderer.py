"""The differentiable rasteriser: coverage, gradients (gradcheck, silhouette), determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from dreamcs.render import Cameras, RenderConfig, rasterize, render, render_views, save_turntable_png, shade


def _cube(size: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    box = trimesh.creation.box((size, size, size))
    return torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces, dtype=torch.long)


def test_cube_front_covers_expected_area() -> None:
    v, f = _cube(1.0)
    res = 64
    out = render(v, f, Cameras(0.0, 0.0, 2.6, 50.0), res)
    # front face at z = 0.5: half-width in pixels = focal * 0.5 / 2.1 * res / 2
    half = (1 / math.tan(math.radians(25))) * 0.5 / 2.1 * res / 2
    n = int(np.floor(32 + half - 0.5) - np.ceil(32 - half - 0.5) + 1)  # pixel centres inside
    assert out["mask"].sum().item() == n * n
    assert out["image"].shape == (1, res, res, 3) and out["alpha"].shape == (1, res, res, 1)
    # the front face is lit head-on: grey = albedo; the background is black
    cfg = RenderConfig()
    assert out["image"][0, 32, 32].tolist() == pytest.approx([cfg.albedo] * 3, abs=1e-5)
    assert out["image"][0, 0, 0].abs().sum() == 0
    assert out["depth"][0, 32, 32, 0].item() == pytest.approx(2.1, abs=1e-4)
    assert out["normals"][0, 32, 32].tolist() == pytest.approx([0, 0, 1], abs=1e-5)
    ids = out["face_id"][0][out["mask"][0, ..., 0] > 0].unique()
    fn = torch.tensor(trimesh.creation.box((1, 1, 1)).face_normals)
    assert torch.allclose(fn[ids], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_backface_culling() -> None:
    v, f = _cube(1.0)
    cam = Cameras(torch.tensor([20.0, -30.0]), torch.tensor([30.0, 200.0]), 2.6, 50.0)
    full = render(v, f, cam, 32)
    culled = render(v, f, cam, 32, cull_backfaces=True)
    assert torch.equal(full["face_id"], culled["face_id"])  # a closed mesh looks the same
    # wound inside out, the near faces are culled and the far ones seen through them
    inside_out = render(v, f[:, [0, 2, 1]], cam, 32, cull_backfaces=True)
    for b in range(2):
        near, far = set(full["face_id"][b].unique().tolist()), set(inside_out["face_id"][b].unique().tolist())
        assert near & far == {-1} and len(far) > 1


def test_occlusion_nearest_face_wins() -> None:
    v = torch.tensor(
        [[-1, -1, 0], [1, -1, 0], [0, 1, 0], [-1, -1, 0.5], [1, -1, 0.5], [0, 1, 0.5]], dtype=torch.float32
    )
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = render(v, f, Cameras(0.0, 0.0, 3.0, 50.0), 32)
    assert set(out["face_id"][0][out["mask"][0, ..., 0] > 0].tolist()) == {1}
    out = render(v, f, Cameras(0.0, 180.0, 3.0, 50.0), 32)
    assert set(out["face_id"][0][out["mask"][0, ..., 0] > 0].tolist()) == {0}


def _tiny_mesh(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[-0.6, -0.5, 0.1], [0.7, -0.4, -0.1], [0.0, 0.6, 0.2], [0.1, 0.0, 0.6]], dtype=dtype)
    return v, torch.tensor([[0, 1, 3], [1, 2, 3], [2, 0, 3], [0, 2, 1]])


@pytest.mark.parametrize("shading,normals", [("diffuse", "flat"), ("normal", "smooth")])
def test_gradcheck_with_fixed_fragments(shading: str, normals: str) -> None:
    v, f = _tiny_mesh()
    cams = Cameras(torch.tensor([15.0, -10.0]), torch.tensor([20.0, 200.0]), 2.6, 50.0)
    cfg = RenderConfig(
        shading=shading, normals=normals, background=(0.1, 0.2, 0.3), two_sided=False, soft_silhouette=True
    )
    frags = rasterize(v, f, cams, 10, cfg)
    assert (frags.face_id >= 0).any() and (frags.edge_id >= 0).any() and frags.crossings.edge.numel()
    w = torch.randn(2, 10, 10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def fn(verts):
        out = shade(verts, f, cams, frags, cfg)
        return (out["image"] * w).sum() + out["alpha"].sum() + out["depth"].sum()

    assert torch.autograd.gradcheck(fn, (v.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_silhouette_gradient_moves_outline_vertex_outward() -> None:
    # a square facing the camera; growing coverage should pull its right vertices to the right
    v = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], requires_grad=True)
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    out = render(v, f, Cameras(0.0, 0.0, 2.6, 50.0), 32)
    (-out["alpha"].sum()).backward()
    g = v.grad
    assert g[1, 0] < 0 and g[2, 0] < 0  # descent moves x of the right corners up: outward
    assert g[0, 0] > 0 and g[3, 0] > 0  # and the left corners to the left
    assert g[2, 1] < 0 and g[0, 1] > 0  # top up, bottom down
    # without antialiasing or the soft silhouette the coverage has no gradient at all
    v.grad = None
    out = render(v, f, Cameras(0.0, 0.0, 2.6, 50.0), 32, RenderConfig(antialias=False))
    assert not out["alpha"].requires_grad


def test_determinism_and_batched_vertices() -> None:
    sph = trimesh.creation.icosphere(3, radius=0.7)
    v, f = torch.tensor(sph.vertices, dtype=torch.float32), torch.tensor(sph.faces)
    cams = Cameras(torch.tensor([10.0, 30.0]), torch.tensor([0.0, 120.0]), 2.6, 50.0)
    a, b = render(v, f, cams, 48), render(v, f, cams, 48)
    for k in a:
        assert torch.equal(a[k], b[k])
    c = render(v.unsqueeze(0).expand(2, -1, -1), f, cams, 48)
    assert torch.allclose(a["image"], c["image"], atol=1e-6)


def test_render_views_and_turntable_png(tmp_path) -> None:
    sph = trimesh.creation.icosphere(2, radius=0.8)
    imgs = render_views(sph.vertices, sph.faces, n_views=3, resolution=32)
    assert imgs.shape == (3, 32, 32, 3) and imgs.dtype == np.uint8
    assert imgs[:, 16, 16].min() > 100 and imgs[:, 0, 0].max() == 0
    p = save_turntable_png(tmp_path / "tt.png", sph.vertices, sph.faces, n_views=3, resolution=32)
    from PIL import Image

    assert Image.open(p).size == (96, 32)


def test_keyword_overrides() -> None:
    v, f = _cube()
    cam = Cameras(0.0, 0.0, 2.6, 50.0)
    a = render(v, f, cam, 16, shading="shaded", background=[1, 1, 1])
    assert a["image"][0, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert torch.equal(a["image"], render(v, f, cam, 16, RenderConfig(background=(1, 1, 1)))["image"])
    n = render(v, f, cam, 16, shading="normal")
    assert n["image"][0, 8, 8].tolist() == pytest.approx([0.5, 0.5, 1.0], abs=1e-5)
    with pytest.raises(TypeError, match="unknown render option"):
        render(v, f, cam, 16, shadin="normal")


def test_bad_inputs() -> None:
    v, f = _cube()
    with pytest.raises(ValueError, match="faces index"):
        render(v, f + 100, Cameras(0.0, 0.0, 2.6, 50.0), 8)
    with pytest.raises(ValueError, match="vertices must be"):
        render(v[:, :2], f, Cameras(0.0, 0.0, 2.6, 50.0), 8)
    with pytest.raises(ImportError, match="nvdiffrast"):
        render(v, f, Cameras(0.0, 0.0, 2.6, 50.0), 8, RenderConfig(backend="nvdiffrast"))


def test_chunked_rasterisation_matches_one_pass() -> None:
    from dreamcs.render.raster import rasterize_face_ids, to_screen

    sph = trimesh.creation.icosphere(3, radius=0.7)
    v, f = torch.tensor(sph.vertices, dtype=torch.float32), torch.tensor(sph.faces)
    ndc = Cameras(10.0, 40.0, 2.6, 50.0).project(v)[0]
    scr = to_screen(ndc, 40, 40)
    one = rasterize_face_ids(scr, ndc[:, 2], f, 40, 40)
    many = rasterize_face_ids(scr, ndc[:, 2], f, 40, 40, max_pairs=7)
    assert torch.equal(one, many) and (one >= 0).sum() > 300


def test_empty_mesh_renders_background() -> None:
    v = torch.zeros(0, 3, requires_grad=True)
    out = render(
        v, torch.zeros(0, 3, dtype=torch.long), Cameras(0.0, 0.0, 2.6, 50.0), 8, background=(0.5, 0.5, 0.5)
    )
    assert torch.all(out["image"] == 0.5) and out["alpha"].sum() == 0
    out["image"].sum().backward()  # a step with an empty surface still runs its backward
