"""Studies end to end on dmtet-tiny (2 steps): a 2-prompt run, shard + merge, resume, scoring two
variants (CP on a tiny random CLIP, GA on a tiny random RewardCS, a local judge endpoint), and the
Janus benchmark against a ground-truth mesh. Commands go through the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import trimesh
from eval_settings import TINY
from test_judge import _Server
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.evaluate.study import parse_seeds, plan_jobs, read_manifest
from dreamcs.utils import parse_shard, read_jsonl

PROMPTS = ["a wooden chair", "a red car"]
runner = CliRunner()


def cli(*args: str, code: int = 0) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res.output


def test_plan_jobs_shards_are_disjoint_and_cover_the_study():
    prompts = [f"p{i}" for i in range(5)]
    full = plan_jobs(prompts, [0, 1, 2])
    shards = [plan_jobs(prompts, [0, 1, 2], (i, 4)) for i in range(4)]
    names = [j.name for s in shards for j in s]
    assert len(names) == len(set(names)) == len(full) == 15
    assert sorted(names) == sorted(j.name for j in full)
    assert plan_jobs(prompts, [0, 1, 2], (1, 4)) == shards[1]  # deterministic


@pytest.mark.parametrize("bad", ["3/3", "a/b", "1", "-1/2"])
def test_bad_shard(bad):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(bad)


def test_seeds():
    assert parse_seeds("0, 2,2,1") == [0, 2, 1]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("0,x")


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    p.write_text("\n".join(PROMPTS) + "\n")
    return p


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, prompts_file):
    out = tmp_path_factory.mktemp("study") / "baseline"
    cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", out, *TINY)
    return out


@pytest.fixture(scope="module")
def guided(tmp_path_factory, prompts_file, tiny_reward_dir):
    out = tmp_path_factory.mktemp("study") / "guided"
    cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", out,
        "--reward", tiny_reward_dir, *TINY)
    return out


def test_two_prompt_run_and_rerun_skips(baseline, prompts_file):
    recs = read_manifest(baseline)
    assert sorted(r["prompt"] for r in recs) == sorted(PROMPTS)
    assert {r["variant"] for r in recs} == {"baseline"} and {r["seed"] for r in recs} == {0}
    for r in recs:
        run = baseline / r["run"]
        assert (run / "final.obj").is_file() and (run / "turntable.png").is_file()
        assert len(read_jsonl(run / "metrics.jsonl")) == 2
    out = cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", baseline, *TINY)
    assert "done 0, skipped 2" in out
    # other settings in the same folder are refused, naming what differs
    out = cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", baseline,
              *TINY, "lr=0.5", code=2)
    assert "overrides" in out


def test_shard_and_merge_round_trip(baseline, prompts_file, tmp_path):
    parts = []
    for i in range(2):
        part = tmp_path / f"shard{i}"
        cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", part,
            "--shard", f"{i}/2", *TINY)
        assert len(read_manifest(part)) == 1
        parts.append(part)
    assert {r["run"] for r in read_manifest(parts[0])}.isdisjoint(r["run"] for r in read_manifest(parts[1]))
    merged = tmp_path / "merged"
    assert "2 runs (2 added" in cli("evaluate", "merge", *parts, "--out", merged)
    assert "2 runs (0 added, 2 already there)" in cli("evaluate", "merge", *parts, "--out", merged)
    recs = read_manifest(merged)
    assert sorted(r["run"] for r in recs) == sorted(r["run"] for r in read_manifest(baseline))
    for r in recs:  # the same seeds on the CPU give the same meshes, whichever shard made them
        assert (merged / r["run"] / "final.obj").read_bytes() == (baseline / r["run"] / "final.obj").read_bytes()


def test_merge_refuses_mixed_variants(baseline, guided, tmp_path):
    out = cli("evaluate", "merge", baseline, guided, "--out", tmp_path / "mixed", code=2)
    assert "variant" in out


def test_resume_a_killed_study(baseline, prompts_file, tmp_path):
    study = tmp_path / "partial"
    shutil.copytree(baseline, study)
    recs = read_manifest(study)
    victim = recs[0]["run"]
    run = study / victim
    # what a kill after step 1 leaves: one checkpoint, one metrics line, no outputs, no manifest line
    for name in ("final.obj", "final.glb", "turntable.png", "checkpoints/step_000002.safetensors"):
        (run / name).unlink()
    (run / "metrics.jsonl").write_text(json.dumps(read_jsonl(run / "metrics.jsonl")[0]) + "\n")
    (study / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[1:]))
    out = cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", study, *TINY)
    assert f"resume {victim}" in out and "done 1, skipped 1" in out
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [0, 1]
    assert (run / "final.obj").read_bytes() == (baseline / victim / "final.obj").read_bytes()
    assert len(read_manifest(study)) == 2


def test_score_two_variants(baseline, guided, tiny_clip_dir, tiny_reward_dir, tmp_path):
    good = '{"alignment": 3, "plausibility": 2, "consistency": 4}'
    srv = _Server([(200, good)] * 3 + [(200, "sorry")] + [(200, good)] * 2)
    try:
        out = tmp_path / "eval"
        args = ["evaluate", "score", baseline, guided, "--out", out, "--clip", tiny_clip_dir,
                "--ga-reward", tiny_reward_dir, "--judge-url", srv.url, "--judge-model", "m",
                "--views", "2", "--resolution", "32", "--n-patches", "16"]
        text = cli(*args)
        assert "| baseline |" in text and "| +RewardCS |" in text
        # GA here is the RewardCS that guided the +RewardCS runs: the protocol guard says so
        assert "warning: GA is scored by" in text and "guided 2 of 4 runs" in text
        assets = read_jsonl(out / "assets.jsonl")
        assert len(assets) == 4 and {a["variant"] for a in assets} == {"baseline", "+RewardCS"}
        for a in assets:
            assert -1 <= a["clip_score"] <= 1 and isinstance(a["ga"], float) and 0 <= a["janus_score"] <= 1
        judged = [a for a in assets if "judge_alignment" in a]
        assert len(judged) == 3 and sum("judge_error" in a for a in assets) == 1  # no made-up score
        table = json.loads((out / "table.json").read_text())["table"]
        assert table["baseline"]["clip_score"]["n"] == 2 and table["+RewardCS"]["ga"]["n"] == 2
        assert sum(table[v]["judge_alignment"]["n"] for v in table) == 3
        header = (out / "table.md").read_text().splitlines()[0]
        assert header.startswith("| Method | CP ↑ | GA ↑ |") and "Judge: alignment" in header
        assert (out / "table.csv").is_file() and (out / "contact_sheet.png").stat().st_size > 0
        # a re-run reuses every record but the unjudged one, whose judge is asked again
        n_req = len(srv.requests)
        assert cli(*args).split("| Method")[0].count("score ") == 1
        assert len(srv.requests) == n_req + 1
        table = json.loads((out / "table.json").read_text())["table"]
        assert sum(table[v]["judge_alignment"]["n"] for v in table) == 4
        # a regenerated mesh (other bytes) is scored again
        obj = baseline / read_manifest(baseline)[0]["run"] / "final.obj"
        original = obj.read_bytes()
        try:
            obj.write_bytes(original + b"# regenerated\n")
            assert cli(*args).split("| Method")[0].count("score ") == 1
        finally:
            obj.write_bytes(original)
    finally:
        srv.close()


def test_janus_benchmark_with_ground_truth(baseline, guided, prompts_file, tiny_reward_dir, tmp_path):
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    trimesh.creation.icosphere(subdivisions=2).export(gt_dir / "ball.obj")
    (gt_dir / "map.json").write_text(json.dumps({"a wooden chair": "ball.obj"}))
    out = tmp_path / "janus"
    text = cli("evaluate", "janus", "--prompts", prompts_file, "--runs", baseline, "--runs", guided,
               "--gt", gt_dir / "map.json", "--reward", tiny_reward_dir, "--out", out, "--points", "512")
    assert "| baseline |" in text and "| +RewardCS |" in text and "**a wooden chair**" in text
    data = json.loads((out / "janus.json").read_text())
    assert {a["prompt"] for a in data["assets"]} == {"a wooden chair"}  # the car has no ground truth
    for v in ("baseline", "+RewardCS"):
        row = data["table"][v]
        assert row["chamfer"]["n"] == 1 and 0 < row["chamfer"]["mean"] < 1  # a blob vs a ball: close
        assert 0 < row["normal_consistency"]["mean"] <= 1 and "janus_excess" in row and "reward" in row
    # the benchmark's records pair up in `evaluate compare` (one prompt, one seed: no interval)
    text = cli("evaluate", "compare", out, "--metrics", "chamfer,janus,holes", "--out", tmp_path / "cmp")
    paired = json.loads((tmp_path / "cmp" / "compare.json").read_text())["metrics"]["chamfer"]["pooled"]
    chamfer = {v: data["table"][v]["chamfer"]["mean"] for v in ("baseline", "+RewardCS")}
    assert paired["pairs"] == 1 and paired["diff"] == pytest.approx(chamfer["+RewardCS"] - chamfer["baseline"])
    assert "## Chamfer ↓" in text and "no interval (one pair)" in text
    bad = gt_dir / "bad.json"
    bad.write_text(json.dumps({"a wooden chair": "missing.obj"}))
    assert "does not exist" in cli("evaluate", "janus", "--prompts", prompts_file, "--runs", baseline,
                                   "--gt", bad, code=2)


def test_failed_runs_are_recorded_and_retried(tmp_path, monkeypatch):
    """One run raising does not end the study; it lands in failures.jsonl and a re-run retries it."""
    import dreamcs.generate.pipeline as pipeline
    from dreamcs.evaluate.study import run_study

    calls = []

    class Fake:
        def __init__(self, cfg, run_dir, show_progress=False):
            self.cfg, self.run_dir = cfg, run_dir

        def __call__(self, resume=False):
            calls.append((self.cfg.prompt, resume))
            if self.cfg.prompt == "a red car" and len(calls) < 3:
                raise RuntimeError("out of memory")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "final.obj").write_text("v 0 0 0\n")
            return type("Out", (), {"steps": 2, "metrics": [{"loss": 1.0, "reward": None}]})()

    monkeypatch.setattr(pipeline, "GeneratePipeline", Fake)
    out = tmp_path / "study"
    counts = run_study(out, PROMPTS, "dmtet-tiny", seeds=[0], overrides=TINY, log=lambda s: None)
    assert counts == {"done": 1, "skipped": 0, "failed": 1}
    fail = read_jsonl(out / "failures.jsonl")
    assert fail[0]["prompt"] == "a red car" and "out of memory" in fail[0]["error"]
    counts = run_study(out, PROMPTS, "dmtet-tiny", seeds=[0], overrides=TINY, log=lambda s: None)
    assert counts == {"done": 1, "skipped": 1, "failed": 0} and calls[-1] == ("a red car", False)
    assert {r["variant"] for r in read_manifest(out)} == {"baseline"}


def test_cli_errors_name_the_problem(prompts_file, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    out = cli("evaluate", "run", "--prompts", bad, "--config", "dmtet-tiny", "--out", tmp_path / "s", code=2)
    assert "bad.json" in out and "not a string" in out
    out = cli("evaluate", "run", "--prompts", prompts_file, "--config", "dmtet-tiny", "--out", tmp_path / "s",
              "--reward", tmp_path / "nowhere", code=2)
    assert "no RewardCS model" in out
    out = cli("evaluate", "run", "--prompts", prompts_file, "--config", "no-such-preset", "--out", tmp_path / "s",
              code=2)
    assert "no-such-preset" in out
    assert "no finished runs" in cli("evaluate", "score", tmp_path, code=2)
