"""GA's protocol guard: ``evaluate score --ga-reward`` warns (on the console and in table.json) when
the GA evaluator is the RewardCS that guided a run: the same folder, a copy of its weights, a
checkpoint named by the recipe itself rather than ``--reward``, or a stage's config; and stays
silent for a separately trained model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import trimesh
import yaml

from dreamcs.evaluate.ga import ga_warning, guiding_checkpoints, same_as_guidance
from dreamcs.evaluate.score import ScoreConfig, score_studies
from dreamcs.utils import append_jsonl


def _reward(folder, seed):
    from dreamcs.reward import RewardCS, preset

    torch.manual_seed(seed)
    return RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32")).save_pretrained(folder)


@pytest.fixture(scope="module")
def rewards(tmp_path_factory):
    root = tmp_path_factory.mktemp("rewards")
    return _reward(root / "guide", 1), _reward(root / "separate", 2)


def _study(root, reward=None, config_reward=None, stage_reward=None, n=2):
    """A study of ``n`` box runs; guidance named by the manifest, the run's config or a stage's config."""
    for i in range(n):
        run = root / "runs" / f"r{i}-s0"
        run.mkdir(parents=True)
        trimesh.creation.box().export(run / "final.obj")
        (run / "config.yaml").write_text(yaml.safe_dump({"prompt": "a box", "reward": {"checkpoint": config_reward}}))
        if stage_reward:
            (run / "refine").mkdir()
            (run / "refine" / "config.yaml").write_text(yaml.safe_dump({"reward": {"checkpoint": stage_reward}}))
        append_jsonl(root / "manifest.jsonl", {"run": f"runs/r{i}-s0", "prompt": "a box", "seed": i,
                                               "variant": "+RewardCS" if reward else "baseline", "reward": reward})
    return root


def _jobs(*studies):
    from dreamcs.evaluate.study import read_manifest

    return [(s, r) for s in studies for r in read_manifest(s)]


def test_same_folder_copy_recipe_and_stage_are_caught(rewards, tmp_path):
    guide, separate = map(str, rewards)
    copy = tmp_path / "copy-of-guide"
    shutil.copytree(guide, copy)
    by_flag = _study(tmp_path / "flag", reward=guide)
    by_recipe = _study(tmp_path / "recipe", config_reward=guide)
    by_stage = _study(tmp_path / "stage", stage_reward=guide)
    baseline = _study(tmp_path / "base")
    jobs = _jobs(by_flag, by_recipe, by_stage, baseline)
    assert guiding_checkpoints(by_stage / "runs" / "r0-s0", jobs[4][1]) == [guide]
    hits = same_as_guidance(guide, jobs)
    assert len(hits) == 6 and not any(h.startswith(str(baseline)) for h in hits)
    assert same_as_guidance(str(copy), jobs) == hits  # other folder, same weights
    assert same_as_guidance(separate, jobs) == []
    msg = ga_warning(guide, hits, len(jobs))
    assert "6 of 8 runs" in msg and "and 3 more" in msg and "trained" in msg
    assert ga_warning(separate, [], len(jobs)) is None
    with pytest.raises(FileNotFoundError, match="no RewardCS model here"):
        same_as_guidance(str(tmp_path / "nowhere"), jobs)


def test_embedded_guidance_scored_by_embedded(tmp_path):
    study = _study(tmp_path / "emb", reward="embedded", n=1)
    assert same_as_guidance("embedded", _jobs(study)) == [f"{study}/runs/r0-s0"]


def test_score_records_the_warning(rewards, tmp_path):
    guide, separate = map(str, rewards)
    study = _study(tmp_path / "s", reward=guide)
    logs: list[str] = []
    cfg = ScoreConfig(ga_reward=guide, n_patches=16, points=256, views=2, resolution=32)
    res = score_studies([study], tmp_path / "eval", cfg, log=logs.append, sheet=False)
    assert res["ga_warning"] and any(line.startswith("warning: GA is scored by") for line in logs)
    assert "2 of 2 runs" in json.loads((tmp_path / "eval" / "table.json").read_text())["ga_warning"]
    assert all(isinstance(a["ga"], float) for a in res["assets"])  # warned, still scored
    res = score_studies([study], tmp_path / "eval2", ScoreConfig(ga_reward=separate, n_patches=16, points=256),
                        log=logs.append, sheet=False)
    assert res["ga_warning"] is None
    assert json.loads((tmp_path / "eval2" / "table.json").read_text())["ga_warning"] is None
