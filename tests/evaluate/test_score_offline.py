"""Scoring without any model (geometry and Janus only) on hand-made study folders: unreadable
meshes are recorded, not averaged; the Janus benchmark without ground truth."""

from __future__ import annotations

import json

import numpy as np
import trimesh

from dreamcs.evaluate.janus import janus_benchmark
from dreamcs.evaluate.score import ScoreConfig, score_studies
from dreamcs.utils import append_jsonl


def _study(root, variant, meshes):
    for i, (prompt, mesh) in enumerate(meshes):
        run = root / "runs" / f"r{i}-s0"
        run.mkdir(parents=True)
        if mesh is None:
            (run / "final.obj").write_text("# nothing was generated\n")
        else:
            mesh.export(run / "final.obj")
        append_jsonl(root / "manifest.jsonl", {"run": f"runs/r{i}-s0", "prompt": prompt, "seed": 0, "variant": variant})
    return root


def test_geometry_only_scoring_records_broken_meshes(tmp_path):
    ball = trimesh.creation.icosphere(subdivisions=2)
    box = trimesh.creation.box()
    a = _study(tmp_path / "a", "baseline", [("a ball", ball), ("a box", None)])
    b = _study(tmp_path / "b", "+RewardCS", [("a ball", box), ("a box", box)])
    res = score_studies([a, b], tmp_path / "eval", ScoreConfig(views=2, resolution=32, points=256), log=lambda s: None)
    by = {(r["variant"], r["prompt"]): r for r in res["assets"]}
    assert "empty file" in by[("baseline", "a box")]["error"] or "no faces" in by[("baseline", "a box")]["error"]
    assert res["table"]["baseline"]["watertight"]["n"] == 1 and res["table"]["+RewardCS"]["watertight"]["n"] == 2
    assert by[("+RewardCS", "a box")]["holes"] == 0 and by[("+RewardCS", "a box")]["janus_score"] > 0.9  # a box is its own mirror
    data = json.loads((tmp_path / "eval" / "table.json").read_text())
    assert data["n_assets"] == 4 and len(data["errors"]) == 1
    assert not (tmp_path / "eval" / "contact_sheet.png").is_file()  # no turntables, no views rendered


def test_janus_benchmark_without_ground_truth(tmp_path):
    ball = trimesh.creation.icosphere(subdivisions=2)
    cone = trimesh.creation.cone(radius=0.3, height=0.8).apply_translation([0, 0, 0.8])
    nosed = trimesh.util.concatenate([ball, cone])
    a = _study(tmp_path / "a", "baseline", [("a head", nosed)])
    two = trimesh.util.concatenate([nosed, cone.copy().apply_transform(np.diag([1.0, 1.0, -1.0, 1.0]))])
    two.invert()  # winding does not matter to the heuristic
    b = _study(tmp_path / "b", "+RewardCS", [("a head", two)])
    res = janus_benchmark(["a head", "not generated"], [a, b], tmp_path / "j", points=512, log=lambda s: None)
    assert res["table"]["+RewardCS"]["janus_score"]["mean"] > res["table"]["baseline"]["janus_score"]["mean"] + 0.3
    assert "chamfer" not in res["table"]["baseline"]  # no ground truth given
    assert "| +RewardCS |" in (tmp_path / "j" / "janus.md").read_text()
    assert list(json.loads((tmp_path / "j" / "janus.json").read_text())["per_prompt"]) == ["a head"]
