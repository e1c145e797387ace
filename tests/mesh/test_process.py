"""normalize and simplify."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from dreamcs.mesh import MeshError, load_mesh, normalize, simplify


def _odd_mesh() -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=(4.0, 10.0, 2.0))
    m.apply_translation([100.0, -50.0, 7.0])
    return m


def test_normalize_centres_and_scales():
    m = _odd_mesh()
    before = m.vertices.copy()
    out = normalize(m)
    np.testing.assert_array_equal(m.vertices, before)  # input untouched
    lo, hi = out.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-12)
    assert (hi - lo).max() == pytest.approx(2.0)
    np.testing.assert_allclose(hi - lo, [0.8, 2.0, 0.4])
    assert out.vertices.min() >= -1.0 and out.vertices.max() <= 1.0
    # The stored transform inverts exactly.
    meta = out.metadata["normalize"]
    np.testing.assert_allclose(out.vertices / meta["scale"] + meta["center"], before, atol=1e-9)
    assert out.area == pytest.approx(m.area * meta["scale"] ** 2)


def test_normalize_z_up():
    m = trimesh.creation.box(extents=(1.0, 2.0, 4.0))  # tallest along z
    out = normalize(m, up="z")
    np.testing.assert_allclose(out.extents, [0.5, 2.0, 1.0])  # z became y
    assert out.is_winding_consistent and out.volume > 0  # a rotation keeps outward normals


def test_normalize_zero_extent_raises():
    m = trimesh.Trimesh(vertices=np.ones((3, 3)), faces=[[0, 1, 2]], process=False)
    m.metadata["file_path"] = "/data/point.obj"
    with pytest.raises(MeshError, match="zero extent") as info:
        normalize(m)
    assert info.value.path == "/data/point.obj"


def test_simplify_reduces_to_at_most_max_faces():
    m = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces
    out = simplify(m, max_faces=2000)
    assert out is not m
    assert 1800 <= len(out.faces) <= 2000
    assert out.area == pytest.approx(m.area, rel=0.02)
    assert out.is_watertight
    assert len(m.faces) == 20480  # input untouched


def test_simplify_under_limit_returns_same_object():
    m = trimesh.creation.icosphere(subdivisions=2)
    assert simplify(m, max_faces=len(m.faces)) is m
    assert simplify(m) is m


def test_simplify_default_on_quad_armchair(shared_data):
    m = normalize(load_mesh(shared_data / "meshes" / "kaolin_samples" / "armchair.obj"))
    out = simplify(m)
    assert 16000 <= len(out.faces) <= 16384
    assert np.isfinite(out.vertices).all()
    assert out.metadata["file_path"].endswith("armchair.obj")
