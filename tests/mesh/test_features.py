"""MeshMAE face features: hand-computed values, gradients, degenerate faces, shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamcs.mesh.features import N_FEATURES, face_features, patch_centers, patch_features


def test_right_triangle_by_hand():
    v = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    f = torch.tensor([[0, 1, 2]])
    out = face_features(v, f)
    assert out.shape == (1, 10)
    expected = [0.5, 0.0, 0.0, 1.0, math.pi / 4, math.pi / 4, math.pi / 2, 1.0, 1.0, 1.0]
    torch.testing.assert_close(out[0], torch.tensor(expected), atol=1e-6, rtol=0)


def test_folded_pair_normals_and_vertex_normal_dots():
    # two triangles folded at 90 degrees along the x axis: the shared vertices' area-weighted
    # normals are the mean of the two face normals -> dot cos(45 deg) with each face
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 1, 2], [1, 0, 3]])
    out = face_features(v, f)
    torch.testing.assert_close(out[0, 1:4], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(out[1, 1:4], torch.tensor([0.0, 1.0, 0.0]))
    c = math.cos(math.pi / 4)
    torch.testing.assert_close(out[0, 7:10], torch.tensor([c, c, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1, 7:10], torch.tensor([c, c, 1.0]), atol=1e-6, rtol=0)
    assert torch.allclose(out[:, 4:7].sum(1), torch.tensor(math.pi))


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2], [3, 4, 5], [2, 5, 4]])
    assert torch.autograd.gradcheck(lambda x: face_features(x, f), (v,), eps=1e-6, atol=1e-5)


def test_gradcheck_float64_with_a_collapsed_face():
    # a face with a repeated vertex sends the whole mesh through the undefined-corner branch
    # (the angle fill); gradients of the regular faces must still be exact there
    g = torch.Generator().manual_seed(2)
    v = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2], [3, 4, 5], [2, 5, 4], [1, 1, 4]])
    assert torch.autograd.gradcheck(lambda x: face_features(x, f), (v,), eps=1e-6, atol=1e-5)


def test_degenerate_faces_finite_values_and_gradients():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [0.5, 0.5, 0.5]], requires_grad=True)
    f = torch.tensor(
        [
            [0, 1, 2],  # fine
            [0, 0, 2],  # repeated vertex
            [0, 1, 3],  # collinear, zero area
            [4, 4, 4],  # a point
        ]
    )
    out = face_features(v, f)
    assert torch.isfinite(out).all()
    assert out[1:, 0].abs().max() == 0  # zero area
    assert out[3, 1:4].abs().max() == 0  # no normal for a point
    torch.testing.assert_close(out[1, 4:7], torch.tensor([0.0, math.pi / 2, math.pi / 2]))
    torch.testing.assert_close(out[2, 4:7], torch.tensor([0.0, 0.0, math.pi]))
    torch.testing.assert_close(out[3, 4:7], torch.full((3,), math.pi / 3))
    (out * torch.linspace(0.5, 1.5, 10)).sum().backward()
    assert torch.isfinite(v.grad).all()
    assert v.grad.abs().max() < 1e3


def test_batched_and_patch_layout():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 3, 8, 3, generator=g)
    f = torch.randint(0, 8, (12, 3), generator=g)
    out = face_features(v, f)
    assert out.shape == (2, 3, 12, 10)
    torch.testing.assert_close(out[1, 2], face_features(v[1, 2], f))
    pf = patch_features(v, f.reshape(3, 4, 3))
    torch.testing.assert_close(pf.reshape(2, 3, 12, 10), out)
    pc = patch_centers(v, f.reshape(3, 4, 3))
    expected = v[..., f, :].mean(-2).reshape(2, 3, 3, 4, 3).mean(-2)
    torch.testing.assert_close(pc, expected)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        face_features(torch.zeros(4, 2), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        patch_features(torch.zeros(4, 3), torch.zeros(2, 3, dtype=torch.long))


def _wavy_grid(n: int, spacing: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(n*n, 3) vertices of a gently wavy grid and its (2*(n-1)^2, 3) triangles, mixed orientation."""
    i, j = torch.meshgrid(torch.arange(n, dtype=dtype), torch.arange(n, dtype=dtype), indexing="ij")
    x, y = i * spacing, j * spacing
    z = 0.3 * spacing * (torch.sin(3.1 * i) + torch.cos(1.7 * j))
    v = torch.stack([x + 0.2 * spacing * torch.sin(2.3 * j), y, z], -1).reshape(-1, 3)
    a = (torch.arange(n - 1).unsqueeze(1) * n + torch.arange(n - 1)).reshape(-1)
    f = torch.cat([torch.stack([a, a + 1, a + n], 1), torch.stack([a + 1, a + n + 1, a + n], 1)])
    return v, f


def test_float32_matches_float64_on_small_faces():
    # small faces (edges ~1e-2) in float32 must keep the accuracy of float32 arithmetic: a masked
    # division written as 1 / (x + 1 - mask) once rounded the normals to ~1e-4 here
    v64, f = _wavy_grid(24, 1e-2, torch.float64)
    v64.requires_grad_(True)
    v32 = v64.detach().float().requires_grad_(True)
    out64, out32 = face_features(v64, f), face_features(v32, f)
    torch.testing.assert_close(out32[:, 0], out64[:, 0].float(), rtol=1e-4, atol=0)
    torch.testing.assert_close(out32[:, 1:], out64[:, 1:].float(), rtol=0, atol=2e-6)
    w = torch.linspace(-1.0, 1.0, out64.numel(), dtype=torch.float64).reshape(out64.shape)
    (out64 * w).sum().backward()
    (out32 * w.float()).sum().backward()
    scale = v64.grad.abs().max()
    assert (v32.grad.double() - v64.grad).abs().max() < 1e-4 * scale


def test_output_can_be_modified_in_place_before_backward():
    # the features are a transposed view of the autograd.Function's output: in-place edits must
    # still backpropagate correctly (a view returned by the Function itself would forbid them)
    v, f = _wavy_grid(5, 0.2, torch.float64)
    scale = torch.linspace(0.5, 2.0, N_FEATURES, dtype=torch.float64)
    v1, v2 = v.clone().requires_grad_(True), v.clone().requires_grad_(True)
    out = face_features(v1, f)
    out *= scale
    out.sum().backward()
    (face_features(v2, f) * scale).sum().backward()
    torch.testing.assert_close(v1.grad, v2.grad)


def test_patch_boundary_counts_open_edges_after_welding():
    import trimesh

    from dreamcs.mesh import patch_boundary

    # two triangles sharing an edge, with the shared vertices duplicated (welded by position)
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.float32)
    f = torch.tensor([[[0, 1, 2], [3, 5, 4]]])
    b = patch_boundary(v, f)
    assert b.shape == (1, 2, 1)
    torch.testing.assert_close(b.flatten(), torch.tensor([2 / 3, 2 / 3]))
    closed = trimesh.creation.icosphere(subdivisions=2)
    fc = torch.as_tensor(closed.faces).reshape(4, -1, 3)
    assert patch_boundary(torch.as_tensor(closed.vertices, dtype=torch.float32), fc).sum() == 0
    opened = fc.reshape(-1, 3)[1:].reshape(1, -1, 3)  # one face removed: its three neighbours get one open edge
    bo = patch_boundary(torch.as_tensor(closed.vertices, dtype=torch.float32), opened).flatten()
    assert int((bo > 0).sum()) == 3 and torch.allclose(bo[bo > 0], torch.full((3,), 1 / 3))
    # a face collapsed to a segment (two corners welded): its two remaining edges lie on top of
    # each other and the collapsed one is degenerate, so none counts as open
    vd = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float32)
    assert patch_boundary(vd, torch.tensor([[[0, 1, 2]]])).item() == 0.0
    with pytest.raises(ValueError, match="faces"):
        patch_boundary(v, f[0])


def test_patch_boundary_ragged_channel_reads_straight_cuts_low_and_zigzags_high():
    import trimesh

    from dreamcs.mesh import patch_boundary

    # a flat grid: its outer boundary runs straight (turns only at the 4 corners)
    n = 8
    xs, ys = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1) / n
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    quads = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    f = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    vt = torch.as_tensor(v, dtype=torch.float32)
    b = patch_boundary(vt, torch.as_tensor(f).reshape(2, -1, 3), ragged=True).reshape(-1, 2)
    assert b.shape == (2 * n * n, 2)
    torch.testing.assert_close(b[:, 0], patch_boundary(vt, torch.as_tensor(f).reshape(2, -1, 3)).reshape(-1))
    open_ = b[:, 0] > 0
    assert (b[~open_, 1] == 0).all()  # closed faces read 0
    assert float(b[open_, 1].median()) == 0.0  # a straight edge does not turn
    # faces torn out of a sphere leave a loop along triangle edges: it turns at most vertices
    sphere = trimesh.creation.icosphere(subdivisions=3)
    keep = np.ones(len(sphere.faces), bool)
    keep[np.random.default_rng(0).choice(len(keep), 40, replace=False)] = False
    fs = torch.as_tensor(sphere.faces[keep][: len(sphere.faces[keep]) // 4 * 4]).reshape(4, -1, 3)
    bs = patch_boundary(torch.as_tensor(sphere.vertices, dtype=torch.float32), fs, ragged=True).reshape(-1, 2)
    assert float(bs[bs[:, 0] > 0, 1].mean()) > 0.3
    assert ((bs[:, 1] >= 0) & (bs[:, 1] <= 1)).all()
