"""Adaptive mesh fusion: exact layout, valid indices, the linear map W, determinism, save/load."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import trimesh

from dreamcs.mesh import MeshError
from dreamcs.mesh.fusion import PatchedMesh, fuse
from dreamcs.mesh.fusion.remesh import closest_point_barycentric, remesh_to_count


def _boxes(n: int, seed: int = 0) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    parts = [
        trimesh.creation.box(extents=(0.05, 0.05, 0.05)).apply_translation(rng.uniform(-1, 1, 3))
        for _ in range(n)
    ]
    return trimesh.util.concatenate(parts)


def _check(pm: PatchedMesh, mesh: trimesh.Trimesh, p: int = 256, k: int = 64) -> None:
    assert pm.faces.shape == (p, k, 3) and pm.faces.dtype == np.int64
    assert pm.vertices.dtype == np.float32 and pm.vertices.shape[1] == 3
    assert pm.faces.min() >= 0 and pm.faces.max() < len(pm.vertices)
    assert len(np.unique(pm.faces)) == len(pm.vertices)  # no unused vertices
    assert pm.W.shape == (len(pm.vertices), len(mesh.vertices))
    assert np.diff(pm.W.indptr).max() <= 3
    scale = np.abs(mesh.vertices).max()
    np.testing.assert_allclose(pm.W @ np.asarray(mesh.vertices), pm.vertices, atol=1e-5 * scale)


def test_small_box_is_subdivided_to_exact_layout():
    mesh = trimesh.creation.box()
    pm = fuse(mesh)
    _check(pm, mesh)
    # refinement only: every patched vertex is a convex combination of input vertices on the box
    assert np.abs(pm.vertices).max() <= 0.5 + 1e-6
    tri = pm.vertices[pm.faces.reshape(-1, 3)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 0
    np.testing.assert_allclose(area.sum(), 6.0, rtol=1e-5)


def test_large_sphere_is_simplified_to_exact_layout():
    mesh = trimesh.creation.uv_sphere(radius=1.0, count=[224, 224])
    assert len(mesh.faces) > 95_000
    pm = fuse(mesh)
    _check(pm, mesh)
    r = np.linalg.norm(pm.vertices, axis=1)  # projected back onto the input surface
    assert r.max() <= 1.0 + 1e-5 and r.min() > 0.99
    share = pm.n_connected_patches() / pm.n_patches
    print(f"sphere 100k: {share:.1%} edge-connected patches")
    assert share > 0.6


def test_many_components_and_open_non_manifold():
    boxes = _boxes(300)
    pm = fuse(boxes)
    _check(pm, boxes)
    # open surface plus a non-manifold fin (three faces on one edge) plus a stray triangle
    grid = trimesh.creation.annulus(0.5, 1.0, 0.2)
    v = np.vstack(
        [
            grid.vertices,
            [[0, 0, 3], [1, 0, 3], [0.5, 1, 3], [0.5, -1, 3], [0.5, 0, 4], [5, 5, 5], [6, 5, 5], [5, 6, 5]],
        ]
    )
    n = len(grid.vertices)
    f = np.vstack(
        [grid.faces, [[n, n + 1, n + 2], [n + 1, n, n + 3], [n, n + 1, n + 4], [n + 5, n + 6, n + 7]]]
    )
    odd = trimesh.Trimesh(v, f, process=False)
    pm = fuse(odd, n_patches=32, faces_per_patch=16)
    _check(pm, odd, 32, 16)


def _odd_meshes() -> dict[str, trimesh.Trimesh]:
    tri = [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    fin = [[0, 0, 0], [1, 0, 0]] + [[0.5, np.cos(t), np.sin(t)] for t in np.linspace(0, 6, 10)]
    return {
        "single triangle": trimesh.Trimesh(tri, [[0, 1, 2]], process=False),
        "duplicate faces": trimesh.Trimesh(tri, [[0, 1, 2], [0, 1, 2], [2, 1, 0]], process=False),
        "unused vertices": trimesh.Trimesh(tri + [[5, 5, 5]], [[0, 1, 2]], process=False),
        "ten faces on one edge": trimesh.Trimesh(fin, [[0, 1, i] for i in range(2, 12)], process=False),
        "huge scale": trimesh.creation.box().apply_scale(5000.0),
    }


@pytest.mark.parametrize("name", list(_odd_meshes()))
@pytest.mark.parametrize("layout", [(1, 1), (7, 13), (16, 32)])
def test_odd_meshes_and_layouts(name, layout):
    mesh = _odd_meshes()[name]
    pm = fuse(mesh, n_patches=layout[0], faces_per_patch=layout[1])
    _check(pm, mesh, *layout)


@pytest.mark.parametrize("target", [16, 17, 63, 64, 191, 500, 1001])
def test_exact_count_repair(target):
    meshes = [
        trimesh.creation.box(),
        trimesh.creation.icosphere(2),
        trimesh.creation.icosphere(4),  # simplified down
        trimesh.creation.cylinder(0.3, 1.0, sections=7),
        trimesh.creation.annulus(0.2, 0.5, 0.1, sections=9),
        _boxes(5, seed=target),
    ]
    sphere = trimesh.creation.icosphere(3)
    meshes.append(trimesh.Trimesh(sphere.vertices, sphere.faces[::3]))  # open, ragged
    for mesh in meshes:
        v_in = np.asarray(mesh.vertices, dtype=np.float64)
        W = sp.identity(len(v_in), format="csr")
        faces, W2 = remesh_to_count(np.asarray(mesh.faces, dtype=np.int64), W, v_in, target)
        assert len(faces) == target
        assert faces.max() < W2.shape[0]
        assert not (faces[:, 0] == faces[:, 1]).any() and not (faces[:, 1] == faces[:, 2]).any()
        np.testing.assert_allclose(np.asarray(W2.sum(1)).ravel(), 1.0, atol=1e-9)  # affine rows


def test_closest_point_matches_trimesh():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 500, 3))
    p = rng.normal(size=(500, 3)) * 2
    bary, d2 = closest_point_barycentric(p, a, b, c)
    ref = trimesh.triangles.closest_point(np.stack([a, b, c], 1), p)
    np.testing.assert_allclose(((ref - p) ** 2).sum(1), d2, atol=1e-9)
    assert (bary >= 0).all() and np.allclose(bary.sum(1), 1)


def test_deterministic():
    mesh = trimesh.creation.icosphere(3)
    a, b = fuse(mesh, n_patches=64, faces_per_patch=32), fuse(mesh.copy(), n_patches=64, faces_per_patch=32)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert (a.W != b.W).nnz == 0


def test_W_carries_gradients_to_input_vertices():
    mesh = trimesh.creation.icosphere(2)  # 320 faces -> simplified path for 8 x 16
    pm = fuse(mesh, n_patches=8, faces_per_patch=16)
    v = torch.tensor(mesh.vertices, dtype=torch.float64, requires_grad=True)
    out = pm.vertices_from(v)
    np.testing.assert_allclose(out.detach().numpy(), pm.vertices, atol=1e-6)
    # linear map: d/dv sum(R * (W v)) = W^T R, compared with autograd
    R = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (out * R).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), pm.W.T.astype(np.float64) @ R.numpy(), atol=1e-6)
    assert (v.grad.abs().sum(1) > 0).sum() >= 3
    v32 = torch.tensor(mesh.vertices, dtype=torch.float32, requires_grad=True)
    pm.features(pm.vertices_from(v32)).square().sum().backward()
    assert torch.isfinite(v32.grad).all() and v32.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        pm.vertices_from(torch.zeros(3, 3))


def test_features_and_centers_layout():
    pm = fuse(trimesh.creation.box(), n_patches=16, faces_per_patch=8)
    assert pm.features().shape == (16, 8, 10)
    assert pm.centers().shape == (16, 3)
    assert 0 <= pm.n_connected_patches() <= 16


def test_save_load_round_trip(tmp_path):
    pm = fuse(trimesh.creation.icosphere(1), n_patches=8, faces_per_patch=16)
    path = pm.save(tmp_path / "a.npz")
    back = PatchedMesh.load(path)
    np.testing.assert_array_equal(back.faces, pm.faces)
    np.testing.assert_array_equal(back.vertices, pm.vertices)
    assert (back.W != pm.W).nnz == 0 and back.W.dtype == np.float32
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_load_broken_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MeshError, match="bad.npz"):
        PatchedMesh.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, vertices=np.zeros((3, 3)))
    with pytest.raises(MeshError, match="missing"):
        PatchedMesh.load(other)
    with pytest.raises(MeshError, match="not found"):
        PatchedMesh.load(tmp_path / "none.npz")


def test_bad_input_raises_mesh_error():
    with pytest.raises(MeshError, match="NaN"):
        fuse(trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], [[0, 1, 2]], process=False))
    with pytest.raises(MeshError, match="no triangle faces|degenerate"):
        fuse(
            trimesh.Trimesh(
                [[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.zeros((0, 3), dtype=np.int64), process=False
            )
        )
    with pytest.raises(MeshError, match="degenerate"):
        fuse(trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 0, 1]], process=False))


@pytest.mark.slow
def test_every_shared_mesh_fuses_to_exact_layout(shared_data):
    from dreamcs.mesh import MESH_EXTENSIONS, load_mesh

    paths = sorted(p for p in (shared_data / "meshes").rglob("*") if p.suffix.lower() in MESH_EXTENSIONS)
    assert paths
    shares, times = [], []
    for path in paths:
        mesh = load_mesh(path)
        t0 = time.perf_counter()
        pm = fuse(mesh)
        times.append(time.perf_counter() - t0)
        assert pm.faces.shape == (256, 64, 3), path
        assert pm.faces.max() < len(pm.vertices), path
        shares.append(pm.n_connected_patches() / 256)
    print(
        f"\n{len(paths)} shared meshes: edge-connected patches {np.mean(shares):.1%} mean, "
        f"{np.median(shares):.1%} median, {np.min(shares):.1%} min; fuse median {np.median(times) * 1e3:.0f} ms"
    )


def test_unique_keys_matches_numpy():
    from dreamcs.mesh.fusion.remesh import _unique_keys

    rng = np.random.default_rng(0)
    for n, hi in ((0, 1), (1, 1), (7, 3), (5000, 900), (3000, 2**61)):  # the last: the stable fallback
        keys = rng.integers(0, hi, n, dtype=np.int64)
        ref = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        for a, b in zip(ref, _unique_keys(keys), strict=True):
            np.testing.assert_array_equal(a.ravel(), b)
