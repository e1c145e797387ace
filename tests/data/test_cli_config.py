"""`dreamcs data build --config FILE`: the file's settings hold unless an option is typed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dreamcs.cli import app


@pytest.fixture
def captured(monkeypatch):
    """Replace the build with a recorder of the config the command resolved."""
    import dreamcs.data.build as build_mod

    seen = {}

    def fake_build(cfg, out, workers=1, retry_failed=False):
        seen["cfg"] = cfg
        return {"items": 0, "preferred": 0, "dispreferred": 0, "middle_left_out": 0, "failures": 0,
                "computed_now": 0, "build_seconds": 0.0}

    monkeypatch.setattr(build_mod, "build", fake_build)
    return seen


def _yaml(tmp_path):
    p = tmp_path / "build.yaml"
    p.write_text("sources: [embedded]\nscorer: llm\nseed: 7\nshard: 1/3\nllm:\n  model: judge-x\n")
    return p


def test_config_file_settings_are_kept(tmp_path, captured):
    res = CliRunner().invoke(app, ["data", "build", "--config", str(_yaml(tmp_path)), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    cfg = captured["cfg"]
    assert (cfg.scorer, cfg.seed, cfg.shard, cfg.llm.model) == ("llm", 7, "1/3", "judge-x")


def test_typed_options_override_the_file(tmp_path, captured):
    res = CliRunner().invoke(app, ["data", "build", "--config", str(_yaml(tmp_path)), "--out", str(tmp_path / "ds"),
                                   "--scorer", "geometric", "--seed", "3", "--shard", "0/2"])
    assert res.exit_code == 0, res.output
    cfg = captured["cfg"]
    assert (cfg.scorer, cfg.seed, cfg.shard, cfg.llm.model) == ("geometric", 3, "0/2", "judge-x")


def test_defaults_without_a_file(tmp_path, captured):
    res = CliRunner().invoke(app, ["data", "build", "--preset", "embedded", "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    cfg = captured["cfg"]
    assert (cfg.scorer, cfg.seed, cfg.shard, cfg.sources) == ("geometric", 0, "0/1", ["embedded"])
