"""Marching tetrahedra: kaolin's published cases, a watertight sphere, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from dreamcs.generate.marching_tets import marching_tetrahedra
from dreamcs.generate.tetgrid import load_tetgrid, load_tets

# NVIDIAGameWorks/kaolin tests/python/kaolin/ops/conversions/test_tetmesh.py: a cube cut in 5 tets.
KAOLIN_VERTS = torch.tensor(
    [[-1, -1, -1], [1, -1, -1], [-1, 1, -1], [1, 1, -1],
     [-1, -1, 1], [1, -1, 1], [-1, 1, 1], [1, 1, 1]], dtype=torch.float
)  # fmt: skip
KAOLIN_TETS = torch.tensor([[0, 1, 3, 5], [4, 5, 0, 6], [0, 3, 2, 6], [5, 3, 6, 7], [0, 5, 3, 6]])
KAOLIN_SDF = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, -1, 1, 1, 1],
    [1, 1, 1, 1, -1, -1, 1, 1],
    [1, 1, 1, 1, -0.5, -0.7, 1, 1],
]
_V2 = [[-1, -1, 0], [0, -1, 0], [1, -1, 0], [1, 0, 0], [-1, 0, 1], [0, 0, 1], [1, 0, 1]]
_V3 = [[-1, -1, 1 / 3], [0.1765, -1, 0.1765], [1, -1, 0.1765], [1, -0.1765, 0.1765],
       [-1, -1 / 3, 1], [0.1765, -0.1765, 1], [1, -0.1765, 1]]  # fmt: skip
_F2 = [[2, 1, 3], [6, 3, 5], [3, 1, 5], [5, 0, 4], [5, 1, 0]]
KAOLIN_EXPECTED = [
    ([], [], []),
    ([[-1, -1, 0], [0, -1, 1], [-1, 0, 1]], [[2, 1, 0]], [1]),
    (_V2, _F2, [0, 3, 4, 1, 1]),
    (_V3, _F2, [0, 3, 4, 1, 1]),
]


def _face_key(verts: np.ndarray, faces: np.ndarray, tet_idx: np.ndarray) -> list:
    """Faces as sorted corner coordinates plus tet id: independent of vertex order and winding."""
    return sorted(
        (int(t), *sorted(tuple(np.round(verts[i].astype(np.float64), 2).tolist()) for i in f))
        for f, t in zip(faces, tet_idx, strict=True)
    )


def _assert_outward(verts, faces, tet_idx, vertices, tets, sdf) -> None:
    """Each triangle's normal points from the tet's inside corners towards its outside corners."""
    tri = verts[faces]
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    corners, s = vertices[tets[tet_idx]], sdf[tets[tet_idx]]
    ins = (s < 0).unsqueeze(-1).float()
    out_dir = (corners * (1 - ins)).sum(1) / (1 - ins).sum(1) - (corners * ins).sum(1) / ins.sum(1)
    assert ((n * out_dir).sum(1) > 0).all()


@pytest.mark.parametrize("case", range(4))
def test_kaolin_cases(case: int) -> None:
    sdf = torch.tensor(KAOLIN_SDF[case], dtype=torch.float)
    verts, faces, tet_idx = marching_tetrahedra(KAOLIN_VERTS, KAOLIN_TETS, sdf)
    ev, ef, et = KAOLIN_EXPECTED[case]
    ev = np.asarray(ev, dtype=np.float64).reshape(-1, 3)
    got = np.asarray(sorted(map(tuple, verts.numpy().tolist()))).reshape(-1, 3)
    assert got.shape == ev.shape
    assert np.allclose(got, np.asarray(sorted(map(tuple, ev.tolist()))).reshape(-1, 3), atol=1e-4)
    assert _face_key(verts.numpy(), faces.numpy(), tet_idx.numpy()) == _face_key(
        ev, np.asarray(ef, dtype=np.int64).reshape(-1, 3), np.asarray(et, dtype=np.int64)
    )
    _assert_outward(verts, faces, tet_idx, KAOLIN_VERTS, KAOLIN_TETS, sdf)


def _sphere(grid, r=0.6, center=(0.05, -0.03, 0.02)):
    return (grid.vertices - torch.tensor(center)).norm(dim=1) - r


def test_sphere_watertight_volume_outward_64() -> None:
    g = load_tetgrid(64)
    r = 0.6
    verts, faces, tet_idx = g.extract(_sphere(g, r))
    mesh = trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    exact = 4.0 / 3.0 * np.pi * r**3
    assert mesh.volume > 0  # outward normals
    assert abs(mesh.volume - exact) / exact < 0.01
    assert (tet_idx >= 0).all() and (tet_idx < g.tets.shape[0]).all()


def test_three_paths_agree_and_wind_outward() -> None:
    g = load_tetgrid(8)
    gen = torch.Generator().manual_seed(0)
    sdf = _sphere(g, 0.7) + 0.15 * torch.randn(g.num_vertices, generator=gen)
    sdf[g.vertices.abs().max(1).values > 0.99] = 1.0  # keep the level set closed
    verts = g.vertices + 0.03 * torch.randn(g.vertices.shape, generator=gen)
    outs = [
        marching_tetrahedra(verts, g.tets, sdf, grid=g),
        marching_tetrahedra(verts, g.tets, sdf, g.edges, g.tet_edges),
        marching_tetrahedra(verts, g.tets, sdf),
    ]
    keys = [_face_key(v.numpy(), f.numpy(), t.numpy()) for v, f, t in outs]
    assert keys[0] == keys[1] == keys[2] and len(keys[0]) > 0
    for v, f, t in outs:
        mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
        assert mesh.is_watertight and mesh.volume > 0
        _assert_outward(v, f, t, g.vertices, g.tets, sdf)


def test_gradcheck_sdf_and_vertices() -> None:
    g = load_tetgrid(2)
    gen = torch.Generator().manual_seed(1)
    sdf = g.vertices.double().norm(dim=1) - 0.8 + 0.05 * torch.rand(27, generator=gen, dtype=torch.double)
    sdf = sdf.requires_grad_(True)
    verts = g.vertices.double().requires_grad_(True)
    w = torch.randn(200, 3, generator=gen, dtype=torch.double)

    def fn(v, s):
        out, _, _ = marching_tetrahedra(v, g.tets, s, grid=g)
        return (out * w[: out.shape[0]]).sum()

    assert torch.autograd.gradcheck(fn, (verts, sdf), eps=1e-6, atol=1e-5)
    fn(verts, sdf).backward()
    assert sdf.grad.abs().sum() > 0 and verts.grad.abs().sum() > 0


def test_empty_and_bad_inputs() -> None:
    g = load_tetgrid(4)
    v, f, t = g.extract(torch.ones(g.num_vertices))
    assert v.shape == (0, 3) and f.shape == (0, 3) and t.shape == (0,)
    for sdf in (torch.ones(g.num_vertices), -torch.ones(g.num_vertices)):  # the generic path, uncut
        v, f, t = marching_tetrahedra(g.vertices, g.tets, sdf)
        assert v.shape == (0, 3) and f.shape == (0, 3) and t.shape == (0,)
    with pytest.raises(ValueError, match="sdf must be"):
        marching_tetrahedra(g.vertices, g.tets, torch.ones(3))


def _scrambled(g, gen: torch.Generator, reorder_corners: bool):
    """The grid as an unstructured tet mesh: vertices relabelled, tets shuffled and, with
    ``reorder_corners``, corners reordered (half of the tets negatively oriented; a 2-2 cut then
    may split its quad along the other diagonal). Returns (vertices, tets, vertex perm, tet perm)."""
    vperm = torch.randperm(g.num_vertices, generator=gen)
    inv = torch.empty_like(vperm)
    inv[vperm] = torch.arange(g.num_vertices)
    tperm = torch.randperm(g.tets.shape[0], generator=gen)
    tets = inv[g.tets[tperm]]
    if not reorder_corners:
        return g.vertices[vperm], tets, vperm, tperm
    odd = torch.rand(tets.shape[0], generator=gen) < 0.5
    tets[odd] = tets[odd][:, [1, 0, 2, 3]]  # an odd permutation flips the orientation
    tets = tets[:, [2, 3, 0, 1]]  # an even one keeps it: corner order no longer the lattice's
    return g.vertices[vperm], tets, vperm, tperm


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_unstructured_tets_give_the_lattice_surface(index_dtype: torch.dtype) -> None:
    g = load_tetgrid(10)
    gen = torch.Generator().manual_seed(3)
    sdf = _sphere(g, 0.65) + 0.1 * torch.randn(g.num_vertices, generator=gen)
    sdf[g.vertices.abs().max(1).values > 0.99] = 1.0
    ref = g.extract(sdf)
    verts, tets, vperm, tperm = _scrambled(g, gen, reorder_corners=False)
    v, f, t = marching_tetrahedra(verts, tets.to(index_dtype), sdf[vperm])
    assert _face_key(v.numpy(), f.numpy(), tperm[t].numpy()) == _face_key(*(x.numpy() for x in ref))
    # corners reordered, half the tets negatively oriented: the same vertices, still closed and outward
    verts, tets, vperm, _ = _scrambled(g, gen, reorder_corners=True)
    v2, f2, t2 = marching_tetrahedra(verts, tets.to(index_dtype), sdf[vperm])
    assert torch.equal(v2.sort(0).values, v.sort(0).values) and len(f2) == len(f)
    mesh = trimesh.Trimesh(v2.numpy(), f2.numpy(), process=False)
    ref_mesh = trimesh.Trimesh(ref[0].numpy(), ref[1].numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(ref_mesh.volume, rel=0.02) and mesh.volume > 0
    _assert_outward(v2, f2, t2, verts, tets, sdf[vperm])


def test_generic_path_gradcheck_with_flipped_tets() -> None:
    g = load_tetgrid(2)
    gen = torch.Generator().manual_seed(4)
    verts, tets, vperm, _ = _scrambled(g, gen, reorder_corners=True)
    sdf = verts.double().norm(dim=1) - 0.8 + 0.05 * torch.rand(27, generator=gen, dtype=torch.double)
    sdf, verts = sdf.requires_grad_(True), verts.double().requires_grad_(True)
    w = torch.randn(200, 3, generator=gen, dtype=torch.double)

    def fn(v, s):
        out, _, _ = marching_tetrahedra(v, tets, s)
        return (out * w[: out.shape[0]]).sum()

    assert torch.autograd.gradcheck(fn, (verts, sdf), eps=1e-6, atol=1e-5)


def test_load_tets_threestudio_format(tmp_path) -> None:
    g = load_tetgrid(3)
    path = tmp_path / "3_tets.npz"
    np.savez(path, vertices=(g.vertices.double().numpy() + 1) / 2, indices=g.tets.int().numpy())
    v, t = load_tets(path)
    assert v.dtype == torch.float32 and t.dtype == torch.int64
    assert torch.equal(t, g.tets) and torch.allclose(v, (g.vertices + 1) / 2)
    v, _ = load_tets(path, fit=0.5)
    assert torch.allclose(v, g.vertices * 0.5, atol=1e-6)
    bad = {
        "missing": ({"vertices": np.zeros((4, 3))}, "needs 'vertices' and 'indices'"),
        "range": ({"vertices": np.zeros((4, 3)), "indices": np.array([[0, 1, 2, 4]])}, "outside"),
        "shape": ({"vertices": np.zeros((4, 2)), "indices": np.array([[0, 1, 2, 3]])}, "expected vertices"),
        "nan": ({"vertices": np.full((4, 3), np.nan), "indices": np.array([[0, 1, 2, 3]])}, "NaN"),
        "pickle": ({"vertices": np.array([None] * 4), "indices": np.array([[0, 1, 2, 3]])}, "unreadable"),
    }
    for name, (arrays, match) in bad.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrays)
        with pytest.raises(ValueError, match=match) as e:
            load_tets(p)
        assert str(p) in str(e.value)
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="torn.npz: unreadable"):
        load_tets(tmp_path / "torn.npz")
