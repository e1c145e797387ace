"""Graded defects: severity grades the damage, every kind changes the mesh measurably, stays loadable
and finite, and is deterministic per seed; each new kind does what its name says."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from dreamcs.data.defects import DEFECTS, EMBEDDED_DEFECTS, DefectError, apply_defect
from dreamcs.mesh import load_mesh, normalize, save_mesh

NEW = ("oversmooth", "thin_shell", "duplicate_parts", "missing_parts", "cracks", "bloating", "topo_noise")


@pytest.fixture(scope="module")
def chair(sample_dir):
    return normalize(load_mesh(sample_dir / "blockmesh_test__s_chair_modern.obj"))


def _change(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    """Symmetric mean surface distance plus relative area change."""
    pa = trimesh.sample.sample_surface(a, 2000, seed=0)[0]
    pb = trimesh.sample.sample_surface(b, 2000, seed=0)[0]
    return float(cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean() + abs(b.area / a.area - 1))


def _boundary_edges(m: trimesh.Trimesh) -> int:
    m = m.copy()
    m.merge_vertices()
    return int((np.unique(m.edges_sorted, axis=0, return_counts=True)[1] == 1).sum())


@pytest.mark.parametrize("name", sorted(DEFECTS.names()))
def test_severity_grades_the_damage(chair, name, tmp_path):
    lo, hi = normalize(apply_defect(chair, name, 5, 0.1)), normalize(apply_defect(chair, name, 5, 0.9))
    again = apply_defect(chair, name, 5, 0.9)
    assert np.array_equal(normalize(again).vertices, hi.vertices) and np.array_equal(again.faces, hi.faces)
    assert 0.01 < _change(chair, lo) < _change(chair, hi), name
    back = load_mesh(save_mesh(hi, tmp_path / f"{name}.ply"))
    assert np.isfinite(back.vertices).all() and len(back.faces) > 0


def test_severity_outside_0_1_is_refused(chair):
    with pytest.raises(ValueError, match="severity"):
        apply_defect(chair, "holes", 0, 1.5)


def test_embedded_kinds_are_the_original_seven():
    assert set(EMBEDDED_DEFECTS) == {"janus", "floaters", "holes", "incomplete", "noise", "melted", "flatten"}
    assert set(NEW) == set(DEFECTS.names()) - set(EMBEDDED_DEFECTS)


def test_each_new_kind_does_what_it_says(chair):
    def n_comp(m):
        m = m.copy()
        m.merge_vertices()
        return len(trimesh.graph.connected_components(m.face_adjacency, nodes=np.arange(len(m.faces)), min_len=1))

    th = apply_defect(chair, "thin_shell", 1, 0.9)
    # thin shell: the volume enclosed by the convex hull shrinks a lot, the silhouette stays
    assert th.convex_hull.volume < 0.6 * chair.convex_hull.volume
    assert apply_defect(chair, "duplicate_parts", 1, 0.9).area > 1.05 * chair.area
    assert apply_defect(chair, "missing_parts", 1, 0.9).area < 0.85 * chair.area
    assert _boundary_edges(apply_defect(chair, "cracks", 1, 0.9)) > _boundary_edges(chair) + 20
    assert apply_defect(chair, "bloating", 1, 0.9).convex_hull.volume > 1.1 * chair.convex_hull.volume
    assert n_comp(apply_defect(chair, "topo_noise", 1, 0.9)) >= n_comp(chair) + 6
    sm = apply_defect(chair, "oversmooth", 1, 0.9)
    assert np.abs(sm.face_adjacency_angles).mean() < 0.5 * np.abs(chair.face_adjacency_angles).mean()


def test_a_defect_that_leaves_nothing_is_an_error():
    # a soup of thin separate triangles: heavy smoothing of the refined soup degenerates them all
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, size=(200, 3))
    v = np.concatenate([base, base + np.array([0.0, 0.02, 0.0]), base + np.array([0.3, 0, 0])])
    f = np.stack([np.arange(200), np.arange(200) + 200, np.arange(200) + 400], axis=1)
    soup = trimesh.Trimesh(v, f, process=False)
    assert len(apply_defect(soup, "flatten", 0, 0.0).faces) == 200  # the soup itself is usable
    with pytest.raises(DefectError, match="melted"):
        apply_defect(soup, "melted", 0, 1.0)
