"""Agreement between the machine scorer and human reviewers, and a per-dimension correction fitted on it.

As in the paper's calibration: the reviews of ``DATASET/calibration.jsonl`` give, per item and
dimension, a human score; ``agreement`` compares them with the machine's scores (Spearman rank
correlation and mean absolute error per dimension) and reviewers with each other (every pair of
reviewers on the items both reviewed). ``fit_correction`` fits a monotone map machine -> human per
dimension (isotonic regression, or a straight line) and stores it as a piecewise-linear curve
(knots x -> y, clipped to [0, 5]) so that it can be written to JSON and re-applied by a rebuild
without scikit-learn's pickles.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

DIMS = ("alignment", "realism", "fidelity")
ALL_DIMS = (*DIMS, "overall")
FIT_KINDS = ("isotonic", "linear")


def reviewer_of(rec: Mapping[str, Any]) -> str:
    """The reviewer of a log record: its ``reviewer`` (web app) or its ``by`` (CSV: ``human:file.csv``)."""
    return str(rec.get("reviewer") or rec.get("by") or "human")


def human_values(rec: Mapping[str, Any]) -> dict[str, float]:
    """The reviewer's scores of one review record, with ``overall`` (the mean of the three when given)."""
    vals = rec.get("human")
    if vals is None:  # an old log: the reviewer's values are in 'after'
        after = rec.get("after") or {}
        vals = {k: after[k] for k in ALL_DIMS if after.get(k) is not None}
    out = {k: float(v) for k, v in vals.items() if k in ALL_DIMS and v is not None}
    if all(k in out for k in DIMS):
        out["overall"] = float(np.mean([out[k] for k in DIMS]))
    return out


def latest_answers(log: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(item id, reviewer) -> that reviewer's last answer for the item (fit records are skipped)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for rec in log:
        if rec.get("id") is None or "fit" in rec:
            continue
        out[(str(rec["id"]), reviewer_of(rec))] = human_values(rec)
    return out


def human_consensus(log: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """item id -> per dimension, the mean over reviewers of each reviewer's last answer."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (item, _), vals in latest_answers(log).items():
        for k, v in vals.items():
            per[item][k].append(v)
    return {i: {k: float(np.mean(v)) for k, v in d.items()} for i, d in per.items()}


def machine_scores(rows: Iterable[Mapping[str, Any]], log: list[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """item id -> the machine's scores: a machine row's own scores; for a row a human or a fit has
    changed, the machine scores the log kept (``machine`` of a review or fit record, else the
    ``before`` of the item's first review)."""
    kept: dict[str, dict[str, float]] = {}
    for rec in log:
        if "fit" in rec:
            for i, m in (rec.get("machine") or {}).items():
                kept.setdefault(i, m)
        elif rec.get("id") is not None:
            m = rec.get("machine") or ((rec.get("before") or {}) if (rec.get("before") or {}).get("score_source") in (None, "machine") else None)
            if m:
                kept.setdefault(str(rec["id"]), {k: m[k] for k in ALL_DIMS if m.get(k) is not None})
    out = {}
    for r in rows:
        if (r.get("score_source") or "machine") == "machine":
            out[r["id"]] = {k: float(r[k]) for k in ALL_DIMS if r.get(k) is not None}
        elif r["id"] in kept:
            out[r["id"]] = {k: float(v) for k, v in kept[r["id"]].items() if v is not None}
        elif r.get("machine_overall") is not None:
            out[r["id"]] = {"overall": float(r["machine_overall"])}
    return out


def compare(a: list[float], b: list[float]) -> dict[str, Any]:
    """n, Spearman's rho (None when undefined: fewer than 3 pairs or a constant side) and MAE of two paired lists."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, float), np.asarray(b, float)
    n = len(x)
    rho = None
    if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        rho = round(float(spearmanr(x, y).statistic), 4)
    return {"n": n, "spearman": rho, "mae": round(float(np.abs(x - y).mean()), 4) if n else None}


def agreement(rows: list[Mapping[str, Any]], log: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Machine vs human (consensus of reviewers) and reviewer vs reviewer, per dimension.

    Returns ``{"machine_vs_human": {dim: {n, spearman, mae}}, "between_reviewers": {dim: {n, spearman,
    mae}}, "reviewers": {name: answers}}``; between reviewers pools every pair of reviewers over the
    items both answered.
    """
    machine, human = machine_scores(rows, log), human_consensus(log)
    answers = latest_answers(log)
    mvh = {}
    for d in ALL_DIMS:
        ids = [i for i in human if d in human[i] and d in machine.get(i, {})]
        mvh[d] = compare([machine[i][d] for i in ids], [human[i][d] for i in ids])
    by_item: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (item, who), vals in answers.items():
        by_item[item][who] = vals
    between = {}
    for d in ALL_DIMS:
        a, b = [], []
        for per in by_item.values():
            for w1, w2 in itertools.combinations(sorted(per), 2):
                if d in per[w1] and d in per[w2]:
                    a.append(per[w1][d])
                    b.append(per[w2][d])
        between[d] = compare(a, b)
    counts: dict[str, int] = defaultdict(int)
    for _, who in answers:
        counts[who] += 1
    return {"machine_vs_human": mvh, "between_reviewers": between, "reviewers": dict(sorted(counts.items()))}


def fit_curve(x: list[float], y: list[float], kind: str) -> dict[str, list[float]]:
    """A monotone map machine -> human as knots ``{"x": [...], "y": [...]}`` (apply with ``apply_curve``)."""
    if kind not in FIT_KINDS:
        raise ValueError(f"unknown fit {kind!r}; known: {', '.join(FIT_KINDS)}")
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 2 or np.ptp(xs) == 0:
        raise ValueError(f"a {kind} fit needs reviews of at least 2 items with different machine scores, got {len(xs)}")
    if kind == "linear":
        slope, icpt = np.polyfit(xs, ys, 1)
        return {"x": [0.0, 5.0], "y": [round(float(icpt), 6), round(float(icpt + 5 * slope), 6)]}
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=5.0, increasing=True, out_of_bounds="clip").fit(xs, ys)
    # sklearn predicts by linear interpolation between these knots, clipped outside: np.interp does the same
    return {"x": [float(v) for v in iso.X_thresholds_], "y": [round(float(v), 6) for v in iso.y_thresholds_]}


def apply_curve(values: np.ndarray | float, curve: Mapping[str, list[float]]) -> np.ndarray:
    """The corrected scores, clipped to [0, 5]."""
    return np.clip(np.interp(np.asarray(values, float), curve["x"], curve["y"]), 0.0, 5.0)


def fit_correction(rows: list[Mapping[str, Any]], log: list[Mapping[str, Any]], kind: str = "isotonic") -> dict[str, dict[str, list[float]]]:
    """One curve per dimension (alignment, realism, fidelity), fitted on the reviewed items' machine
    scores against the reviewers' consensus. A dimension the machine does not score (the geometric
    scorer has no alignment) or whose reviewed machine scores are all equal gets no curve; ValueError
    when no dimension can be fitted."""
    machine, human = machine_scores(rows, log), human_consensus(log)
    out, why = {}, []
    for d in DIMS:
        ids = sorted(i for i in human if d in human[i] and d in machine.get(i, {}))
        x = [machine[i][d] for i in ids]
        if len(ids) < 2 or max(x) == min(x):
            why.append(f"{d}: {len(ids)} reviewed items with a machine score, {len(set(x))} distinct")
            continue
        out[d] = fit_curve(x, [human[i][d] for i in ids], kind)
    if not out:
        raise ValueError("no dimension can be fitted (needs >= 2 reviewed items with different machine scores): " + "; ".join(why))
    return out
