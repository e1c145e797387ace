"""Scoring without any model (geometry and Janus only) on hand-made study folders: unreadable
meshes are recorded, not averaged; the Janus benchmark without ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
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


def test_image_reward_column_from_a_2d_reward_folder(tmp_path):
    """IR: a (tiny, random) ImageReward-shaped model scores each asset's turntable views; the value
    equals the model's mean over those views, and the table gets the IR column."""
    import torch

    from dreamcs.evaluate.score import AssetScorer
    from dreamcs.generate.reward2d.blip_reward import load_blip_reward, preprocess
    from dreamcs.generate.reward2d.tiny import save_tiny_blip_reward

    folder = save_tiny_blip_reward(tmp_path / "ir")
    a = _study(tmp_path / "a", "baseline", [("a ball", trimesh.creation.icosphere(subdivisions=2))])
    cfg = ScoreConfig(views=2, resolution=32, points=256, image_reward=str(folder))
    res = score_studies([a], tmp_path / "eval", cfg, log=lambda s: None)
    ir = res["assets"][0]["image_reward"]
    assert np.isfinite(ir) and res["table"]["baseline"]["image_reward"]["n"] == 1
    # the same number by hand from the rendered views
    scorer = AssetScorer(cfg)
    from dreamcs.mesh import load_mesh, normalize

    views = scorer.views(normalize(load_mesh(a / "runs" / "r0-s0" / "final.obj")))
    model, tok = load_blip_reward(folder)
    b = tok(["a ball"] * len(views), padding="max_length", truncation=True, max_length=model.config.max_length, return_tensors="pt")
    with torch.no_grad():
        want = float(model(preprocess(torch.from_numpy(views).float() / 255.0, model.config.image_size), b.input_ids, b.attention_mask).mean())
    assert ir == pytest.approx(want, rel=1e-5)
    assert "IR" in (tmp_path / "eval" / "table.md").read_text()
