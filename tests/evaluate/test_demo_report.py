"""demo/report.html: real HTML tables for the metrics and a readable dataset summary, no raw dumps."""

from __future__ import annotations

from dreamcs.demo_report import write_report

STATS = {
    "items": 10, "objects": 6, "failures": 1, "preferred": 4, "dispreferred": 5, "middle_left_out": 1,
    "preferred_share": 4 / 9, "mean_overall": 3.2,
    "per_source": {"embedded_clean": {"items": 6, "preferred": 4, "dispreferred": 1, "middle_left_out": 1,
                                      "preferred_share": 0.8, "mean_overall": 4.1}},
    "per_split": {"train": {"items": 8, "preferred": 3, "dispreferred": 4, "middle_left_out": 1,
                            "preferred_share": 3 / 7, "mean_overall": 3.0}},
}
TABLE = {"baseline": {"janus": {"mean": 0.5, "std": 0.5, "n": 2}, "chamfer": {"mean": 0.1, "std": 0.01, "n": 2}},
         "+RewardCS": {"janus": {"mean": 0.0, "std": 0.0, "n": 2}, "chamfer": {"mean": 0.08, "std": 0.02, "n": 2}}}


def test_report_renders_tables_and_a_summary(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    sections = {"seconds": 12.5, "mesh": [{"mesh": "chair", "faces_in": 100}], "stats": STATS,
                "reward_eval": {"accuracy": 0.75},
                "generate": {"runs": [{"prompt": "a chair", "seed": 0, "variant": "baseline", "dir": str(run)}],
                             "table": TABLE}}
    page = write_report(tmp_path, sections, tmp_path / "no_reward_run").read_text()
    assert "<pre>" not in page and "| Method |" not in page and '"per_source"' not in page
    assert "<th>Janus ratio ↓</th>" in page and "<td>+RewardCS</td>" in page and "<td>0.500 ± 0.500</td>" in page
    assert "10 scored items from 6 objects: 4 preferred, 5 dispreferred" in page and "44% / 56%" in page
    assert "<td>split train</td>" in page and "<td>source embedded_clean</td>" in page


def _assets(seeds: int, chamfer: bool = True) -> list[dict]:
    """Janus-benchmark records of three prompts: +RewardCS 0.02 closer to the ground truth than the
    baseline on every (prompt, seed), give or take 0.002, with the same holes and floaters."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    for p in ("a vase", "a pyramid", "a king-size bed"):
        for s in range(seeds):
            base = {"prompt": p, "seed": s, "recipe": "dmtet-embedded", "janus": 0.0, "floaters": 0.01, "holes": 3.0}
            a, b = dict(base, variant="baseline"), dict(base, variant="+RewardCS")
            if chamfer:
                a["chamfer"] = 0.11 + rng.normal(0, 0.01)
                b["chamfer"] = a["chamfer"] - 0.02 + rng.normal(0, 0.002)
            out += [a, b]
    return out


def test_report_shows_the_paired_difference_with_its_interval(tmp_path):
    from dreamcs.quickstart import paired_comparison

    cmp = paired_comparison(_assets(seeds=5), tmp_path / "eval", log=lambda _: None)
    assert list(cmp["metrics"]) == ["chamfer", "janus", "floaters", "holes"]
    pooled = cmp["metrics"]["chamfer"]["pooled"]
    assert pooled["ci_low"] < -0.02 < pooled["ci_high"] < 0 and pooled["verdict"] == "+RewardCS better"
    assert (tmp_path / "eval" / "compare.md").read_text().startswith("# +RewardCS (B) against baseline (A)")
    gen = {"runs": [{"prompt": "a vase", "seed": 0, "variant": "baseline", "dir": str(tmp_path / "r")}],
           "table": TABLE, "compare": cmp}
    page = write_report(tmp_path, {"seconds": 1.0, "mesh": [], "stats": {}, "reward_eval": {}, "generate": gen},
                        tmp_path / "no_reward_run").read_text()
    assert "<h3>Paired difference: +RewardCS - baseline</h3>" in page
    assert "<th>95% interval</th>" in page and "<td>Chamfer ↓</td><td>all prompts</td><td>15</td>" in page
    lo, hi = f"{pooled['ci_low']:.4g}", f"{pooled['ci_high']:.4g}"
    assert f"<td>[{lo}, {hi}]</td><td>+RewardCS better</td>" in page
    assert "no per-prompt interval" not in page


def test_demo_comparison_with_one_seed_and_without_ground_truth(tmp_path):
    from dreamcs.quickstart import paired_comparison

    one = paired_comparison(_assets(seeds=1), tmp_path / "one", log=lambda _: None)
    assert all(r["ci_low"] is None for r in one["metrics"]["chamfer"]["per_prompt"])
    assert one["metrics"]["chamfer"]["pooled"]["ci_low"] is not None  # three prompts resampled
    gen = {"runs": [{"prompt": "a vase", "seed": 0, "variant": "baseline", "dir": str(tmp_path / "r")}], "compare": one}
    page = write_report(tmp_path, {"seconds": 1.0, "mesh": [], "stats": {}, "reward_eval": {}, "generate": gen},
                        tmp_path / "no_reward_run").read_text()
    assert "no per-prompt interval" in page and "resamples 3 prompt(s)" in page
    # no ground truth: no Chamfer, the other metrics still compared
    no_gt = paired_comparison(_assets(seeds=2, chamfer=False), tmp_path / "nogt", log=lambda _: None)
    assert list(no_gt["metrics"]) == ["janus", "floaters", "holes"]
    # every baseline run failed: nothing to pair, a message instead of an error
    logs: list[str] = []
    assert paired_comparison([r for r in _assets(2) if r["variant"] == "+RewardCS"], tmp_path / "x", log=logs.append) is None
    assert "no metric that both variants have" in logs[0]
