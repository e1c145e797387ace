"""VisionReward (VR): the shipped checklist, the linear model with its gates, the whole scoring path
on a tiny random LLaVA built from configs (batched, left-padded, last-logit-only forward checked
against one unpadded forward per question), its errors, device placement, and the VR column of
``evaluate score`` through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from typer.testing import CliRunner

from dreamcs.config import ConfigError
from dreamcs.device_audit import misplaced_tensors
from dreamcs.evaluate.vision_reward import (
    SHIPPED_CHECKLIST,
    VisionReward,
    checklist_score,
    load_checklist,
    load_vision_reward,
)
from dreamcs.utils import append_jsonl

PROMPT = "a wooden chair"


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    from dreamcs.evaluate.tiny_vlm import save_tiny_vlm

    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "vlm", seed=7, extra_words=PROMPT.split())


@pytest.fixture(scope="module")
def views():
    # seed 7 + these views: 56 % yes, every |log P(yes) - log P(no)| > 0.16 (no answer near a tie)
    return np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)


def test_shipped_checklist_is_visionreward_images():
    c = load_checklist()
    assert c.name == "visionreward-image" and len(c.questions) == 30
    gates = [q.gate for q in c.questions if q.gate]
    assert gates == ["body", "face", "hands"]
    weights = [c.alignment.weight] + [q.weight for q in c.questions if not q.gate]
    assert len(weights) == 28  # the source's weight_select.json: 28 coefficients
    assert sum(weights) == pytest.approx(4.891194174010989, abs=1e-12)  # sum(coef) of the source and c.alignment.weight == pytest.approx(2.35429, abs=1e-5)
    assert sum(q.gated_by == "body" for q in c.questions) == 5 and sum(q.gated_by == "face" for q in c.questions) == 2
    assert (SHIPPED_CHECKLIST.parent / "LICENSE-VisionReward.txt").read_text().startswith(" " * 33 + "Apache License")


def test_checklist_score_gates_and_weights():
    # questions: 0 gate, 1 plain (w 2), 2 gated by 0 (w 3); alignment weight 10, intercept 1
    w, g = torch.tensor([0.0, 2.0, 3.0]), torch.tensor([-1, -1, 0])
    answers = torch.tensor([[1.0, 1.0, -1.0],     # gate open: 2 - 3
                            [-1.0, -1.0, 1.0],    # gate shut: the gated yes counts 0
                            [0.0, 0.5, 1.0]])     # soft: gate half open
    got = checklist_score(answers, torch.tensor([0.5, 0.0, 0.1]), w, g, 10.0, 1.0)
    assert got.tolist() == pytest.approx([2 - 3 + 5 + 1, -2 + 0 + 0 + 1, 1 + 1.5 + 1 + 1])


def _by_hand(folder, views, prompt):
    """VR the slow way: one unpadded forward per (view, question), full logits, the source's ±1
    answers and masks as a list, then the dot product with the 28 weights."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    yes, no = proc.tokenizer.convert_tokens_to_ids("yes"), proc.tokenizer.convert_tokens_to_ids("no")
    c = load_checklist()

    def logp(img, q):
        text = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                                        add_generation_prompt=True, tokenize=False)
        with torch.no_grad():
            out = model(**proc(images=[img], text=[text], return_tensors="pt")).logits[0, -1].log_softmax(-1)
        return float(out[yes]), float(out[no])

    scores, all_answers = [], []
    for v in views:
        img = Image.fromarray(v)
        ans = [1 if y > n else -1 for y, n in (logp(img, q.text) for q in c.questions)]
        gate_at = {q.gate: i for i, q in enumerate(c.questions) if q.gate}
        feats = [np.exp(logp(img, c.alignment.template.format(prompt=prompt))[0])]
        for q, a in zip(c.questions, ans, strict=True):
            if not q.gate:
                feats.append(a * (ans[gate_at[q.gated_by]] > 0 if q.gated_by else 1))
        weights = [c.alignment.weight] + [q.weight for q in c.questions if not q.gate]
        scores.append(float(np.dot(feats, weights)) + c.intercept)
        all_answers += ans
    return scores, all_answers


def test_score_matches_one_forward_per_question(vlm_dir, views):
    vr = load_vision_reward(str(vlm_dir), ["batch_size=7"])  # batches that straddle views and lengths
    got = vr.score_views(views, PROMPT)
    want, answers = _by_hand(vlm_dir, views, PROMPT)
    assert 0.2 < np.mean(np.array(answers) > 0) < 0.8  # the random model says yes and no: the test can fail
    assert got.tolist() == pytest.approx(want, abs=1e-4)
    assert vr.score(views, PROMPT) == pytest.approx(float(np.mean(want)), abs=1e-4)
    assert len(set(np.round(want, 4))) == 3  # the views differ


def test_soft_answers_and_prompt_template(vlm_dir, views):
    hard = load_vision_reward(str(vlm_dir)).score_views(views, PROMPT)
    soft = load_vision_reward(str(vlm_dir), ["answers=soft"]).score_views(views, PROMPT)
    assert not torch.allclose(hard, soft) and soft.abs().max() < 10
    # the same words through a plain template instead of the chat template: the same tokens, the same scores
    same = load_vision_reward(str(vlm_dir), ["prompt_template='<image> question: {question} short answer:'"])
    assert same.score_views(views, PROMPT).tolist() == pytest.approx(hard.tolist(), abs=1e-5)
    # another prompt changes only the alignment term
    other = load_vision_reward(str(vlm_dir)).score_views(views, "a human face")  # words the tokenizer knows
    assert not torch.allclose(other, hard)
    assert (other - hard).abs().max() <= load_checklist().alignment.weight + 1e-6


def test_folder_settings_and_own_checklist(vlm_dir, views, tmp_path):
    import shutil

    folder = tmp_path / "vr"
    shutil.copytree(vlm_dir, folder)
    (folder / "checklist.yaml").write_text(
        "name: two\nalignment: {template: 'Does this figure show \"{prompt}\"?', weight: 0.0}\nintercept: 0.5\n"
        "questions:\n  - {text: 'Is the image clear?', weight: 1.0}\n  - {text: 'Is the image rich?', weight: -1.0}\n")
    (folder / "vision_reward.yaml").write_text("answers: soft\n")
    vr = load_vision_reward(str(folder))
    assert vr.cfg.answers == "soft" and vr.checklist.name == "two"
    lp = vr.backbone.yes_no_log_probs([Image.fromarray(views[0])] * 2, ["Is the image clear?", "Is the image rich?"])
    a = torch.tanh((lp[:, 0] - lp[:, 1]) / 2)
    assert float(vr.score_views(views[:1], PROMPT)[0]) == pytest.approx(float(a[0] - a[1] + 0.5), abs=1e-5)


def test_clear_errors(vlm_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such VisionReward model folder"):
        load_vision_reward(str(tmp_path / "missing"))
    (tmp_path / "sat").mkdir()
    (tmp_path / "sat" / "model.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no config.json.*SwissArmyTransformer"):
        load_vision_reward(str(tmp_path / "sat"))
    with pytest.raises(ValueError, match="no single token for 'yes'"):
        load_vision_reward(str(vlm_dir), ["yes_words=[oui]"])
    with pytest.raises(ConfigError, match="'maybe', expected one of"):
        load_vision_reward(str(vlm_dir), ["answers=maybe"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("questions:\n  - {text: 'Is it?', weight: 1.0, gated_by: face}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not a VisionReward checklist: .*gated by 'face'"):
        load_vision_reward(str(vlm_dir), [f"checklist={bad}"])


def test_no_chat_template_needs_a_prompt_template(tmp_path, views):
    from dreamcs.evaluate.tiny_vlm import save_tiny_vlm

    folder = save_tiny_vlm(tmp_path / "plain", chat_template=False)
    with pytest.raises(ValueError, match="no chat template; set prompt_template"):
        load_vision_reward(str(folder))
    vr = load_vision_reward(str(folder), ["prompt_template='<image> question: {question} short answer:'"])
    assert np.isfinite(vr.score(views, PROMPT))


def test_follows_to_and_runs_in_bfloat16(vlm_dir, views):
    vr = load_vision_reward(str(vlm_dir))
    assert isinstance(vr, VisionReward)
    assert misplaced_tensors(vr.to("meta"), "meta") == []
    assert vr.weights.device.type == "meta" and vr.backbone.model.device.type == "meta"
    # pixel values follow the model's dtype: a bfloat16 model scores close to the float32 one
    full = load_vision_reward(str(vlm_dir)).score_views(views, PROMPT)
    half = load_vision_reward(str(vlm_dir), ["dtype=bfloat16"])
    assert next(half.backbone.model.parameters()).dtype == torch.bfloat16
    assert torch.isfinite(half.score_views(views, PROMPT)).all()
    assert (half.score_views(views, PROMPT) - full).abs().mean() < 1.5  # a few answers may flip near ties


def _study(root, meshes):
    for i, (prompt, mesh) in enumerate(meshes):
        run = root / "runs" / f"r{i}-s0"
        run.mkdir(parents=True)
        mesh.export(run / "final.obj")
        append_jsonl(root / "manifest.jsonl", {"run": f"runs/r{i}-s0", "prompt": prompt, "seed": 0, "variant": "baseline"})
    return root


def test_evaluate_score_vr_column(vlm_dir, tmp_path):
    from dreamcs.cli import app
    from dreamcs.evaluate.score import AssetScorer, ScoreConfig
    from dreamcs.mesh import load_mesh, normalize

    study = _study(tmp_path / "s", [(PROMPT, trimesh.creation.box()), ("a red car", trimesh.creation.icosphere(2))])
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["evaluate", "score", str(study), "--out", str(out), "--vision-reward", str(vlm_dir),
                                   "--vr-set", "batch_size=31", "--views", "2", "--resolution", "32"])
    assert res.exit_code == 0, res.output
    header = (out / "table.md").read_text().splitlines()[0]
    assert "| VR ↑ |" in header
    table = json.loads((out / "table.json").read_text())
    assert table["table"]["baseline"]["vision_reward"]["n"] == 2
    assert table["settings"]["vision_reward_overrides"] == ["batch_size=31"]
    rec = {json.loads(line)["prompt"]: json.loads(line) for line in (out / "assets.jsonl").read_text().splitlines()}
    # the asset's VR is the model's mean over the same rendered views
    scorer = AssetScorer(ScoreConfig(views=2, resolution=32))
    views = scorer.views(normalize(load_mesh(study / "runs" / "r0-s0" / "final.obj")))
    assert rec[PROMPT]["vision_reward"] == pytest.approx(load_vision_reward(str(vlm_dir)).score(views, PROMPT), abs=1e-5)
    # without VR the cache key is the one written before VR existed (old assets.jsonl stay valid)
    import dataclasses
    import hashlib

    d = dataclasses.asdict(ScoreConfig(views=2))
    for k in ("device", "vision_reward", "vision_reward_overrides"):
        d.pop(k)
    d["record_format"] = 2
    assert ScoreConfig(views=2).key() == hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    assert ScoreConfig(views=2, vision_reward="x").key() != ScoreConfig(views=2, vision_reward="x",
                                                                          vision_reward_overrides=["answers=soft"]).key()
    bad = CliRunner().invoke(app, ["evaluate", "score", str(study), "--out", str(tmp_path / "e2"),
                                   "--vision-reward", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "no such VisionReward model folder" in bad.output
