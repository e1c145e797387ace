"""The v2 figures of the geometric scorer: floaters are small far parts (large separate parts are
fine), slits are thin boundary loops (round rims are not), thin is a sheet seen from both sides; and
teacher_eval on a small evaluation set."""

from __future__ import annotations

import numpy as np
import trimesh

from dreamcs.data.scorers.figures import surface_v2
from dreamcs.mesh import normalize


def _cat(*ms):
    return normalize(trimesh.util.concatenate(ms))


def test_floaters_are_small_far_parts_only():
    big = trimesh.creation.box(extents=(1, 1, 1))
    twin = _cat(big, trimesh.creation.box(extents=(1, 1, 1)).apply_translation((2, 0, 0)))
    assert surface_v2(twin)["parts_far_small"] == 0.0  # two equal objects side by side
    blob = _cat(big, trimesh.creation.icosphere(1, radius=0.08).apply_translation((1.2, 0.8, 0)))
    assert surface_v2(blob)["parts_far_small"] > 0.005
    touching = _cat(big, trimesh.creation.box(extents=(0.2, 0.2, 0.2)).apply_translation((0.6, 0, 0)))
    assert surface_v2(touching)["parts_far_small"] == 0.0


def test_slits_see_thin_loops_not_round_rims():
    sphere = trimesh.creation.icosphere(4)
    c = sphere.triangles_center
    round_hole = trimesh.Trimesh(sphere.vertices, sphere.faces[c[:, 1] < 0.8])
    slit = trimesh.Trimesh(sphere.vertices, sphere.faces[~((np.abs(c[:, 0]) < 0.03) & (c[:, 1] > 0))])
    assert surface_v2(normalize(round_hole))["slits"] == 0.0
    assert surface_v2(normalize(slit))["slits"] > 0.5


def test_thin_sees_a_collapsed_shell():
    box = trimesh.creation.box(extents=(1, 1, 1))
    sheet = trimesh.creation.box(extents=(1, 1, 0.005))
    assert surface_v2(normalize(box))["thin"] < 0.05
    assert surface_v2(normalize(sheet))["thin"] > 0.8


def test_teacher_eval_on_a_tiny_set(tmp_path, sample_dir):
    from dreamcs.data.scorers.geometric import GeometricScorerConfig
    from dreamcs.data.teacher import teacher_eval
    from dreamcs.data.validation import EvalObject, write_eval_set

    objs = [EvalObject("chair", str(sample_dir / "blockmesh_test__s_chair_modern.obj"), "a modern chair"),
            EvalObject("sphere", str(sample_dir / "blockmesh_test__s_primitive_sphere.obj"), "a sphere")]
    write_eval_set(tmp_path / "v", objs, name="t", defects=["floaters", "noise"], progress=False,
                   n_patches=8, faces_per_patch=16, max_faces=1500)
    res = teacher_eval(tmp_path / "v", GeometricScorerConfig(text_encoder="hash"), out=tmp_path / "r.json")
    assert res["n_items"] == 8 and set(res["per_kind"]) == {"clean", "floaters", "noise", "wrong_prompt"}
    assert res["per_kind"]["floaters"]["auc"] == 1.0 and res["per_kind"]["noise"]["auc"] == 1.0
    assert (tmp_path / "r.json").is_file()
