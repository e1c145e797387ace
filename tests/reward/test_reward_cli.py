"""`dreamcs reward ...` end to end on the synthetic dataset (the dataset reader is patched in)."""

from __future__ import annotations

import json

import pytest
from reward_helpers import SyntheticPrefDataset, mesh_core
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.commands import reward as reward_cmd

runner = CliRunner()
TINY = ["--preset", "tiny", "model.text_encoder=hash:16", "model.faces_per_patch=8", "progress=false",
        "steps=4", "batch_size=6", "warmup_steps=1", "log_every=1", "checkpoint_every=2"]


@pytest.fixture
def fake_dataset(monkeypatch):
    seen = []

    def load(root, split):
        seen.append((str(root), split))
        return SyntheticPrefDataset(n_pos=5, n_neg=6, seed=0 if split == "train" else 1)

    monkeypatch.setattr(reward_cmd, "_dataset", load)
    return seen


def test_train_eval_resume(tmp_path, fake_dataset):
    run = tmp_path / "run"
    r = runner.invoke(app, ["reward", "train", "--data", str(tmp_path / "ds"), "--out", str(run), *TINY])
    assert r.exit_code == 0, r.output
    assert (run / "model.safetensors").is_file() and (run / "config.yaml").read_text().count("hash:16") == 1
    r = runner.invoke(app, ["reward", "train", "--data", str(tmp_path / "ds"), "--out", str(run), "--resume", *TINY])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reward", "eval", "--ckpt", str(run), "--data", str(tmp_path / "ds")])
    assert r.exit_code == 0, r.output
    assert fake_dataset[-1][1] == "test"
    metrics = json.loads((run / "eval_test" / "eval.json").read_text())
    assert metrics["n"] == 11 and "roc_auc" in r.output
    assert (run / "eval_test" / "embeddings.png").is_file()


def test_train_on_two_datasets_as_one(tmp_path, fake_dataset):
    run = tmp_path / "run"
    r = runner.invoke(app, ["reward", "train", "--data", str(tmp_path / "a"), "--data", str(tmp_path / "b"),
                            "--out", str(run), *TINY])
    assert r.exit_code == 0, r.output
    assert fake_dataset == [(str(tmp_path / "a"), "train"), (str(tmp_path / "b"), "train")]
    assert (run / "model.safetensors").is_file()


def test_bad_override_and_missing_ckpt(tmp_path, fake_dataset):
    r = runner.invoke(app, ["reward", "train", "--data", "x", "--out", str(tmp_path / "r"), "nonsense_key=3"])
    assert r.exit_code == 2 and "nonsense_key" in r.output
    r = runner.invoke(app, ["reward", "train", "--data", "x", "--out", str(tmp_path / "r"), "loss_type=hinge"])
    assert r.exit_code == 2 and "loss_type" in r.output
    r = runner.invoke(app, ["reward", "eval", "--ckpt", str(tmp_path / "none"), "--data", "x"])
    assert r.exit_code == 2 and "config.yaml" in r.output
    r = runner.invoke(app, ["reward", "score", "--ckpt", str(tmp_path), str(tmp_path / "no.obj"), "a chair"])
    assert r.exit_code == 2 and "no.obj" in r.output


def test_theory_command(tmp_path, monkeypatch):
    import dreamcs.reward.theory as th

    monkeypatch.setattr(th.TheoryConfig, "__init__", _small_theory_init(th.TheoryConfig.__init__))
    r = runner.invoke(app, ["reward", "theory", "--out", str(tmp_path), "--trials", "4"])
    assert r.exit_code == 0, r.output
    assert "slope" in r.output and (tmp_path / "theory.png").is_file()
    assert len(json.loads((tmp_path / "theory.json").read_text())["rows"]) == 3


def _small_theory_init(orig):
    def init(self, *a, **k):
        orig(self, *a, **k)
        self.sizes = [16, 32, 64]

    return init


def test_score_and_pretrain_on_sample_meshes(tmp_path, sample_dir, fake_dataset):
    mesh_core()
    run = tmp_path / "run"
    args = ["--preset", "tiny", "model.text_encoder=hash:16", "progress=false", "steps=2", "batch_size=2",
            "warmup_steps=1", "decoder_dim=32"]
    r = runner.invoke(app, ["reward", "pretrain", "--meshes", str(sample_dir), "--out", str(run), *args])
    assert r.exit_code == 0, r.output
    from dreamcs.reward import RewardCS, preset

    RewardCS(preset("tiny", text_encoder="hash:16")).save_pretrained(tmp_path / "m")
    mesh = sorted(sample_dir.glob("*.obj"))[0]
    r = runner.invoke(app, ["reward", "score", "--ckpt", str(tmp_path / "m"), str(mesh), "a chair"])
    assert r.exit_code == 0, r.output
    float(r.output.strip().splitlines()[-1])
