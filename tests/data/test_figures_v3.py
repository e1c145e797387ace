"""The v3 figures of the geometric scorer: each separates a synthetic clean shape from its damaged
copy (the defects the validation sets use) and stays quiet on open-but-clean meshes (an open
cylinder, a cup, an open box, two unwelded boxes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from dreamcs.data.defects import apply_defect, densify
from dreamcs.data.scorers.figures_v3 import surface_v3
from dreamcs.mesh import normalize

V3 = Path(__file__).resolve().parents[2] / "src" / "dreamcs" / "configs" / "scorers" / "geometric-v3.yaml"


def _prep(m: trimesh.Trimesh) -> trimesh.Trimesh:
    """As the build prepares a mesh: normalised and densified to >= 4000 faces."""
    return densify(normalize(m), 4000)


def _open_cylinder() -> trimesh.Trimesh:
    c = trimesh.creation.cylinder(radius=0.5, height=1.5, sections=48)
    side = np.abs(c.face_normals[:, 2]) < 0.5
    return trimesh.Trimesh(c.vertices, c.faces[side])


def _cup() -> trimesh.Trimesh:
    c = trimesh.creation.cylinder(radius=0.5, height=1.5, sections=48)
    return trimesh.Trimesh(c.vertices, c.faces[c.triangles_center[:, 2] < 0.7])  # the top cap gone


def _open_box() -> trimesh.Trimesh:
    b = trimesh.creation.box(extents=(1.0, 0.8, 0.6))
    return trimesh.Trimesh(b.vertices, b.faces[b.face_normals[:, 1] < 0.5])  # no lid


def _two_boxes() -> trimesh.Trimesh:
    a = trimesh.creation.box(extents=(1.0, 0.2, 1.0))
    b = trimesh.creation.box(extents=(0.2, 1.0, 0.2)).apply_translation((0.0, -0.6, 0.0))  # touching, not welded
    return trimesh.util.concatenate([a, b])


def _sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4)


OPEN_CLEAN = {"open cylinder": _open_cylinder, "cup": _cup, "open box": _open_box, "two unwelded boxes": _two_boxes}


def test_ragged_boundary_sees_torn_edges_not_open_rims():
    for name, make in OPEN_CLEAN.items():
        fig = surface_v3(_prep(make()))
        assert fig["ragged_boundary"] < 0.5 and fig["ragged_holes"] < 0.003, (name, fig)
    clean = _prep(_sphere())
    assert surface_v3(clean)["ragged_boundary"] == 0.0
    for defect in ("holes", "cracks", "incomplete"):
        bad = surface_v3(normalize(apply_defect(clean, defect, seed=1, severity=0.6)))
        assert bad["ragged_boundary"] > 1.5, (defect, bad)  # v3 ramp: 0.5 to 2.5
    holed = surface_v3(normalize(apply_defect(clean, "holes", seed=1, severity=0.6)))
    assert holed["ragged_holes"] > 0.03
    # damage on an open mesh still shows: the cup with a hole torn into its wall
    cup = _prep(_cup())
    assert surface_v3(normalize(apply_defect(cup, "holes", seed=2, severity=0.6)))["ragged_boundary"] > 2.5


def test_small_handles_count_stuck_on_rings_only():
    clean = _prep(_sphere())
    assert surface_v3(clean)["small_handles"] == 0.0
    bad = normalize(apply_defect(clean, "topo_noise", seed=3, severity=0.6))
    assert surface_v3(bad)["small_handles"] >= 3.0
    # a big ring is an object, not noise; a small closed blob (genus 0) is not a handle
    assert surface_v3(_prep(trimesh.creation.torus(1.0, 0.3)))["small_handles"] == 0.0
    blob = trimesh.creation.icosphere(2, radius=0.1).apply_translation((0.0, 1.0, 0.0))
    assert surface_v3(_prep(trimesh.util.concatenate([_sphere(), blob])))["small_handles"] == 0.0
    for name, make in OPEN_CLEAN.items():
        assert surface_v3(_prep(make()))["small_handles"] == 0.0, name


def test_concentration_drops_when_smoothing_spreads_the_bending():
    assert surface_v3(_prep(_open_cylinder()))["concentration"] == 1.0  # faceted, flat between the facets
    for name, make in {"box": lambda: trimesh.creation.box(extents=(1.0, 0.8, 0.6)), "open box": _open_box,
                       "two unwelded boxes": _two_boxes}.items():
        clean = _prep(make())
        assert surface_v3(clean)["concentration"] > 0.9, name
        for defect in ("oversmooth", "melted", "bloating"):
            bad = surface_v3(normalize(apply_defect(clean, defect, seed=4, severity=0.6)))
            assert bad["concentration"] < 0.15, (name, defect, bad)


def test_v3_scorer_leaves_open_clean_meshes_alone_and_marks_their_damage():
    from dreamcs.config import load_config
    from dreamcs.data.scorers.geometric import GeometricScorer, GeometricScorerConfig

    scorer = GeometricScorer(load_config(GeometricScorerConfig, V3))
    for name, make in {"cup": _cup, "open box": _open_box, "two unwelded boxes": _two_boxes}.items():
        clean = _prep(make())
        s = scorer.score(clean, "an object")
        assert s.realism == 5.0, (name, s.details["penalties"])
        bad = scorer.score(normalize(apply_defect(clean, "holes", seed=5, severity=0.85)), "an object")
        assert bad.realism <= 3.0, (name, bad.details["penalties"])


def _sheet(seam: bool) -> trimesh.Trimesh:
    """A flat 2 x 2 sheet of two halves meeting along y = 0, each a fan; ``seam``: the lower half's edge
    has a vertex at x = 1 that the upper half lacks (a T-junction seam from x = 0.5 to 1.5, as where
    unwelded CAD pieces meet), else both halves share it."""
    mid = [] if seam else [(1.0, 0.0)]
    fans = [((0.0, 1.0), [(0.0, 0.0), (0.5, 0.0), *mid, (1.5, 0.0), (2.0, 0.0), (2.0, 1.0)]),
            ((0.0, -1.0), [(2.0, -1.0), (2.0, 0.0), (1.5, 0.0), (1.0, 0.0), (0.5, 0.0), (0.0, 0.0)])]
    v, f = [], []
    for apex, ring in fans:  # counter-clockwise fans: one consistent winding
        base = len(v)
        v += [(x, y, 0.0) for x, y in (apex, *ring)]
        f += [(base, base + i, base + i + 1) for i in range(1, len(ring))]
    m = trimesh.Trimesh(np.array(v), np.array(f), process=False)
    m.merge_vertices()
    return m


def test_a_seam_that_runs_back_along_itself_is_not_ragged() -> None:
    from dreamcs.data.scorers.figures_v3 import ragged_boundary

    welded, seamed = _sheet(seam=False), _sheet(seam=True)
    assert len(seamed.vertices) == len(welded.vertices)  # same corners; only the middle edge differs
    base = ragged_boundary(welded)["ragged_boundary"]
    # the seam's loop turns by 180 degrees at both of its ends: v4 reads it as a seam, v3 as a tear
    assert ragged_boundary(seamed)["ragged_boundary"] == base
    assert ragged_boundary(seamed, fold_deg=181.0, seam_tol=0.0)["ragged_boundary"] > base + 0.5
    assert ragged_boundary(seamed, fold_deg=181.0)["ragged_boundary"] == base  # its two sides overlap: a seam either way


def test_an_unwelded_seam_is_not_a_tear_but_a_lone_torn_edge_is() -> None:
    from dreamcs.data.realism import apply_realism
    from dreamcs.data.scorers.figures import _welded_components
    from dreamcs.data.scorers.figures_v3 import ragged_boundary

    box = normalize(densify(trimesh.creation.box(extents=(1.0, 0.8, 0.6)), 2000))
    pieces, _ = _welded_components(apply_realism(box, "unweld", seed=0))  # six faces, each its own piece, a hair apart
    assert ragged_boundary(pieces, seam_tol=0.0)["ragged_boundary"] > 1.0  # v3: the corners of every piece are torn
    assert ragged_boundary(pieces)["ragged_boundary"] == 0.0  # v4: each edge has its partner beside it
    one_piece_gone, _ = _welded_components(trimesh.Trimesh(pieces.vertices, pieces.faces[pieces.face_normals[:, 1] < 0.5]))
    # without the lid, the rim has nothing beside it: its corners are counted again
    assert ragged_boundary(one_piece_gone)["ragged_boundary"] > 0.0


def test_seams_cost_little_on_a_boundary_of_hairs() -> None:
    """A boundary whose median edge is 1e-8 long beside a long one (a melted seam) must not cut the
    long edge into 1e8 pieces."""
    from dreamcs.data.scorers.figures_v3 import seamed_edges

    n = 400
    x = np.r_[np.cumsum(np.full(n, 1e-8)), 1.0]
    vv = np.c_[x, np.zeros(n + 1), np.zeros(n + 1)]
    b = np.c_[np.arange(n), np.arange(1, n + 1)]
    seamed = seamed_edges(vv, b, 5e-4)  # returns at once (it ran out of memory before)
    assert seamed.shape == (n,) and not seamed.any()  # a straight run of hairs is no seam
