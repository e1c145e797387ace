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
