"""`evaluate compare` on synthetic per-asset records with a known shift between the variants: the
bootstrap intervals, pairing by (prompt, seed), the better direction of each metric, determinism,
the errors, and the command on janus.json files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dreamcs.cli import app
from dreamcs.evaluate.bootstrap import bootstrap_mean, hierarchical_bootstrap_mean
from dreamcs.evaluate.compare import CompareConfig, compare_records

runner = CliRunner()


def synthetic(shift: float, noise: float = 0.005, prompts: int = 8, seeds: int = 5, seed: int = 0,
              metric: str = "chamfer") -> list[dict]:
    """Baseline and +RewardCS assets for every prompt x seed: A = level_p + e_ps, B = A + shift + v_ps,
    with prompt levels far apart and e, v ~ N(0, noise): the paired difference is shift + v."""
    rng = np.random.default_rng(seed)
    recs = []
    for p in range(prompts):
        level = rng.uniform(0.05, 0.3)
        for s in range(seeds):
            a = level + rng.normal(0, noise)
            b = a + shift + rng.normal(0, noise)
            recs.append({"study": "base", "run": f"runs/p{p}-s{s}", "prompt": f"prompt {p}", "seed": s,
                         "variant": "baseline", "recipe": "dmtet-sd", metric: a, "holes": 2.0})
            recs.append({"study": "ours", "run": f"runs/p{p}-s{s}", "prompt": f"prompt {p}", "seed": s,
                         "variant": "+RewardCS", "recipe": "dmtet-sd", metric: b, "holes": 2.0})
    return recs


def cfg(**kw) -> CompareConfig:
    return CompareConfig(**{"metrics": ["chamfer"], **kw})


def test_large_shift_is_found_and_contained():
    res = compare_records(synthetic(shift=-0.03), cfg(), log=lambda _: None)
    assert (res["a"], res["b"]) == ("baseline", "+RewardCS")
    ch = res["metrics"]["chamfer"]
    pooled = ch["pooled"]
    assert pooled["pairs"] == 40 and pooled["diff"] == pytest.approx(-0.03, abs=0.003)
    assert pooled["ci_low"] < -0.03 < pooled["ci_high"] < 0  # contains the shift, excludes 0
    assert pooled["verdict"] == "+RewardCS better"
    rows = ch["per_prompt"]
    assert len(rows) == 8 and all(r["pairs"] == 5 and r["ci_high"] < 0 for r in rows)  # shift = 6 sigma
    # 5 seeds: a 95% percentile interval of 5 values undercovers a little; most must still hold it
    assert sum(r["ci_low"] <= -0.03 <= r["ci_high"] for r in rows) >= 6
    assert ch["b_better"] == 8 and ch["b_better_share"] == 1.0 and ch["lower_is_better"]
    # the pooled means are the mean of the per-prompt means
    assert pooled["a_mean"] == pytest.approx(np.mean([r["a_mean"] for r in rows]))
    # a shift that makes B worse on a lower-is-better metric says so
    worse = compare_records(synthetic(shift=0.03), cfg(), log=lambda _: None)["metrics"]["chamfer"]
    assert worse["pooled"]["verdict"] == "baseline better" and worse["b_better"] == 0 and worse["b_worse"] == 8


def test_zero_shift_contains_zero():
    res = compare_records(synthetic(shift=0.0, seed=3), cfg(metrics=["chamfer", "holes"]), log=lambda _: None)
    pooled = res["metrics"]["chamfer"]["pooled"]
    assert pooled["ci_low"] < 0 < pooled["ci_high"] and pooled["verdict"] == "no clear difference"
    holes = res["metrics"]["holes"]["pooled"]  # identical values: a zero-width interval at 0
    assert holes["diff"] == holes["ci_low"] == holes["ci_high"] == 0 and holes["verdict"] == "no clear difference"


def test_higher_is_better_metric():
    recs = synthetic(shift=0.05, metric="normal_consistency")
    nc = compare_records(recs, cfg(metrics=["normal_consistency"]), log=lambda _: None)["metrics"]["normal_consistency"]
    assert not nc["lower_is_better"] and nc["pooled"]["verdict"] == "+RewardCS better" and nc["b_better"] == 8


def test_deterministic_with_a_seed_and_stable_per_prompt():
    recs = synthetic(shift=-0.01, noise=0.01)
    one = compare_records(recs, cfg(seed=7), log=lambda _: None)
    assert compare_records(recs, cfg(seed=7), log=lambda _: None) == one
    other = compare_records(recs, cfg(seed=8), log=lambda _: None)["metrics"]["chamfer"]["pooled"]
    assert other["diff"] == one["metrics"]["chamfer"]["pooled"]["diff"]
    assert other["ci_low"] != one["metrics"]["chamfer"]["pooled"]["ci_low"]
    # dropping a prompt leaves the other prompts' intervals as they were (one stream per prompt)
    fewer = [r for r in recs if r["prompt"] != "prompt 0"]
    rows = {r["prompt"]: r for r in compare_records(fewer, cfg(seed=7), log=lambda _: None)["metrics"]["chamfer"]["per_prompt"]}
    for r in one["metrics"]["chamfer"]["per_prompt"][1:]:
        assert rows[r["prompt"]] == r


def test_unpaired_seeds_are_dropped_with_a_warning():
    recs = [r for r in synthetic(shift=-0.03) if not (r["variant"] == "+RewardCS" and r["prompt"] == "prompt 0" and r["seed"] == 4)]
    recs.append({**recs[0], "run": "runs/p0-s9", "seed": 9})  # a baseline seed the guided study lacks
    logs: list[str] = []
    res = compare_records(recs, cfg(), log=logs.append)
    assert res["metrics"]["chamfer"]["per_prompt"][0]["pairs"] == 4
    assert res["metrics"]["chamfer"]["pooled"]["pairs"] == 39
    assert {(u["group"], u["seed"]) for u in res["unpaired"]} == {("baseline", 4), ("baseline", 9)}
    assert len(logs) == 1 and "2 asset(s) without a partner" in logs[0] and "'prompt 0' seed 9" in logs[0]


def test_non_finite_values_are_left_out_with_a_warning():
    recs = synthetic(shift=-0.03)
    recs[1]["chamfer"] = float("inf")  # an empty mesh of +RewardCS, prompt 0 seed 0
    recs[2].pop("chamfer")  # a baseline mesh that could not be read
    logs: list[str] = []
    ch = compare_records(recs, cfg(), log=logs.append)["metrics"]["chamfer"]
    assert ch["per_prompt"][0]["pairs"] == 3 and len(ch["dropped"]) == 2 and "2 pair(s)" in logs[0]
    json.dumps(ch, allow_nan=False)  # inf is kept as text


def test_one_pair_per_prompt_has_no_prompt_interval_but_a_pooled_one():
    res = compare_records(synthetic(shift=-0.03, seeds=1), cfg(), log=lambda _: None)["metrics"]["chamfer"]
    assert all(r["ci_low"] is None and r["verdict"] == "no interval (one pair)" for r in res["per_prompt"])
    assert res["pooled"]["ci_high"] < 0  # prompts resampled


def test_errors_are_clear():
    quiet = {"log": lambda _: None}
    no_gt = [r if r["variant"] == "baseline" else {k: v for k, v in r.items() if k != "chamfer"} for r in synthetic(0.0)]
    with pytest.raises(ValueError, match="'\\+RewardCS' has it \\(it needs ground-truth meshes"):
        compare_records(no_gt, cfg(), **quiet)
    shifted = [{**r, "seed": r["seed"] + 100} if r["variant"] == "+RewardCS" else r for r in synthetic(0.0)]
    with pytest.raises(ValueError, match="no \\(prompt, seed\\) is in both"):
        compare_records(shifted, cfg(), **quiet)
    with pytest.raises(ValueError, match="unknown metric"):
        compare_records(synthetic(0.0), cfg(metrics=["chamfr"]), **quiet)
    three = synthetic(0.0) + [{**r, "variant": "other", "study": "x"} for r in synthetic(0.0)[:4:2]]  # 2 seeds
    with pytest.raises(ValueError, match="3 group"):
        compare_records(three, cfg(), **quiet)
    assert compare_records(three, cfg(a="other", b="baseline"), **quiet)["metrics"]["chamfer"]["pooled"]["pairs"] == 2
    with pytest.raises(ValueError, match="'nope'"):
        compare_records(three, cfg(a="nope"), **quiet)
    dup = synthetic(0.0) + [{**synthetic(0.0)[0], "run": "runs/again"}]
    with pytest.raises(ValueError, match="two assets for 'prompt 0' seed 0"):
        compare_records(dup, cfg(), **quiet)


def test_groups_are_recipe_and_variant():
    recs = synthetic(-0.03) + [{**r, "recipe": "magic3d-sd", "study": "m" + r["study"]} for r in synthetic(0.0)]
    with pytest.raises(ValueError, match="4 group"):
        compare_records(recs, cfg(), log=lambda _: None)
    res = compare_records(recs, cfg(a="magic3d-sd / baseline", b="dmtet-sd / +RewardCS"), log=lambda _: None)
    assert res["b"] == "dmtet-sd / +RewardCS" and res["metrics"]["chamfer"]["pooled"]["pairs"] == 40


def test_bootstrap_basics():
    rng = np.random.default_rng(0)
    assert bootstrap_mean([0.5], rng).low is None
    iv = bootstrap_mean([1.0, 2.0, 3.0, 4.0], rng)
    assert iv.mean == 2.5 and 1.0 <= iv.low < 2.5 < iv.high <= 4.0
    # the two-stage interval is wider than resampling seeds alone when prompts differ in their effect
    groups = [np.full(5, d) + np.random.default_rng(i).normal(0, 0.01, 5) for i, d in enumerate([-0.1, 0.0, 0.1, 0.2])]
    flat = bootstrap_mean(np.concatenate(groups), np.random.default_rng(1))
    two = hierarchical_bootstrap_mean(groups, np.random.default_rng(1))
    assert two.mean == pytest.approx(flat.mean)
    assert (two.high - two.low) > (flat.high - flat.low)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([1.0, 2.0], rng, confidence=1.5)


def test_pooled_interval_covers_the_shift_in_most_studies():
    """Coverage over 200 simulated studies (8 prompts x 5 seeds, prompt effects spread around the shift)."""
    hits = 0
    for k in range(200):
        rng = np.random.default_rng(1000 + k)
        effects = -0.02 + rng.normal(0, 0.01, size=8)  # the population mean effect is the target
        groups = [e + rng.normal(0, 0.01, size=5) for e in effects]
        iv = hierarchical_bootstrap_mean(groups, rng, resamples=2000)
        hits += iv.contains(-0.02)
    assert 0.85 <= hits / 200 <= 1.0


def _write_janus(folder, records):
    folder.mkdir(parents=True)
    (folder / "janus.json").write_text(json.dumps({"table": {}, "assets": records}))


def test_cli_on_two_studies(tmp_path):
    recs = synthetic(shift=-0.03)
    _write_janus(tmp_path / "base" / "eval", [r for r in recs if r["variant"] == "baseline"])
    _write_janus(tmp_path / "ours" / "eval", [r for r in recs if r["variant"] == "+RewardCS"])
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["evaluate", "compare", str(tmp_path / "base"), str(tmp_path / "ours"), "--out", str(out),
                              "--metrics", "chamfer,holes"])
    assert res.exit_code == 0, res.output
    md = (out / "compare.md").read_text()
    assert "## Chamfer ↓" in md and "Lower is better" in md and "| **all prompts** | 40 |" in md
    assert "+RewardCS is better on 8 of 8 prompt(s)" in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert len(rows) == 2 * 9 and {r["level"] for r in rows} == {"prompt", "pooled"}
    data = json.loads((out / "compare.json").read_text())
    assert data["settings"]["resamples"] == 10_000 and data["metrics"]["chamfer"]["pooled"]["ci_high"] < 0
    # a metric the records lack: exit 2, the files named
    bad = runner.invoke(app, ["evaluate", "compare", str(tmp_path / "base"), str(tmp_path / "ours"), "--out", str(out),
                              "--metrics", "normal_consistency"])
    assert bad.exit_code == 2 and "janus.json" in bad.output and "normal_consistency" in bad.output
    missing = runner.invoke(app, ["evaluate", "compare", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    (tmp_path / "broken.json").write_text("{\"table\": {}}")
    broken = runner.invoke(app, ["evaluate", "compare", str(tmp_path / "broken.json")])
    assert broken.exit_code == 2 and "no 'assets' list" in broken.output
