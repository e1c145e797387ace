"""quality figures on hand-built meshes, checked against hand counts and trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from dreamcs.mesh import quality


def _box(size=1.0, offset=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=(size, size, size))
    m.apply_translation(offset)
    return m


def _mesh(v, f) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices=np.asarray(v, float), faces=np.asarray(f), process=False)


def test_closed_box():
    q = quality(_box())
    assert q["n_vertices"] == 8 and q["n_faces"] == 12 and q["n_edges"] == 18
    assert q["watertight"] and q["winding_consistent"]
    assert q["boundary_edges"] == 0 and q["nonmanifold_edges"] == 0 and q["inconsistent_edges"] == 0
    assert q["n_components"] == 1 and q["area_outside_largest"] == 0.0
    assert q["degenerate_faces"] == 0 and q["duplicate_faces"] == 0
    assert q["area"] == pytest.approx(6.0) and q["volume"] == pytest.approx(1.0)


def test_box_with_a_face_removed_has_boundary():
    m = _box()
    m = _mesh(m.vertices, m.faces[1:])
    q = quality(m)
    assert q["boundary_edges"] == 3  # the removed triangle's three edges
    assert not q["watertight"] and q["volume"] is None
    assert q["n_components"] == 1


def test_two_boxes_components_and_area_share():
    m = trimesh.util.concatenate([_box(1.0), _box(2.0, offset=(5, 0, 0))])
    q = quality(m)
    assert q["n_components"] == 2
    assert q["largest_component_faces"] == 12
    assert q["area_outside_largest"] == pytest.approx(6.0 / 30.0)
    assert q["watertight"]


def test_vertex_touching_triangles_are_separate_components():
    q = quality(_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], [[0, 1, 2], [0, 3, 4]]))
    assert q["n_components"] == 2
    assert q["area_outside_largest"] == pytest.approx(0.5)


def test_flipped_face_is_inconsistent_winding():
    m = _box()
    faces = m.faces.copy()
    faces[0] = faces[0][::-1]
    q = quality(_mesh(m.vertices, faces))
    assert q["inconsistent_edges"] == 3
    assert not q["winding_consistent"]
    assert q["watertight"]  # still closed, only wound wrongly
    assert q["volume"] is None


def test_fin_is_non_manifold():
    # Three triangles hinged on the edge (0, 1).
    v = [[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -1, 0.2], [0.5, 0, 1]]
    q = quality(_mesh(v, [[0, 1, 2], [1, 0, 3], [0, 1, 4]]))
    assert q["nonmanifold_edges"] == 1
    assert q["boundary_edges"] == 6
    assert q["n_edges"] == 7
    assert q["n_components"] == 1
    assert not q["watertight"]


def test_degenerate_and_duplicate_faces():
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]]
    q = quality(_mesh(v, [[0, 1, 2], [0, 1, 3], [1, 1, 2], [2, 1, 0]]))
    assert q["degenerate_faces"] == 2  # collinear (0,1,3) and repeated index (1,1,2)
    assert q["duplicate_faces"] == 1  # (2,1,0) repeats (0,1,2) in the other winding


def test_patch_layout_faces_are_flattened():
    m = _box()

    class Patched:
        vertices = m.vertices
        faces = m.faces.reshape(3, 4, 3)

    assert quality(Patched()) == quality(m)


def test_empty_mesh():
    q = quality(_mesh(np.zeros((0, 3)), np.zeros((0, 3), int)))
    assert q["n_faces"] == 0 and q["n_components"] == 0 and not q["watertight"]


def test_agrees_with_trimesh_on_random_soup():
    # Random faces over few vertices: many non-manifold and inconsistent edges, several parts.
    rng = np.random.default_rng(0)
    v = rng.normal(size=(60, 3))
    f = np.array([rng.choice(60, 3, replace=False) for _ in range(150)])
    m = _mesh(v, f)
    q = quality(m)
    edges = np.sort(m.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert q["boundary_edges"] == int((counts == 1).sum())
    assert q["nonmanifold_edges"] == int((counts > 2).sum())
    # trimesh's face_adjacency skips edges with more than two faces, so count with networkx.
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(len(f)))
    by_edge: dict[tuple[int, int], list[int]] = {}
    for i, face in enumerate(f):
        for a, b in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])):
            by_edge.setdefault((min(a, b), max(a, b)), []).append(i)
    for faces_on_edge in by_edge.values():
        g.add_edges_from((faces_on_edge[0], j) for j in faces_on_edge[1:])
    assert q["n_components"] == nx.number_connected_components(g)
    assert q["n_edges"] == len(by_edge)


def test_sphere_is_watertight_and_volume_close():
    q = quality(trimesh.creation.icosphere(subdivisions=4))
    assert q["watertight"] and q["winding_consistent"]
    assert q["volume"] == pytest.approx(4 / 3 * np.pi, rel=0.01)
