"""The figures scorer v5 weighs and no figure head predicts (``MESH_ONLY_FIGURES``): a reward reads them
off the mesh (``exact_figures``), weighs them as the scorer does, and only where they were read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from reward_helpers import tiny_model

import dreamcs.data.teacher_figures as tf
from dreamcs.data.scorers.geometric import GeometricScorer
from dreamcs.mesh import normalize
from dreamcs.reward.exact_figures import (
    exact_figure_values,
    exact_figure_values_mesh,
    generation_exact_figures,
)

V5 = ["self_crossing", "normal_anisotropy", "soft_share"]
NAMES = ["parts_far_small", "ragged_boundary", "ragged_holes", *V5]


def _cap_pushed_through() -> trimesh.Trimesh:
    s = trimesh.creation.icosphere(subdivisions=4)
    v = np.array(s.vertices)
    v[v[:, 0] > 0.6] += (-1.5, 0.013, 0.021)
    return trimesh.Trimesh(v, s.faces)


def test_mesh_only_values_follow_the_heads_and_are_the_scorers_ramps_at_any_scale() -> None:
    assert tf.MESH_ONLY_FIGURES == V5
    mesh = _cap_pushed_through()
    want = tf.penalty_ramps(GeometricScorer().figures(normalize(mesh)))
    for scale in (1.0, 23.0):
        vals = exact_figure_values(V5, torch.tensor(mesh.vertices * scale), torch.tensor(mesh.faces))
        assert vals.shape == (15,) and torch.isnan(vals[:12]).all()
        assert [float(x) for x in vals[12:]] == pytest.approx([want[k] for k in V5], abs=1e-6)
    assert float(vals[12]) == 1.0  # 5-8% of its edges cross: past the ramp's top
    only_one = exact_figure_values_mesh(["normal_anisotropy"], mesh)
    assert torch.isnan(only_one[12]) and torch.isfinite(only_one[13]) and torch.isnan(only_one[14])
    assert generation_exact_figures(NAMES) == ["parts_far_small"]  # marching tets cannot cross itself


def test_teacher_score_adds_them_with_the_scorers_weights_only_where_read() -> None:
    m = tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=NAMES).eval()
    logits = torch.full((4, 12), -50.0)  # the head reads no penalty
    values = torch.full((4, 15), float("nan"))
    values[0, 12] = 1.0  # a full self_crossing penalty: weight 5 on realism, so realism ~0
    values[1, 13] = 1.0  # a full normal_anisotropy penalty: weight 2 on fidelity (soft_share not read)
    values[2, 12:] = 0.0  # read, clean
    with torch.no_grad():
        s = m.teacher_score(logits, values)
        head_only = m.teacher_score(logits, values[:, :12])
    assert torch.allclose(head_only, torch.full((4,), 5.0), atol=1e-4)
    assert float(s[0]) == pytest.approx((0.0 + 5.0) / 2, abs=0.4)
    assert float(s[1]) == pytest.approx((5.0 + 3.0) / 2, abs=0.05)
    assert float(s[2]) == pytest.approx(5.0, abs=1e-4) and float(s[3]) == pytest.approx(5.0, abs=1e-4)  # NaN: not read
    m.config.exact_figures = ["parts_far_small"]  # not configured: not counted
    with torch.no_grad():
        assert torch.allclose(m.teacher_score(logits, values), head_only)


def test_score_reads_them_off_the_mesh() -> None:
    m = tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=NAMES).eval()
    crossed = normalize(_cap_pushed_through())
    with_v5 = m.score(crossed, "a ball")
    m.config.exact_figures = NAMES[:3]
    assert with_v5 < m.score(crossed, "a ball") - 0.2  # half the reward is the teacher's: realism lost 5


def test_every_readable_figure_is_the_scorers_ramp_and_the_config_lists_them() -> None:
    """Session 19 reads the scorer's jagged, folds, flatness, thin and concentration off the mesh too
    (the head's readings of them lose on real meshes); each must be the scorer's own ramp."""
    from dreamcs.data.defects import apply_defect, densify
    from dreamcs.reward.config import EXACT_FIGURES
    from dreamcs.reward.exact_figures import READABLE

    assert EXACT_FIGURES == READABLE
    order = tf.TEACHER_FIGURES + tf.MESH_ONLY_FIGURES
    names = [k for k in READABLE if k != "parts_far_small"]
    base = densify(normalize(trimesh.creation.torus(1.0, 0.35, major_sections=48, minor_sections=16)), 4000)
    for mesh in (base, normalize(apply_defect(base, "noise", seed=1, severity=0.85)),
                 normalize(apply_defect(base, "flatten", seed=1, severity=0.85))):
        want = tf.penalty_ramps(GeometricScorer().figures(mesh))
        vals = exact_figure_values(names, torch.tensor(mesh.vertices * 5.0), torch.tensor(mesh.faces))
        assert [float(vals[order.index(k)]) for k in names] == pytest.approx([want[k] for k in names], abs=1e-6)
    assert float(vals[order.index("flatness")]) == 1.0  # the flattened torus
    with pytest.raises(ValueError, match="small_handles"):
        exact_figure_values(["small_handles"], torch.tensor(base.vertices), torch.tensor(base.faces))
