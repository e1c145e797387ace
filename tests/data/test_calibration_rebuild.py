"""Human reviews survive a rebuild: `build` re-applies calibration.jsonl over the journal's
machine scores, with the provenance of every score (score_source, machine_overall)."""

from __future__ import annotations

import json

import pytest

from dreamcs.data.build import BuildConfig, build
from dreamcs.data.calibrate import calibrate
from dreamcs.data.store import read_table

TINY = dict(n_patches=8, faces_per_patch=16, shard_size=2)  # as in conftest.py


def _cfg(ds):
    import yaml

    man = yaml.safe_load((ds / "config.yaml").read_text())["sources"]
    return BuildConfig(sources=man, **TINY)


def test_rebuild_keeps_human_reviews(built_copy):
    rows0 = {r["id"]: r for r in read_table(built_copy)}
    assert {r["score_source"] for r in rows0.values()} == {"machine"}
    assert all(r["machine_overall"] == r["overall"] for r in rows0.values())
    a, b = sorted(rows0)[:2]
    csv = built_copy.parent / "human.csv"
    csv.write_text(f"id,alignment,realism,fidelity\n{a},1,1,1\n")
    calibrate(built_copy, csv)
    csv2 = built_copy.parent / "human2.csv"
    csv2.write_text(f"id,overall\n{b},4.9\n")
    calibrate(built_copy, csv2)
    # a rebuild from the journal (as --retry-failed does) rewrites items.parquet from machine rows
    st = build(_cfg(built_copy), built_copy, retry_failed=True, progress=False)
    rows = {r["id"]: r for r in read_table(built_copy)}
    assert (rows[a]["overall"], rows[a]["label"], rows[a]["score_source"]) == (1.0, 0, "human")
    assert rows[a]["provenance"] == "human:human.csv" and rows[a]["realism"] == 1.0
    assert rows[a]["machine_overall"] == pytest.approx(rows0[a]["overall"])
    assert (rows[b]["overall"], rows[b]["label"], rows[b]["score_source"]) == (4.9, 1, "calibrated")
    assert rows[b]["realism"] == rows0[b]["realism"]  # the machine's component scores stay
    others = [k for k in rows if k not in (a, b)]
    assert all(rows[k]["overall"] == rows0[k]["overall"] and rows[k]["score_source"] == "machine" for k in others)
    assert json.loads((built_copy / "stats.json").read_text())["dispreferred"] == st["dispreferred"]
    log = [json.loads(x) for x in (built_copy / "calibration.jsonl").read_text().splitlines()]
    assert log[0]["human"] == {"alignment": 1.0, "realism": 1.0, "fidelity": 1.0} and log[1]["human"] == {"overall": 4.9}


def test_old_logs_without_the_reviewer_values_are_reapplied(built_copy):
    a = read_table(built_copy)[0]["id"]
    after = {"alignment": 2.0, "realism": 2.0, "fidelity": 2.0, "overall": 2.0, "label": 0}
    (built_copy / "calibration.jsonl").write_text(json.dumps({"id": a, "by": "human:old.csv", "after": after}) + "\n")
    build(_cfg(built_copy), built_copy, progress=False)
    r = next(r for r in read_table(built_copy) if r["id"] == a)
    assert (r["overall"], r["score_source"], r["provenance"]) == (2.0, "human", "human:old.csv")
