"""The compiled grouping kernels against the numpy / scipy reference they replace: same labels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from scipy.sparse.csgraph import connected_components

from dreamcs.mesh.fusion import _graph_kernels, _reference_steps, fuse
from dreamcs.mesh.fusion.patches import dual_graph


def _meshes() -> dict[str, trimesh.Trimesh]:
    rng = np.random.default_rng(1)
    boxes = trimesh.util.concatenate(
        [
            trimesh.creation.box(extents=(0.1, 0.2, 0.05)).apply_translation(rng.uniform(-1, 1, 3))
            for _ in range(40)
        ]
    )
    sphere = trimesh.creation.icosphere(4)
    ragged = trimesh.Trimesh(
        sphere.vertices, sphere.faces[rng.random(len(sphere.faces)) < 0.7], process=False
    )
    return {
        "icosphere": sphere,
        "open ragged sphere": ragged,
        "many boxes": boxes,
        "torus": trimesh.creation.torus(1.0, 0.3, major_sections=48, minor_sections=16),
    }


@pytest.mark.parametrize("name", list(_meshes()))
@pytest.mark.parametrize("layout", [(64, 32), (37, 11)])
def test_kernels_match_numpy_reference(name, layout):
    mesh = _meshes()[name]
    fast = fuse(mesh, *layout, _numpy=False)
    ref = fuse(mesh, *layout, _numpy=True)
    np.testing.assert_array_equal(fast.faces, ref.faces)
    np.testing.assert_array_equal(fast.vertices, ref.vertices)


def test_components_match_scipy():
    rng = np.random.default_rng(0)
    n, m = 3000, 4000
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    A = sp.csr_matrix((np.ones(2 * m), (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    A.sum_duplicates()
    labels = rng.integers(0, 3, n)
    n_c, comp = _graph_kernels.components(A.indptr, A.indices, labels)
    rows = np.repeat(np.arange(n), np.diff(A.indptr))
    keep = labels[rows] == labels[A.indices]
    intra = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], A.indices[keep])), shape=(n, n))
    ref_n, ref = connected_components(intra, directed=False)
    assert n_c == ref_n
    np.testing.assert_array_equal(comp, ref)  # numbered by each piece's lowest face, like scipy


def test_first_copy_matches_a_dict():
    rng = np.random.default_rng(2)
    v = rng.integers(-3, 4, (4000, 3)).astype(np.float64) * 0.5  # many exact repeats, zeros included
    v[rng.random(v.shape) < 0.2] *= -1.0  # -0.0 must match 0.0, as in float comparisons
    first: dict[tuple[float, ...], int] = {}
    ref = np.array([first.setdefault(tuple(row), i) for i, row in enumerate(v.tolist())])
    np.testing.assert_array_equal(
        _graph_kernels.first_copy(np.ascontiguousarray(v + 0.0).view(np.int64)), ref
    )
    f = rng.integers(0, 20, (3000, 3))
    first_f: dict[tuple[int, ...], int] = {}
    ref_f = np.array([first_f.setdefault(tuple(row), i) for i, row in enumerate(f.tolist())])
    np.testing.assert_array_equal(_graph_kernels.first_copy(f), ref_f)
    np.testing.assert_array_equal(_reference_steps.first_copy(f), ref_f)
    np.testing.assert_array_equal(_reference_steps.first_copy(np.ascontiguousarray(v + 0.0).view(np.int64)), ref)


@pytest.mark.parametrize("name", list(_meshes()))
def test_pipeline_kernels_match_their_numpy_versions(name):
    """face_frames, components and patch_face_order: the same floats and orders in numpy."""
    mesh = _meshes()[name]
    faces = np.asarray(mesh.faces, dtype=np.int64)
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    verts = verts + 1e-3 * np.random.default_rng(3).standard_normal(verts.shape)
    faces = np.r_[faces, faces[:5, [0, 0, 1]]]  # zero-area faces: zero normals in both
    for got, ref in zip(_graph_kernels.face_frames(verts, faces), _reference_steps.face_frames(verts, faces), strict=True):
        np.testing.assert_array_equal(got, ref)
    A = dual_graph(faces)
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 7, len(faces))  # fragmented "patches": many unreached faces
    got, ref = (m.components(A.indptr, A.indices, labels) for m in (_graph_kernels, _reference_steps))
    assert got[0] == ref[0] > 7
    np.testing.assert_array_equal(got[1], ref[1])
    cen, _ = _reference_steps.face_frames(verts, faces)
    centers = rng.standard_normal((7, 3)) * 0.1
    centers[3] = cen[labels == 3][0]  # an exact tie at distance 0 is possible: the lowest index wins
    rank = rng.permutation(7)
    args = (labels, cen, centers, rank, A.indptr, A.indices)
    order = _graph_kernels.patch_face_order(*args)
    np.testing.assert_array_equal(order, _reference_steps.patch_face_order(*args))
    assert sorted(order.tolist()) == list(range(len(faces)))


def test_sort_kernels_match_numpy():
    from dreamcs.mesh.fusion._sort_kernels import sort_prefix, stable_argsort

    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 7, 1000):
        key = rng.integers(0, 5, n).astype(np.float64)  # many ties: order by index among equals
        np.testing.assert_array_equal(stable_argsort(key), np.argsort(key, kind="stable"))
        key = rng.standard_normal(n)
        np.testing.assert_array_equal(stable_argsort(key), np.argsort(key, kind="stable"))
        for dtype in (np.int32, np.int64):
            a = rng.integers(-50, 50, n + 5).astype(dtype)
            want = np.r_[np.sort(a[:n]), a[n:]]
            sort_prefix(a, n)
            np.testing.assert_array_equal(a, want)  # the prefix sorted, the rest untouched
