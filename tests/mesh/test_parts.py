"""Floaters read off a mesh (dreamcs.mesh.parts): the grouping, the differentiable share, and that
the geometric scorer's figure is the same number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from dreamcs.mesh.parts import detached_area_share, detached_faces


def _body_and_floater(gap: float = 0.6, r: float = 0.15) -> tuple[trimesh.Trimesh, int]:
    body = trimesh.creation.icosphere(3, radius=1.0)
    bit = trimesh.creation.icosphere(2, radius=r)
    bit.apply_translation([1.0 + gap, 0.0, 0.0])
    return trimesh.util.concatenate([body, bit]), len(body.faces)


def test_a_small_part_away_from_the_body_is_a_floater_and_nothing_else_is():
    m, n_body = _body_and_floater()
    mask = detached_faces(m.vertices, m.faces)
    assert not mask[:n_body].any() and mask[n_body:].all()
    # the same at any scale and position (measured in the [-1, 1] cube)
    assert np.array_equal(detached_faces(m.vertices * 37.0 + 5.0, m.faces), mask)


@pytest.mark.parametrize("case", ["touching", "large", "one"])
def test_touching_pieces_large_parts_and_one_body_have_no_floater(case):
    if case == "touching":  # an unwelded CAD model: its pieces meet
        a, b = trimesh.creation.box((1, 1, 1)), trimesh.creation.box((1, 1, 1))
        b.apply_translation([1.0, 0.0, 0.0])
        m = trimesh.util.concatenate([a, b])
    elif case == "large":  # two large separate parts (a car and its wheel): over 10% of the area each
        a, b = trimesh.creation.icosphere(2, radius=1.0), trimesh.creation.icosphere(2, radius=0.6)
        b.apply_translation([2.5, 0.0, 0.0])
        m = trimesh.util.concatenate([a, b])
    else:
        m = trimesh.creation.torus(1.0, 0.3)
    assert not detached_faces(m.vertices, m.faces).any()
    v = torch.tensor(m.vertices, requires_grad=True)
    share = detached_area_share(v, torch.tensor(m.faces))
    share.backward()
    assert float(share.detach()) == 0.0 and float(v.grad.abs().sum()) == 0.0


def test_the_share_is_the_floaters_area_and_its_gradient_shrinks_them():
    m, n_body = _body_and_floater()
    v = torch.tensor(m.vertices, requires_grad=True)
    f = torch.tensor(m.faces)
    share = detached_area_share(v, f)
    expect = m.area_faces[n_body:].sum() / m.area
    assert float(share.detach()) == pytest.approx(expect, rel=1e-9)
    share.backward()
    n_vb = len(trimesh.creation.icosphere(3).vertices)
    g = v.grad.norm(dim=1)
    assert float(g[n_vb:].min()) > 10 * float(g[:n_vb].max())  # the floater moves most
    with torch.no_grad():  # one step down the gradient: the floater's area shrinks
        after = trimesh.Trimesh((v - 5.0 * v.grad).numpy(), m.faces, process=False)
    assert after.area_faces[n_body:].sum() < m.area_faces[n_body:].sum()


def test_the_scorer_figure_is_the_same_share():
    from dreamcs.data.scorers.figures import surface_v2
    from dreamcs.mesh import normalize

    m, _ = _body_and_floater(gap=0.3, r=0.1)
    v = torch.tensor(normalize(m).vertices)
    assert surface_v2(normalize(m))["parts_far_small"] == pytest.approx(
        float(detached_area_share(v, torch.tensor(m.faces))), rel=1e-9)


def test_an_empty_mesh_has_no_floater():
    assert detached_faces(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)).shape == (0,)
    assert float(detached_area_share(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))) == 0.0
