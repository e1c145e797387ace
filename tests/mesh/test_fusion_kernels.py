"""The compiled grouping kernels against the numpy / scipy reference they replace: same labels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from scipy.sparse.csgraph import connected_components

from dreamcs.mesh.fusion import _graph_kernels, fuse


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
    fast = fuse(mesh, *layout)
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
