"""`dreamcs data teacher-figures`: the teacher's per-figure reading of a built set, resumable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import trimesh

import dreamcs.data.teacher_figures as tf
from dreamcs.data.dataset import MeshPrefDataset
from dreamcs.data.scorers.geometric import GeometricScorer
from dreamcs.data.store import read_table
from dreamcs.utils import read_jsonl


def test_ramps_read_what_the_scorer_penalises():
    scorer = GeometricScorer()
    sphere = trimesh.creation.icosphere(4)
    torn = sphere.copy()
    rng = np.random.default_rng(0)
    torn.update_faces(rng.random(len(torn.faces)) > 0.15)  # faces torn out: ragged holes
    clean, damaged = tf.penalty_ramps(scorer.figures(sphere)), tf.penalty_ramps(scorer.figures(torn))
    # the pinned 12 (a trained head's order) first, then what the scorer weighs beyond them (v5's three)
    assert list(clean)[:12] == tf.TEACHER_FIGURES and len(tf.TEACHER_FIGURES) == 12
    assert list(clean)[12:] == ["self_crossing", "normal_anisotropy", "soft_share"]
    assert all(0.0 <= v <= 1.0 for v in [*clean.values(), *damaged.values()])
    assert clean["ragged_holes"] == 0.0 and damaged["ragged_holes"] > 0.5


def test_a_figure_the_scorer_stops_weighing_keeps_its_place_in_the_head():
    """v4 reports sag without weighing it: heads trained on the 12 v3 figures still load, their
    targets still carry sag, and a new reward weighs it 0 (the others as the scorer does)."""
    from dreamcs.data.scorers.geometric import GeometricScorerConfig
    from dreamcs.reward.model import _teacher_weights

    cfg = GeometricScorerConfig()
    assert "sag" not in tf.teacher_figure_names(cfg) and tf.TEACHER_FIGURES[-1] == "sag"
    base = trimesh.creation.cylinder(0.9, 0.3).apply_translation((0, 0, 0.15))
    neck = trimesh.creation.cylinder(0.2, 1.5).apply_translation((0, 0, 1.05))
    bottle = trimesh.util.concatenate([base, neck]).apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0)))
    ramps = tf.penalty_ramps(GeometricScorer().figures(bottle))  # z-up -> y-up: wide at the bottom
    assert ramps["sag"] == 1.0  # still read (the bottle's sag is ~2)
    weights, groups = _teacher_weights(12)
    ramp_cfg = {**cfg.realism, **cfg.fidelity}
    assert weights.tolist() == [ramp_cfg[k][2] for k in tf.TEACHER_FIGURES]
    assert weights[-1] == 0.0 and groups[-1] == 1 and groups[0] == 0


def test_every_item_gets_targets_and_a_rerun_resumes(built_copy, monkeypatch):
    out = tf.write_teacher_figures(built_copy, workers=1, chunk=3)
    ids = {str(r["id"]) for r in read_table(built_copy) if r.get("mesh_path")}
    figs = tf.read_teacher_figures(built_copy)
    assert out.name == tf.FILENAME and set(figs) == ids
    assert all(v.shape == (12,) and np.all((v >= 0) & (v <= 1)) for v in figs.values())
    # what the trainer sees: each labelled item carries its row
    ds = MeshPrefDataset(built_copy, split="all")
    item = ds[0]
    assert np.allclose(item["teacher_figures"].numpy(), figs[item["id"]])
    # a killed job keeps its finished chunks: a rerun scores only what is missing
    partial = built_copy / "teacher_figures.partial.jsonl"
    lines = partial.read_text().splitlines()
    partial.write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])  # two rows and a torn third
    (built_copy / tf.FILENAME).unlink()
    scored = []
    real = tf._score_chunk
    monkeypatch.setattr(tf, "_score_chunk", lambda root, rows: scored.extend(rows) or real(root, rows))
    tf.write_teacher_figures(built_copy, workers=1, chunk=3)
    assert len(scored) == len(ids) - 2
    assert set(tf.read_teacher_figures(built_copy)) == ids


def test_a_broken_mesh_is_named_and_skipped(built_copy):
    rows = [r for r in read_table(built_copy) if r.get("mesh_path")]
    bad = built_copy / rows[0]["mesh_path"]
    bad.write_bytes(b"not a mesh")
    tf.write_teacher_figures(built_copy)
    fails = read_jsonl(built_copy / "teacher_figures.failures.jsonl")
    assert [f["id"] for f in fails] == [str(rows[0]["id"])] and rows[0]["mesh_path"] in fails[0]["error"]
    assert str(rows[0]["id"]) not in tf.read_teacher_figures(built_copy)


def test_a_file_with_other_figures_is_refused(built_copy):
    import pandas as pd

    pd.DataFrame({"id": ["a"], "jagged": [0.0]}).to_parquet(built_copy / tf.FILENAME)
    with pytest.raises(ValueError, match="ragged_boundary"):
        tf.read_teacher_figures(built_copy)
    assert tf.read_teacher_figures(built_copy, names=["jagged"]) == {"a": pytest.approx(np.zeros(1))}


def test_a_dataset_serves_the_mesh_only_figures_when_its_parquet_has_them(built_copy):
    """The ramps of the figures no head predicts (scorer v5's) ride beside the twelve targets; a
    parquet written before v5 has no such columns, and its items simply carry none."""
    import pandas as pd

    from dreamcs.reward.train import collate

    tf.write_teacher_figures(built_copy, workers=1)
    table = pd.read_parquet(built_copy / tf.FILENAME)
    ds = MeshPrefDataset(built_copy, split="all")
    item = ds[0]
    assert item["mesh_figures"].shape == (3,)
    row = table.set_index("id").loc[item["id"], tf.MESH_ONLY_FIGURES].to_numpy(np.float32)
    assert np.allclose(item["mesh_figures"].numpy(), row)
    assert collate([ds[0], ds[1]])["mesh_figures"].shape == (2, 3)
    table.drop(columns=tf.MESH_ONLY_FIGURES).to_parquet(built_copy / tf.FILENAME)  # as written before v5
    old = MeshPrefDataset(built_copy, split="all")
    assert "mesh_figures" not in old[0] and old[0]["teacher_figures"].shape == (12,)
    assert collate([old[0], old[1]])["mesh_figures"] is None


def test_a_rerun_after_a_scorer_change_scores_the_old_rows_again(built_copy, monkeypatch):
    """Rows a partial file holds from another scorer version (here: without v5's soft_share) are not
    resumed: the parquet must not mix two versions' figures."""
    import json

    tf.write_teacher_figures(built_copy, workers=1)
    partial = built_copy / "teacher_figures.partial.jsonl"
    rows = [json.loads(line) for line in partial.read_text().splitlines()]
    old = [{k: v for k, v in r.items() if k != "soft_share"} for r in rows]
    partial.write_text("".join(json.dumps(r) + "\n" for r in old[:-1] + rows[-1:]))  # all but the last as v4 wrote them
    scored = []
    real = tf._score_chunk
    monkeypatch.setattr(tf, "_score_chunk", lambda root, r: scored.extend(r) or real(root, r))
    tf.write_teacher_figures(built_copy, workers=1)
    assert len(scored) == len(rows) - 1
    table = pd.read_parquet(built_copy / tf.FILENAME)
    assert len(table) == len(rows) and table["soft_share"].notna().all()
