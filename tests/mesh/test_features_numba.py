"""The compiled CPU path of face_features (numba) against the torch path, its reference."""

from __future__ import annotations

import pytest
import torch

import dreamcs.mesh.features as features
from dreamcs.mesh.features import face_features, uses_numba

TOL = {torch.float32: {"rtol": 1e-6, "atol": 1e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-12}}
# gradients, divided by each vertex's largest component: sums with cancellation, so ~10 ulp (seen: 2.4e-6
# in float32, 7e-15 in float64)
GRAD_TOL = {torch.float32: {"rtol": 0, "atol": 1e-5}, torch.float64: {"rtol": 0, "atol": 1e-12}}


def _mesh(
    dtype: torch.dtype, batch: tuple[int, ...] = (), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random vertices in [-1, 1]^3 and faces, with every kind of degenerate face among them."""
    g = torch.Generator().manual_seed(seed)
    n_verts, n_faces = 60, 200
    v = torch.rand(*batch, n_verts, 3, generator=g, dtype=dtype) * 2 - 1
    f = torch.randint(0, n_verts, (n_faces, 3), generator=g)
    v[..., 1, :] = v[..., 0, :] + 1e-8  # an edge under EPS_LEN
    v[..., 3, :] = 0.25 * v[..., 4, :] + 0.75 * v[..., 5, :]  # collinear with 4 and 5
    f[:6] = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 6, 7], [8, 9, 8], [10, 10, 10], [1, 0, 11]])
    return v, f


def _features_and_grad(v, f, numba: bool, monkeypatch, weight=None):
    monkeypatch.setattr(features, "USE_NUMBA", numba)
    x = v.clone().requires_grad_(True)
    out = face_features(x, f)
    (out.sum() if weight is None else (out * weight).sum()).backward()
    return out.detach(), x.grad


def test_numba_path_is_used_on_cpu_float(monkeypatch):
    v, f = _mesh(torch.float32)
    assert uses_numba(v) and uses_numba(v.double())
    assert not uses_numba(v.half())
    out = face_features(v.requires_grad_(True), f)
    node = out.grad_fn
    while node is not None and "FaceFeatures" not in type(node).__name__:
        node = node.next_functions[0][0]
    assert type(node).__name__ == "_FaceFeaturesNumbaBackward"
    monkeypatch.setattr(features, "USE_NUMBA", False)
    assert not uses_numba(v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [(), (2, 3)])
def test_numba_matches_torch_path(dtype, batch, monkeypatch):
    v, f = _mesh(dtype, batch, seed=len(batch))
    weight = torch.randn(*batch, f.shape[0], 10, generator=torch.Generator().manual_seed(5), dtype=dtype)
    out_t, grad_t = _features_and_grad(v, f, False, monkeypatch, weight)
    out_n, grad_n = _features_and_grad(v, f, True, monkeypatch, weight)
    assert out_n.shape == out_t.shape == (*batch, f.shape[0], 10)
    torch.testing.assert_close(out_n, out_t, **TOL[dtype])
    # gradients: rounding differences relative to their scale (they reach ~1e8 at the 1e-8 edge)
    scale = grad_t.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)
    torch.testing.assert_close(grad_n / scale, grad_t / scale, **GRAD_TOL[dtype])
    assert torch.isfinite(grad_n).all()


def test_numba_matches_torch_path_on_a_plain_sum_and_strided_inputs(monkeypatch):
    # out.sum() hands the backward an expanded (stride-0) gradient; inputs may be non-contiguous
    v, f = _mesh(torch.float32, (2,))
    v, f = v.transpose(0, 1).contiguous().transpose(0, 1), f.t().contiguous().t()
    assert not v.is_contiguous() and not f.is_contiguous()
    out_t, grad_t = _features_and_grad(v, f, False, monkeypatch)
    out_n, grad_n = _features_and_grad(v, f, True, monkeypatch)
    torch.testing.assert_close(out_n, out_t, **TOL[torch.float32])
    scale = grad_t.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)
    torch.testing.assert_close(grad_n / scale, grad_t / scale, **GRAD_TOL[torch.float32])


def test_numba_sort_ties_route_gradients_like_the_torch_path(monkeypatch):
    # an equilateral face and a flat fan: tied angles and tied vertex normal dots
    s = 3**0.5 / 2
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, s, 0], [-0.5, s, 0], [-1, 0, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4]])
    weight = torch.arange(30, dtype=torch.float64).reshape(3, 10)
    out_t, grad_t = _features_and_grad(v, f, False, monkeypatch, weight)
    out_n, grad_n = _features_and_grad(v, f, True, monkeypatch, weight)
    torch.testing.assert_close(out_n, out_t, **TOL[torch.float64])
    torch.testing.assert_close(grad_n, grad_t, **TOL[torch.float64])


def test_gradcheck_float64_numba_path():
    # faces with repeated vertices stay degenerate under gradcheck's perturbations (a 1e-8 edge or
    # a collinear face would not: they are left out here)
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, 24, 3, generator=g, dtype=torch.float64, requires_grad=True)
    f = torch.cat(
        [torch.randint(0, 24, (40, 3), generator=g), torch.tensor([[6, 6, 7], [8, 9, 8], [10, 10, 10]])]
    )
    assert uses_numba(v)
    assert torch.autograd.gradcheck(lambda x: face_features(x, f), (v,), eps=1e-6, atol=1e-5)


def test_numba_path_rejects_out_of_range_faces():
    v = torch.zeros(4, 3)
    for bad in (4, -1):
        with pytest.raises(IndexError):
            face_features(v, torch.tensor([[0, 1, bad]]))
