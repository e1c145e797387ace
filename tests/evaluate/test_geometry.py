"""Chamfer and normal consistency on known shapes, the reference alignment, the Janus heuristic."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from dreamcs.evaluate.geometry import (
    chamfer,
    compare_to_reference,
    geometry_metrics,
    janus_score,
    rotate_y,
    sample_surface,
)
from dreamcs.mesh import normalize


def test_chamfer_on_known_point_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3))
    assert chamfer(a, a) == 0.0
    assert chamfer(a, a + [0.3, 0.0, 0.0]) == pytest.approx(0.3, abs=0.08)  # nearest can be a neighbour
    assert chamfer(np.zeros((1, 3)), np.array([[0.0, 4.0, 0.0]])) == pytest.approx(4.0)
    assert chamfer(a, np.zeros((0, 3))) == float("inf")


def test_concentric_spheres_distance_is_radius_gap():
    outer = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    inner = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    pa, _ = sample_surface(outer, 2000, seed=0)
    pb, _ = sample_surface(inner, 8000, seed=1)
    assert chamfer(pa, pb) == pytest.approx(0.5, abs=0.02)
    assert np.allclose(np.linalg.norm(pa, axis=1), 1.0, atol=0.01)  # samples lie on the surface


def _l_shape() -> trimesh.Trimesh:
    """An asymmetric object (no rotation about y maps it onto itself)."""
    return normalize(trimesh.util.concatenate([
        trimesh.creation.box([1.0, 0.4, 0.4]).apply_translation([0.3, 0, 0]),
        trimesh.creation.box([0.4, 0.4, 1.2]).apply_translation([-0.2, 0, 0.4]),
        trimesh.creation.box([0.3, 1.0, 0.3]).apply_translation([0.6, 0.3, 0]),
    ]))


def test_reference_comparison_finds_the_rotation():
    ref = _l_shape()
    turned = ref.copy()
    turned.vertices = rotate_y(np.asarray(ref.vertices), 90.0)
    out = compare_to_reference(turned, ref)
    assert abs(((out["rotation_deg"] - 270.0) + 180) % 360 - 180) < 8  # undoes the 90 degrees
    assert out["chamfer"] < 0.03 and out["normal_consistency"] > 0.95
    other = compare_to_reference(normalize(trimesh.creation.icosphere(3)), ref)
    assert other["chamfer"] > 3 * out["chamfer"] and other["normal_consistency"] < out["normal_consistency"]


def _head(two_faced: bool) -> trimesh.Trimesh:
    """A head: a sphere with a nose and ears; 'two-faced' mirrors the nose onto the back."""
    nose = trimesh.creation.cone(radius=0.25, height=0.5)  # along +z from z = 0
    parts = [trimesh.creation.icosphere(subdivisions=3), nose.copy().apply_translation([0, 0.1, 0.9])]
    for x in (-1.0, 1.0):  # bilateral, so a left/right mirror is no Janus evidence
        parts.append(trimesh.creation.icosphere(subdivisions=1, radius=0.2).apply_translation([x, 0.2, -0.2]))
    if two_faced:
        back = nose.copy().apply_transform(trimesh.transformations.rotation_matrix(np.pi, [0, 1, 0]))
        parts.append(back.apply_translation([0, 0.1, -0.9]))
    return normalize(trimesh.util.concatenate(parts))


def test_janus_detector_ranks_two_faced_above_normal():
    normal, janus = janus_score(_head(False)), janus_score(_head(True))
    assert janus["janus_score"] > normal["janus_score"] + 0.3
    assert janus["janus_cd"] < normal["janus_cd"] / 3
    # a slightly turned asset is still caught (search over mirror planes about y)
    turned = _head(True)
    turned.vertices = rotate_y(np.asarray(turned.vertices), 15.0)
    assert janus_score(turned)["janus_score"] > normal["janus_score"] + 0.3


def test_geometry_metrics_see_floaters_and_holes():
    body = trimesh.creation.icosphere(subdivisions=2)
    clean = geometry_metrics(normalize(body), n=512)
    assert clean["floaters"] == 0.0 and clean["holes"] == 0 and clean["watertight"] == 1.0
    floater = trimesh.creation.icosphere(subdivisions=1, radius=0.1).apply_translation([2.0, 0, 0])
    holed = body.copy()
    holed.update_faces(np.arange(len(holed.faces)) != 0)
    out = geometry_metrics(normalize(trimesh.util.concatenate([holed, floater])), n=512)
    assert 0 < out["floaters"] < 0.05 and out["holes"] == 3 and out["watertight"] == 0.0
    assert out["components"] == 2


def _mirror_front_to_back(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The front half (face centroids at z > 0) plus its mirror image as the back: two-faced."""
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    front = f[v[f].mean(axis=1)[:, 2] > 0]
    verts = np.concatenate([v, v * [1.0, 1.0, -1.0]])
    return normalize(trimesh.Trimesh(verts, np.concatenate([front, front[:, ::-1] + len(v)])))


@pytest.mark.parametrize("name", ["text2mesh/horse.obj", "threestudio_shapes/teddy.obj", "threestudio_shapes/animal.obj"])
def test_janus_detector_on_real_meshes(shared_data, name):
    """Real objects with a distinct front, and the same made two-faced: the copy scores far higher."""
    from dreamcs.mesh import load_mesh

    mesh = normalize(load_mesh(shared_data / "meshes" / name))
    normal, janus = janus_score(mesh)["janus_score"], janus_score(_mirror_front_to_back(mesh))["janus_score"]
    assert janus > 0.95 and normal < janus - 0.4
