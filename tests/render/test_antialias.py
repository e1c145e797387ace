"""Silhouette antialiasing: coverage gradients of outline vertices against finite differences."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dreamcs.generate.tetgrid import load_tetgrid
from dreamcs.render import Cameras, RenderConfig, rasterize, render, shade
from dreamcs.render.antialias import silhouette_edges
from dreamcs.render.raster import edge_adjacency, to_screen

_CAMS = Cameras(torch.tensor([15.0, -20.0]), torch.tensor([10.0, 130.0]), 2.6, 50.0)


@pytest.fixture(scope="module")
def grid():
    return load_tetgrid(32)


def _sphere(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return p.norm(dim=-1) - k  # k: the radius


def _torus(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    # major radius k, minor 0.2, in the xy plane: seen at an angle it shows its hole (non-convex)
    ring = (p[:, :2].norm(dim=-1) - k).square() + p[:, 2].square()
    return (ring + 1e-12).sqrt() - 0.2


def _shifted_sphere(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return (p - torch.stack([k, torch.zeros_like(k), torch.zeros_like(k)])).norm(dim=-1) - 0.5  # k: x


def _ratio(grid, sdf_fn: Callable, k0: float, res: int, weight: str, h: float = 0.01) -> float:
    """Autograd d/dk over the central finite difference of an alpha objective of two views."""
    ramp = torch.linspace(-1.0, 1.0, res).view(1, 1, res, 1)

    def objective(k: torch.Tensor) -> torch.Tensor:
        v, f, _ = grid.extract(sdf_fn(grid.vertices, k))
        alpha = render(v, f, _CAMS, res, cull_backfaces=True)["alpha"]
        # a translation keeps the area: weigh columns to see the outline move
        return (alpha * ramp).sum() if weight == "ramp" else alpha.sum()

    k = torch.tensor(k0, requires_grad=True)
    objective(k).backward()
    with torch.no_grad():
        fd = (objective(torch.tensor(k0 + h)) - objective(torch.tensor(k0 - h))) / (2 * h)
    assert abs(float(fd)) > 1.0, "the objective must move"
    return float(k.grad) / float(fd)


@pytest.mark.parametrize("res", [64, 128, 256, 512])
def test_sphere_radius_gradient_matches_finite_difference(grid, res: int) -> None:
    assert 0.8 <= _ratio(grid, _sphere, 0.6, res, "sum") <= 1.25


@pytest.mark.parametrize("res", [64, 256])
def test_torus_and_translation_gradients_match_finite_difference(grid, res: int) -> None:
    assert 0.8 <= _ratio(grid, _torus, 0.5, res, "sum") <= 1.25
    assert 0.8 <= _ratio(grid, _shifted_sphere, 0.1, res, "ramp") <= 1.25


def test_sphere_gradient_matches_the_perimeter(grid) -> None:
    # d(area)/dr of a projected sphere: 2 pi R dR/dr in pixels, R = f r / sqrt(d^2 - r^2) * res / 2
    import math

    r, d, res = 0.6, 2.6, 128
    f = 1 / math.tan(math.radians(25))
    radius_px = f * r / math.sqrt(d * d - r * r) * res / 2
    d_radius = radius_px * (1 / r + r / (d * d - r * r))
    k = torch.tensor(r, requires_grad=True)
    v, faces, _ = grid.extract(_sphere(grid.vertices, k))
    render(v, faces, _CAMS[0], res)["alpha"].sum().backward()
    assert float(k.grad) == pytest.approx(2 * math.pi * radius_px * d_radius, rel=0.05)


def _fd_check(v: torch.Tensor, f: torch.Tensor, cams: Cameras, res: int, cfg: RenderConfig) -> None:
    """Autograd through fixed fragments vs central differences that re-rasterise, float64."""
    w = torch.rand(len(cams), res, res, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def objective(verts: torch.Tensor) -> torch.Tensor:
        out = render(verts, f, cams, res, cfg)
        return (out["image"] * w).sum() + out["alpha"].sum()

    x = v.clone().requires_grad_(True)
    objective(x).backward()
    eps = 1e-4  # small enough that no pixel centre changes face, large against rounding
    fd = torch.zeros_like(v)
    for i in range(v.shape[0]):
        for j in range(3):
            dv = torch.zeros_like(v)
            dv[i, j] = eps
            fd[i, j] = (objective(v + dv) - objective(v - dv)) / (2 * eps)
    assert fd.abs().max() > 0.1
    assert torch.allclose(x.grad, fd, rtol=1e-4, atol=1e-5), (x.grad, fd)


def test_triangle_over_background_matches_finite_differences() -> None:
    v = torch.tensor([[-0.5, -0.4, 0.0], [0.6, -0.3, 0.1], [0.05, 0.55, -0.1]], dtype=torch.float64)
    cfg = RenderConfig(background=(0.1, 0.2, 0.3))
    _fd_check(
        v,
        torch.tensor([[0, 1, 2]]),
        Cameras(torch.tensor([5.0, -10.0]), torch.tensor([10.0, 160.0]), 2.6, 50.0),
        12,
        cfg,
    )


def test_two_overlapping_triangles_match_finite_differences() -> None:
    # the nearer triangle's outline crosses the farther one: a silhouette over a surface
    v = torch.tensor(
        [
            [-0.6, -0.5, -0.3],
            [0.5, -0.6, -0.3],
            [0.0, 0.6, -0.3],
            [-0.3, -0.2, 0.3],
            [0.4, 0.0, 0.3],
            [-0.1, 0.4, 0.3],
        ],
        dtype=torch.float64,
    )
    cfg = RenderConfig(shading="normal", background=(1.0, 1.0, 1.0))
    _fd_check(v, torch.tensor([[0, 1, 2], [3, 4, 5]]), Cameras(8.0, 12.0, 2.6, 50.0), 12, cfg)


def test_fixed_fragments_gradcheck() -> None:
    v = torch.tensor(
        [[-0.5, -0.4, 0.0], [0.6, -0.3, 0.1], [0.05, 0.55, -0.1], [0.4, 0.5, 0.2]], dtype=torch.float64
    )
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    cams = Cameras(0.0, 20.0, 2.6, 50.0)
    cfg = RenderConfig(background=(0.3, 0.3, 0.3))
    frags = rasterize(v, f, cams, 9, cfg)
    assert frags.crossings.edge.numel() > 10

    def fn(verts: torch.Tensor) -> torch.Tensor:
        out = shade(verts, f, cams, frags, cfg)
        return out["image"].square().sum() + out["alpha"].sum()

    assert torch.autograd.gradcheck(fn, (v.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_silhouette_edges_of_a_closed_mesh_and_open_edges() -> None:
    import trimesh

    box = trimesh.creation.box((1.0, 1.0, 1.0))
    v, f = torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces)
    ndc = Cameras(20.0, 30.0, 2.6, 50.0).project(v)
    edges, edge_faces = edge_adjacency(f, v.shape[0])
    mask, _ = silhouette_edges(to_screen(ndc, 32, 32), f, edges, edge_faces)
    assert int(mask.sum()) == 6  # a cube seen from a corner-ish view: a hexagonal outline
    # the same with one face pair dropped: the hole's rim is outline too, wherever it faces
    mask_open, _ = silhouette_edges(to_screen(ndc, 32, 32), f[2:], *edge_adjacency(f[2:], v.shape[0]))
    assert int(mask_open.sum()) >= 4


def test_antialiased_outline_is_fractional_and_off_switch() -> None:
    v = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], dtype=torch.float32)
    v = v @ torch.tensor([[0.96, 0.28, 0.0], [-0.28, 0.96, 0.0], [0.0, 0.0, 1.0]])  # a tilted square
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cam = Cameras(0.0, 0.0, 2.6, 50.0)
    aa = render(v, f, cam, 32)["alpha"]
    hard = render(v, f, cam, 32, antialias=False)["alpha"]
    frac = (aa > 0.01) & (aa < 0.99)
    assert int(frac.sum()) > 20 and set(hard.unique().tolist()) == {0.0, 1.0}
    # the hard and antialiased coverage agree away from the outline, and roughly in total
    assert torch.equal(aa[~frac].round(), hard[~frac]) or (aa[~frac] - hard[~frac]).abs().max() < 0.02
    assert abs(float(aa.sum() - hard.sum())) < 0.05 * float(hard.sum())


def test_hidden_outline_is_not_blended() -> None:
    # a small far triangle wholly behind a big near square: only the square's outline is blended
    v = torch.tensor(
        [[-0.3, -0.3, -0.4], [0.3, -0.3, -0.4], [0.0, 0.3, -0.4]]
        + [[-0.6, -0.6, 0.3], [0.6, -0.6, 0.3], [0.6, 0.6, 0.3], [-0.6, 0.6, 0.3]]
    )
    f = torch.tensor([[0, 1, 2], [3, 4, 5], [3, 5, 6]])
    cam = Cameras(0.0, 10.0, 2.6, 50.0)
    frags = rasterize(v, f, cam, 32)
    cross = frags.crossings
    assert cross.edge.numel() > 40
    assert not bool((frags.edges[cross.edge] < 3).any())  # no edge of the hidden triangle
    assert torch.equal(frags.face_id.reshape(-1)[cross.outer], torch.full_like(cross.outer, -1))
