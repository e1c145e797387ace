"""The held-out real-mesh validation set: object list, orientation, items, labels, determinism; and
the teacher evaluation on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dreamcs.data.teacher import roc_auc, summarize
from dreamcs.data.validation import (
    HELD_OUT_OBJECTS,
    UP_AXIS,
    eval_plan,
    heldout_objects,
    is_held_out,
    read_eval_manifest,
    tuning_objects,
    write_eval_set,
)

TINY = dict(n_patches=8, faces_per_patch=16, shard_size=8, max_faces=1500)


def test_held_out_objects_are_not_in_the_embedded_set():
    tuning = {o.id for o in tuning_objects()}
    assert len(HELD_OUT_OBJECTS) == 47 and len(tuning) >= 60
    assert not tuning & {o.rsplit("/", 1)[1].rsplit(".", 1)[0] for o in HELD_OUT_OBJECTS}
    assert is_held_out("airplane") and is_held_out("/x/greg_turk_ply/teapot.ply") and is_held_out("threestudio_shapes/nascar.obj")
    assert not is_held_out("teddy") and not any(is_held_out(t) for t in tuning)
    assert set(UP_AXIS) <= set(HELD_OUT_OBJECTS)


def test_plan_has_every_kind_once_per_object_and_wrong_prompts_differ():
    objs = tuning_objects()[:6]
    plan = eval_plan(objs, defects=["holes", "noise"], seed=0)
    assert plan == eval_plan(objs, defects=["holes", "noise"], seed=0)
    assert len(plan) == 6 * 4 and len({p["id"] for p in plan}) == len(plan)
    for p in plan:
        assert (p["label"] == 1) == (p["defect"] is None)
        assert (p["prompt"] != p["object"].caption) == (p["defect"] == "wrong_prompt")
        if p["defect"] in ("holes", "noise"):
            assert 0.0 < p["severity"] < 1.0
    sev = {p["severity"] for p in eval_plan(tuning_objects(), defects=["holes"]) if p["defect"] == "holes"}
    assert len(sev) > 1  # graded, not one level


def test_heldout_objects_load_and_z_up_ones_are_turned(shared_data):
    from dreamcs.mesh import load_mesh, normalize

    objs = {o.id: o for o in heldout_objects(shared_data / "meshes")}
    assert len(objs) == 47 and objs["teapot"].up == "z" and objs["cow"].up == "y"
    assert objs["mug"].caption == "a mug"
    # MANIFEST calls cabin.obj "a small cabin"; it is a cabinet: its top is flat (no roof), a box's lid
    cab = normalize(load_mesh(objs["cabin"].path))
    up = cab.face_normals[:, 1] > 0.95
    ext = np.ptp(cab.vertices, axis=0)
    assert objs["cabin"].caption == "a cabinet" and cab.area_faces[up].sum() > 0.8 * ext[0] * ext[2]
    # a ketchup bottle stands: after the turn its long side is y (raw it lies along z)
    raw = normalize(load_mesh(objs["ketchup"].path))
    turned = normalize(load_mesh(objs["ketchup"].path), up="z")
    assert np.argmax(np.ptp(raw.vertices, axis=0)) == 2 and np.argmax(np.ptp(turned.vertices, axis=0)) == 1


def test_missing_meshes_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANIFEST.csv"):
        heldout_objects(tmp_path)


def test_write_eval_set_builds_a_labelled_test_only_dataset(shared_data, tmp_path):
    from dreamcs.data import MeshPrefDataset
    from dreamcs.data.store import read_table

    objs = [o for o in heldout_objects(shared_data / "meshes") if o.id in ("mug", "ketchup")]
    kw = dict(name="heldout", defects=["holes", "floaters"], progress=False, **TINY)
    st = write_eval_set(tmp_path / "a", objs, **kw)
    assert st["items"] == 8 and st["failures"] == 0 and st["preferred"] == 2 and st["dispreferred"] == 6
    rows = read_table(tmp_path / "a")
    assert {r["split"] for r in rows} == {"test"} and all(r["provenance"].startswith("given:") for r in rows)
    assert len(MeshPrefDataset(tmp_path / "a", split="test")) == 8
    man = read_eval_manifest(tmp_path / "a")
    assert {m["defect"] for m in man} == {None, "holes", "floaters", "wrong_prompt"}
    write_eval_set(tmp_path / "b", objs, **kw)  # deterministic: the same meshes and table
    for m in man:
        assert open(m["path"], "rb").read() == open(m["path"].replace("/a/", "/b/"), "rb").read(), m["id"]
    strip = [{k: v for k, v in r.items() if k != "details"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "details"} for r in read_table(tmp_path / "b")]


def test_roc_auc_and_summary():
    assert roc_auc([3, 4], [1, 2]) == 1.0 and roc_auc([1], [2]) == 0.0 and roc_auc([1, 2], [1, 2]) == 0.5
    assert roc_auc([], [1]) is None
    scored = [{"kind": "clean", "overall": 4.5}, {"kind": "clean", "overall": 3.0},
              {"kind": "holes", "overall": 2.0}, {"kind": "noise", "overall": 4.0}]
    s = summarize(scored)
    assert s["per_kind"]["holes"]["auc"] == 1.0 and s["per_kind"]["noise"]["auc"] == 0.5 and s["auc"] == 0.75
    assert s["per_kind"]["clean"]["label_agreement"] == 0.5 and s["per_kind"]["noise"]["label_agreement"] == 0.0
    json.dumps(s)


def test_the_held_out_set_has_a_development_half_and_a_report_half():
    from dreamcs.data.teacher import half_aucs
    from dreamcs.data.validation import held_out_ids, heldout_half

    halves = {o: heldout_half(o) for o in held_out_ids()}
    assert set(halves.values()) == {"A", "B"} and 20 <= sum(h == "B" for h in halves.values()) <= 27
    assert heldout_half("airplane") == "A" and heldout_half("teapot") == "B"  # fixed: reports stay comparable
    assert heldout_half("teapot~holes") == "B" and heldout_half("licensed/animal") is None
    scored = [{"id": "airplane", "label": 1, "overall": 5.0}, {"id": "airplane~holes", "label": 0, "overall": 2.0},
              {"id": "teapot", "label": 1, "overall": 1.0}, {"id": "teapot~noise", "label": 0, "overall": 3.0}]
    assert half_aucs(scored) == {"A": 1.0, "B": 0.0}
    assert half_aucs([{**r, "id": "x" + r["id"]} for r in scored]) == {}
