"""Teacher figures read off the mesh (RewardCSConfig.exact_figures): in place of the head's reading
where given, differentiable in the vertices, and read by score() and evaluate()."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh
from reward_helpers import mesh_core, tiny_model

import dreamcs.data.teacher_figures as tf
from dreamcs.reward.exact_figures import exact_figure_values, exact_figure_values_mesh

K = tf.TEACHER_FIGURES.index("parts_far_small")


def _with_floater() -> trimesh.Trimesh:
    body = trimesh.creation.icosphere(3, radius=1.0)
    bit = trimesh.creation.icosphere(1, radius=0.2)
    bit.apply_translation([1.7, 0.0, 0.0])
    return trimesh.util.concatenate([body, bit])


def test_config_checks_the_names_and_the_mix():
    tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=["parts_far_small"])
    with pytest.raises(ValueError, match="exact_figures"):
        tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=["small_handles"])  # not read off a mesh
    with pytest.raises(ValueError, match="exact_figures"):
        tiny_model(teacher_figures=12, figure_weight=0.0, exact_figures=["parts_far_small"])


def test_exact_values_replace_the_heads_reading_only_where_configured_and_finite():
    m = tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=["parts_far_small"]).eval()
    logits = torch.full((3, 12), -50.0)  # the head reads no penalty anywhere
    values = torch.full((3, 12), float("nan"))
    values[0, K] = 1.0  # a full floater penalty (weight 5 in realism): realism 0
    values[1, tf.TEACHER_FIGURES.index("jagged")] = 1.0  # not an exact figure of this model: ignored
    with torch.no_grad():
        s = m.teacher_score(logits, values)
        plain = m.teacher_score(logits)
    assert float(s[1]) == pytest.approx(5.0, abs=1e-4) and float(s[2]) == pytest.approx(5.0, abs=1e-4)
    assert float(s[0]) < 3.0 and torch.allclose(plain, torch.full((3,), 5.0), atol=1e-4)
    m.config.exact_figures = []  # a config choice read at every call
    with torch.no_grad():
        assert torch.allclose(m.teacher_score(logits, values), plain)


def test_the_exact_value_is_the_scorer_ramp_with_a_gradient_past_its_clip():
    mesh = _with_floater()
    v = torch.tensor(mesh.vertices, requires_grad=True)
    vals = exact_figure_values(["parts_far_small"], v, torch.tensor(mesh.faces))
    assert torch.isnan(vals[[i for i in range(12) if i != K]]).all()
    share = mesh.area_faces[len(trimesh.creation.icosphere(3).faces):].sum() / mesh.area
    assert share > 0.01 and float(vals[K].detach()) == 1.0  # past the ramp's top (0.01): the full penalty
    vals[K].backward()
    assert float(v.grad.abs().sum()) > 0  # yet the floater is still pushed to shrink
    assert exact_figure_values([], v, torch.tensor(mesh.faces)) is None


def test_score_reads_floaters_off_the_mesh_and_the_gradient_reaches_the_vertices():
    mesh_core()
    m = tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=["parts_far_small"]).eval()
    with torch.no_grad():  # a head that reads no penalty: the teacher score is 5 unless the mesh says otherwise
        m.figure_head[-1].weight.zero_()
        m.figure_head[-1].bias.fill_(-50.0)
    mesh = _with_floater()
    with_exact = m.score(mesh, "a ball")
    m.config.exact_figures = []
    head_only = m.score(mesh, "a ball")
    m.config.exact_figures = ["parts_far_small"]
    fv = exact_figure_values_mesh(["parts_far_small"], mesh)
    # a full floater penalty (weight 5) takes realism from 5 to softplus(0) = ln 2 / 2: the teacher score
    # loses half of that, the reward (figure_weight 0.5) a quarter
    assert head_only - with_exact == pytest.approx(0.25 * (5.0 - math.log(2) / 2), abs=1e-3)
    assert float(fv[K]) == 1.0
    # a fused PatchedMesh reads the head, unless the mesh it was fused from is given
    from dreamcs.reward.model import to_patched

    pm = to_patched(mesh, faces_per_patch=m.config.faces_per_patch)
    assert m.score(pm, "a ball") == pytest.approx(head_only, abs=1e-5)
    assert m.score(pm, "a ball", figures_from=mesh) == pytest.approx(with_exact, abs=1e-5)
    # in generation: the value is computed on the surface and passed with the fused layout
    from dreamcs.generate.reward_branch import RewardBranch

    branch = RewardBranch(m, "a ball", n_patches=256)
    v = torch.tensor(mesh.vertices, dtype=torch.float32, requires_grad=True)
    f = torch.tensor(mesh.faces)
    r = branch(v, f, figure_values=exact_figure_values(["parts_far_small"], v, f))
    assert float(r.detach()) == pytest.approx(with_exact, abs=1e-3)
    r.backward()
    n_body = len(trimesh.creation.icosphere(3).vertices)
    assert float(v.grad[n_body:].norm(dim=1).mean()) > float(v.grad[:n_body].norm(dim=1).mean())



def test_ragged_figures_read_off_the_mesh_are_the_scorers_at_any_scale():
    """A torn sphere reads ragged as the scorer reads it, at any scale; a box unwelded along its
    creases (a CAD model's separate faces) is not torn."""
    import numpy as np

    from dreamcs.data.realism import apply_realism
    from dreamcs.data.scorers.geometric import GeometricScorer
    from dreamcs.mesh import normalize

    names = ["ragged_boundary", "ragged_holes"]
    idx = [tf.TEACHER_FIGURES.index(k) for k in names]
    torn = trimesh.creation.icosphere(4)
    torn.update_faces(np.random.default_rng(0).random(len(torn.faces)) > 0.15)
    torn.remove_unreferenced_vertices()
    want = tf.penalty_ramps(GeometricScorer().figures(normalize(torn)))
    for scale in (1.0, 37.0):
        vals = exact_figure_values(names, torch.tensor(torn.vertices * scale), torch.tensor(torn.faces))
        assert [float(vals[i]) for i in idx] == pytest.approx([want[k] for k in names], abs=1e-6)
    assert float(vals[idx[0]]) > 0.5
    box = apply_realism(normalize(trimesh.creation.box(extents=(1.0, 0.8, 0.6)).subdivide().subdivide()), "unweld", seed=0)
    assert float(exact_figure_values_mesh(names, box)[idx].abs().sum()) == 0.0
    tiny_model(teacher_figures=12, figure_weight=0.5, exact_figures=["parts_far_small", *names])  # a valid config
    from dreamcs.reward.exact_figures import generation_exact_figures

    assert generation_exact_figures(["parts_far_small", *names]) == ["parts_far_small"]  # closed surfaces: not read
