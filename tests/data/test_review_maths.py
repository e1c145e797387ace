"""The review queue (stratified, seeded) and the agreement / fit maths, on hand-made rows and logs."""

from __future__ import annotations

import numpy as np
import pytest

from dreamcs.data.review.agreement import (
    agreement,
    apply_curve,
    compare,
    fit_correction,
    fit_curve,
    machine_scores,
)
from dreamcs.data.review.sampler import review_queue, score_bin, stratum_of


def _rows(n=40):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        a, r, f = (float(x) for x in rng.uniform(0, 5, 3).round(2))
        o = round((a + r + f) / 3, 4)
        out.append({"id": f"item{i:03d}", "source": "cap3d" if i % 3 else "run", "label": 1 if o >= 4 else 0 if o <= 3.5 else -1,
                    "alignment": a, "realism": r, "fidelity": f, "overall": o, "score_source": "machine", "split": "train"})
    return out


def test_queue_is_a_seeded_stratified_permutation():
    rows = _rows()
    q = review_queue(rows, seed=3)
    assert sorted(q) == sorted(r["id"] for r in rows)  # every item once
    assert q == review_queue(list(reversed(rows)), seed=3)  # the table's order does not matter
    assert q != review_queue(rows, seed=4)
    by = ("label", "source", "score_bin")
    strata = {stratum_of(r, by) for r in rows}
    first = {stratum_of(next(r for r in rows if r["id"] == i), by) for i in q[: len(strata)]}
    assert first == strata  # the first len(strata) items visit every stratum once
    src = {r["id"]: r["source"] for r in rows}
    assert {src[i] for i in review_queue(rows, seed=3, by=("source",))[:2]} == {"cap3d", "run"}
    with pytest.raises(ValueError, match="unknown stratum key 'colour'"):
        review_queue(rows, by=("colour",))


def test_score_bins():
    assert [score_bin(v) for v in (0.2, 3.49, 3.5, 4.0, 5.0, None)] == ["[0,1)", "[3,3.5)", "[3.5,4)", "[4,4.5)", "[4.5,5]", "none"]


def test_compare_spearman_and_mae_by_hand():
    c = compare([1, 2, 3, 4], [1, 3, 2, 4])
    assert c == {"n": 4, "spearman": pytest.approx(0.8), "mae": 0.5}  # rho = 1 - 6*2/(4*15)
    assert compare([1, 2], [2, 1])["spearman"] is None  # too few pairs for a rank correlation
    assert compare([1, 1, 1], [1, 2, 3])["spearman"] is None  # a constant side


def _rec(i, who, a, r, f, machine=None):
    rec = {"id": i, "reviewer": who, "by": f"reviewer:{who}", "human": {"alignment": a, "realism": r, "fidelity": f}}
    if machine is not None:
        rec["machine"] = machine
    return rec


def test_agreement_machine_vs_human_and_between_reviewers():
    rows = [{"id": f"i{k}", "alignment": float(k), "realism": 2.0, "fidelity": float(k), "overall": (2 * k + 2) / 3,
             "score_source": "machine"} for k in range(1, 5)]
    log = [_rec("i1", "ann", 1, 2, 1), _rec("i2", "ann", 3, 2, 2), _rec("i3", "ann", 2, 2, 3), _rec("i4", "ann", 4, 2, 4),
           _rec("i1", "bob", 2, 2, 1), _rec("i2", "bob", 2, 3, 2),
           _rec("i2", "ann", 3, 2, 2)]  # a repeated answer counts once (the last)
    ag = agreement(rows, log)
    assert ag["reviewers"] == {"ann": 4, "bob": 2}
    # alignment: machine 1,2,3,4 vs consensus (1+2)/2, (3+2)/2, 2, 4 = 1.5, 2.5, 2, 4
    m = ag["machine_vs_human"]["alignment"]
    assert m["n"] == 4 and m["mae"] == pytest.approx((0.5 + 0.5 + 1 + 0) / 4)
    assert m["spearman"] == pytest.approx(0.8)
    b = ag["between_reviewers"]["alignment"]
    assert b["n"] == 2 and b["mae"] == pytest.approx(1.0)  # ann vs bob on i1 (1 vs 2) and i2 (3 vs 2)
    assert ag["between_reviewers"]["fidelity"]["mae"] == 0.0
    assert ag["machine_vs_human"]["overall"]["n"] == 4


def test_machine_scores_come_from_the_log_once_a_row_was_changed():
    rows = [{"id": "x", "alignment": 5.0, "realism": 5.0, "fidelity": 5.0, "overall": 5.0, "score_source": "human", "machine_overall": 2.0}]
    log = [_rec("x", "ann", 5, 5, 5, machine={"alignment": 1.0, "realism": 2.0, "fidelity": 3.0, "overall": 2.0})]
    assert machine_scores(rows, log)["x"] == {"alignment": 1.0, "realism": 2.0, "fidelity": 3.0, "overall": 2.0}
    assert machine_scores(rows, [])["x"] == {"overall": 2.0}  # only the kept machine_overall is known


def test_isotonic_curve_matches_sklearn_and_is_monotone():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 5, 60)
    y = np.clip(0.6 * x + 1.2 + rng.normal(0, 0.5, 60), 0, 5)
    curve = fit_curve(list(x), list(y), "isotonic")
    probe = np.linspace(-1, 6, 101)
    ref = IsotonicRegression(y_min=0, y_max=5, out_of_bounds="clip").fit(x, y).predict(probe)
    assert np.allclose(apply_curve(probe, curve), ref, atol=1e-5)
    assert np.all(np.diff(apply_curve(probe, curve)) >= -1e-9)


def test_linear_curve_recovers_a_line_and_clips():
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    curve = fit_curve(x, [0.5 * v + 1 for v in x], "linear")
    assert np.allclose(apply_curve([0.0, 2.0, 5.0], curve), [1.0, 2.0, 3.5])
    steep = fit_curve([1.0, 2.0], [0.0, 4.0], "linear")  # y = 4x - 4: below 0 and above 5 get clipped
    assert np.allclose(apply_curve([0.0, 1.5, 5.0], steep), [0.0, 2.0, 5.0])
    with pytest.raises(ValueError, match="at least 2 items"):
        fit_curve([3.0], [2.0], "linear")
    with pytest.raises(ValueError, match="unknown fit 'cubic'"):
        fit_curve(x, x, "cubic")


def test_fit_correction_uses_machine_against_consensus():
    rows = [{"id": f"i{k}", "alignment": float(k), "realism": float(k), "fidelity": float(k), "overall": float(k),
             "score_source": "machine"} for k in range(5)]
    log = [_rec(f"i{k}", "ann", min(5.0, k + 1.0), k, k) for k in range(5)]  # ann rates alignment one point higher
    curves = fit_correction(rows, log, "linear")
    assert np.allclose(apply_curve([2.0], curves["alignment"]), [3.0], atol=0.3)
    assert np.allclose(apply_curve([2.0], curves["realism"]), [2.0])


def test_queue_does_not_move_when_reviews_relabel_items():
    rows = _rows()
    q = review_queue(rows, seed=5)
    changed = [dict(r) for r in rows]
    for r in changed[:10]:  # reviewed: new overall and label, the machine's overall kept
        r["machine_overall"], r["overall"] = r["overall"], 5.0 - r["overall"]
        r["label"], r["score_source"] = (1 if r["overall"] >= 4 else 0), "human"
    assert review_queue(changed, seed=5) == q
