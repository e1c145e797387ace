"""The v5 figures of the geometric scorer: ``self_crossing`` sees a surface that passes through
itself (not separate parts that interpenetrate, not an unwelded soup's seams), ``normal_anisotropy``
sees a surface squashed flat; the v5 scorer weighs both and the v4 config does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from dreamcs.config import load_config
from dreamcs.data.defects import apply_defect, densify
from dreamcs.data.scorers.figures_v5 import normal_anisotropy, surface_v5
from dreamcs.data.scorers.geometric import GeometricScorer, GeometricScorerConfig
from dreamcs.mesh import normalize

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "dreamcs" / "configs" / "scorers"
ASSETS = Path(__file__).resolve().parents[2] / "src" / "dreamcs" / "assets" / "meshpref" / "meshes"


def _cap_pushed_through() -> trimesh.Trimesh:
    """One welded sphere whose cap is pushed through to the far side (off the symmetry planes, so
    that no edge meets a face exactly on its border)."""
    s = trimesh.creation.icosphere(subdivisions=4)
    v = np.array(s.vertices)
    v[v[:, 0] > 0.6] += (-1.5, 0.013, 0.021)
    return trimesh.Trimesh(v, s.faces)


def _soup(m: trimesh.Trimesh) -> trimesh.Trimesh:
    """Every face with its own three vertices (nothing welded)."""
    return trimesh.Trimesh(m.triangles.reshape(-1, 3), np.arange(3 * len(m.faces)).reshape(-1, 3), process=False)


def test_self_crossing_is_zero_on_clean_closed_and_multi_part_shapes() -> None:
    a = trimesh.creation.icosphere(subdivisions=3)
    b = a.copy().apply_translation((0.5, 0.013, 0.021))  # a second part pushed into the first, as CAD does
    for name, m in {"sphere": trimesh.creation.icosphere(subdivisions=4),
                    "torus": trimesh.creation.torus(1.0, 0.4, major_sections=64, minor_sections=24),
                    "box": trimesh.creation.box((1.0, 0.6, 0.3)),
                    "two interpenetrating parts": trimesh.util.concatenate([a, b]),
                    "an unwelded sphere": _soup(trimesh.creation.icosphere(subdivisions=3))}.items():
        assert surface_v5(m)["self_crossing"] == 0.0, name


def test_self_crossing_sees_a_surface_through_itself_welded_or_not() -> None:
    crossed = surface_v5(_cap_pushed_through())["self_crossing"]
    assert crossed > 0.03
    assert surface_v5(_soup(_cap_pushed_through()))["self_crossing"] > 0.03  # welded first
    assert surface_v5(_cap_pushed_through())["self_crossing"] == crossed  # a seeded sample: the same figure


@pytest.mark.parametrize("name", ["animal.obj", "armchair.obj"])
def test_bloating_a_concave_licensed_mesh_makes_it_cross_itself(name: str) -> None:
    from dreamcs.mesh.io import load_mesh

    clean = densify(normalize(load_mesh(ASSETS / name)), 4000)
    assert surface_v5(clean)["self_crossing"] == 0.0
    bloated = normalize(apply_defect(clean, "bloating", seed=3, severity=0.85))
    assert surface_v5(bloated)["self_crossing"] > 0.02


def test_normal_anisotropy_reads_sheets_not_boxes_and_ignores_winding() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    assert normal_anisotropy(sphere) == pytest.approx(1 / 3, abs=0.01)
    assert normal_anisotropy(trimesh.creation.box((1.0, 1.0, 1.0))) == pytest.approx(1 / 3, abs=1e-9)
    assert normal_anisotropy(trimesh.creation.cylinder(radius=0.1, height=2.0, sections=64)) < 0.55
    assert normal_anisotropy(trimesh.creation.box((1.0, 1.0, 0.01))) > 0.95
    squashed = normalize(apply_defect(densify(normalize(sphere), 4000), "flatten", seed=1, severity=0.6))
    assert normal_anisotropy(squashed) > 0.9
    flipped = sphere.copy()
    flipped.faces[::2] = flipped.faces[::2, ::-1]  # half the faces wound the other way
    assert normal_anisotropy(flipped) == pytest.approx(normal_anisotropy(sphere), abs=1e-9)


def test_the_v5_scorer_weighs_both_figures_and_v4_reproduces_without_them() -> None:
    v5 = GeometricScorer()
    v4 = GeometricScorer(load_config(GeometricScorerConfig, CONFIGS / "geometric-v4.yaml"))
    assert load_config(GeometricScorerConfig, CONFIGS / "geometric-v5.yaml").realism["self_crossing"] == v5.cfg.realism["self_crossing"]
    sphere = densify(normalize(trimesh.creation.icosphere(subdivisions=4)), 4000)
    assert "self_crossing" not in v5.score(sphere, "a ball").details["penalties"]
    pushed = normalize(_cap_pushed_through())
    s5, s4 = v5.score(pushed, "a ball"), v4.score(pushed, "a ball")
    assert s5.details["penalties"]["self_crossing"] > 2.0 and s5.realism < s4.realism
    assert "self_crossing" not in s4.details["penalties"] and "self_crossing" in s4.details["figures"]
    flat = normalize(apply_defect(sphere, "flatten", seed=1, severity=0.35))
    f5, f4 = v5.score(flat, "a ball"), v4.score(flat, "a ball")
    assert f5.details["penalties"]["normal_anisotropy"] > 0.5 and f5.fidelity < f4.fidelity


def test_self_crossing_is_the_same_when_the_broadphase_pairs_in_chunks(monkeypatch) -> None:
    import dreamcs.data.scorers.figures_v5 as v5

    mesh = _cap_pushed_through()
    whole = surface_v5(mesh)["self_crossing"]
    monkeypatch.setattr(v5, "PAIRS_PER_CHUNK", 500)  # dozens of chunks
    assert surface_v5(mesh)["self_crossing"] == whole > 0
