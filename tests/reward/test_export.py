"""Shipping: `reward export`, the `embedded` model in the CLI and in generation, the size budget."""

from __future__ import annotations

import pytest
import torch
from reward_helpers import random_batch, tiny_model
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.reward import RewardCS
from dreamcs.reward import export as export_mod
from dreamcs.reward import model as model_mod
from dreamcs.reward.export import export_model

runner = CliRunner()


def test_export_float16_loads_as_embedded(tmp_path, monkeypatch):
    model = tiny_model(seed=2).eval()
    model.mesh_encoder.set_feature_stats(torch.full((10,), 0.1), torch.full((10,), 1e-3))
    model.save_pretrained(tmp_path / "run")
    ship = tmp_path / "assets" / "reward"
    r = runner.invoke(app, ["reward", "export", "--ckpt", str(tmp_path / "run"), "--out", str(ship)])
    assert r.exit_code == 0, r.output
    size = (ship / "model.safetensors").stat().st_size
    assert f"{size:,} bytes in float16" in r.output and "parameters" in (ship / "README.md").read_text()
    from safetensors.torch import load_file

    w = load_file(str(ship / "model.safetensors"))
    assert not any("text_encoder" in k for k in w)
    assert w["embed_proj.weight"].dtype == torch.float16 and w["mesh_encoder.feature_std"].dtype == torch.float32
    monkeypatch.setattr(model_mod, "embedded_dir", lambda: ship)
    loaded = RewardCS.from_pretrained("embedded")
    f, c = random_batch(2)
    torch.testing.assert_close(loaded(f, c, ["a", "b"]).reward, model(f, c, ["a", "b"]).reward, atol=2e-2, rtol=1e-2)
    from dreamcs.generate.pipeline import resolve_reward_dir

    assert resolve_reward_dir("embedded") == ship


def test_export_keeps_the_figure_head_and_its_groups(tmp_path):
    from safetensors.torch import load_file

    model = tiny_model(seed=1, teacher_figures=12, figure_weight=0.5).eval()
    model.save_pretrained(tmp_path / "run")
    export_model(tmp_path / "run", tmp_path / "out")
    w = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert w["figure_groups"].dtype == torch.long and w["figure_head.1.weight"].dtype == torch.float16
    again = RewardCS.from_pretrained(tmp_path / "out")
    assert torch.equal(again.figure_groups, model.figure_groups) and again.config.figure_weight == 0.5


def test_export_refuses_oversized_weights(tmp_path, monkeypatch):
    tiny_model().save_pretrained(tmp_path / "run")
    monkeypatch.setattr(export_mod, "MAX_SHIPPED_BYTES", 1000)
    with pytest.raises(ValueError, match="MiB"):
        export_model(tmp_path / "run", tmp_path / "out", "float32")
    assert not (tmp_path / "out" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="dtype"):
        export_model(tmp_path / "run", tmp_path / "out", "int8")


def test_cli_and_generation_say_the_shipped_model_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(model_mod, "embedded_dir", lambda: tmp_path / "nothing")
    mesh = tmp_path / "m.obj"
    mesh.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    r = runner.invoke(app, ["reward", "score", "--ckpt", "embedded", str(mesh), "a chair"])
    assert r.exit_code == 2 and "shipped reward model is missing" in r.output
    r = runner.invoke(app, ["reward", "score", str(mesh), "a chair"])  # no --ckpt: the shipped one
    assert r.exit_code == 2 and "shipped reward model is missing" in r.output
    from dreamcs.generate.pipeline import resolve_reward_dir

    with pytest.raises(FileNotFoundError, match="shipped reward model is missing"):
        resolve_reward_dir("embedded")


def test_small_preset_fits_the_shipping_budget():
    """The small preset's weights (text encoder excluded) in bytes: float16 about 15 MB, float32 about 30 MB."""
    from dreamcs.reward import preset

    model = RewardCS(preset("small", text_encoder="hash:384"))  # same text width as MiniLM (384)
    n = sum(v.numel() for v in model.state_dict().values())
    assert 7.0e6 < n < 8.0e6
    assert 2 * n < 16e6 and 4 * n <= export_mod.MAX_SHIPPED_BYTES
