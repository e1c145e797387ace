"""`dreamcs reward ablate`: every objective on the same data and seeds, a table, resumable."""

from __future__ import annotations

import csv
import json

import pytest
from reward_helpers import mesh_core, write_tiny_dataset
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.reward.ablate import summarise, to_markdown
from dreamcs.reward.losses import LOSS_TYPES
from dreamcs.reward.train import TrainConfig

runner = CliRunner()
TINY = ["--preset", "tiny", "model.text_encoder=hash:16", "model.faces_per_patch=8", "steps=3", "batch_size=4",
        "warmup_steps=1", "log_every=1", "checkpoint_every=3", "stats_items=4"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    mesh_core()
    return write_tiny_dataset(tmp_path_factory.mktemp("abl") / "ds")


def test_ablate_writes_tables_and_resumes(tmp_path, built):
    out = tmp_path / "abl"
    args = ["reward", "ablate", "--data", str(built), "--val", str(built), "--out", str(out), "--seeds", "0,1", *TINY]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "ablation.json").read_text())
    assert len(res["runs"]) == 2 * len(LOSS_TYPES)
    assert {r["loss_type"] for r in res["runs"]} == set(LOSS_TYPES)
    for run in res["runs"]:
        assert "error" not in run, run
        assert run["n"] == 4  # evaluated on the val split (2 objects x 2 labelled items): --val is --data
        assert 0 <= run["roc_auc"] <= 1 and run["d_cs"] >= 0
        assert (out / "runs" / run["run"] / "val" / "eval.json").is_file()
    for t, e in res["summary"].items():
        vals = [run["roc_auc"] for run in res["runs"] if run["loss_type"] == t]
        assert e["runs"] == 2 and e["roc_auc"]["mean"] == pytest.approx(sum(vals) / 2)
    rows = list(csv.DictReader((out / "ablation.csv").open()))
    assert [row["loss_type"] for row in rows] == list(LOSS_TYPES) and "roc_auc_std" in rows[0]
    md = (out / "ablation.md").read_text()
    assert md.count("\n| ") == 1 + len(LOSS_TYPES) and "+/-" in md and "ROC-AUC" in md
    # rerun: every run is skipped, same table
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and r.output.count("skipped") == 2 * len(LOSS_TYPES), r.output
    assert json.loads((out / "ablation.json").read_text())["summary"] == res["summary"]
    # other settings in the same folder: a clear error instead of mixing results
    r = runner.invoke(app, [a if a != "steps=3" else "steps=4" for a in args])
    assert r.exit_code == 2 and "other settings" in r.output and "steps" in r.output


def test_summary_records_an_untrainable_objective():
    runs = [{"run": "a", "loss_type": "cs", "seed": 0, "pair_accuracy": 0.5, "roc_auc": 0.6,
             "same_prompt_pair_accuracy": None, "d_cs": 0.1, "spearman": 0.2},
            {"run": "b", "loss_type": "cs", "seed": 1, "pair_accuracy": 0.7, "roc_auc": 0.8,
             "same_prompt_pair_accuracy": None, "d_cs": 0.3, "spearman": 0.4},
            {"run": "c", "loss_type": "bradley_terry", "seed": 0, "error": "no pairs"}]
    s = summarise(runs, ["cs", "bradley_terry"])
    assert s["cs"]["roc_auc"]["mean"] == pytest.approx(0.7) and s["cs"]["roc_auc"]["std"] == pytest.approx(0.1414, rel=1e-3)
    assert s["cs"]["same_prompt_pair_accuracy"]["mean"] is None and s["bradley_terry"]["runs"] == 0
    md = to_markdown(s, 2, TrainConfig())
    assert "bradley_terry: not trained (no pairs)" in md and "n/a" in md


def test_pretrain_cli_on_a_dataset_folder(tmp_path, built):
    args = ["reward", "pretrain", "--meshes", str(built), "--out", str(tmp_path / "pre"), "--preset", "tiny",
            "model.faces_per_patch=8", "progress=false", "steps=2", "batch_size=2", "warmup_steps=1", "decoder_dim=32"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "pre-training on 12 meshes" in r.output, r.output
    r = runner.invoke(app, [*args[:6], "--split", "train,val", *args[6:]])
    assert r.exit_code == 0 and "pre-training on 18 meshes" in r.output, r.output
    r = runner.invoke(app, [*args[:6], "--split", "test", *args[6:]])
    assert r.exit_code == 2 and "no meshes in split(s) test" in r.output
