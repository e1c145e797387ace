"""Writing reviews and fitted corrections into a dataset: ``calibration.jsonl`` first, then the table.

Every answer is appended (and fsynced) to ``DATASET/calibration.jsonl`` before ``items.parquet``,
the split files and ``stats.json`` are rewritten atomically, so a crash between the two loses
nothing: the next rebuild (or ``calibrate``) re-applies the log. A web-app answer record holds
``id``, ``reviewer``, ``by`` (``reviewer:NAME``), ``time`` (UTC ISO 8601), ``human`` (this
reviewer's three scores), ``applied`` (what the row got: the mean over every reviewer's last answer
for the item, which a rebuild re-applies), ``machine`` (the scorer's scores, for the agreement
figures), ``before`` and ``after``.
A fit record holds ``fit`` (isotonic|linear), the per-dimension ``correction`` curves, the
``agreement`` it was fitted on and, in ``machine``, the machine scores of every row it changed (so
that a later fit starts again from the machine's scores, not from the previous correction).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.data.review.agreement import (
    DIMS,
    agreement,
    apply_curve,
    fit_correction,
    latest_answers,
    machine_scores,
)
from dreamcs.data.store import SCORE_COLS, label_for, stats, write_table
from dreamcs.utils import append_jsonl, atomic_write_text, read_jsonl

REVIEW_LOG = "calibration.jsonl"  # the same file as dreamcs.data.calibrate.REVIEW_LOG


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def thresholds(root: str | os.PathLike) -> tuple[float, float]:
    """(preferred_min, dispreferred_max) of the build, from ``DATASET/config.yaml`` (4.0, 3.5 without one)."""
    import yaml

    p = Path(root) / "config.yaml"
    cfg = (yaml.safe_load(p.read_text(encoding="utf-8")) or {}) if p.is_file() else {}
    return float(cfg.get("preferred_min", 4.0)), float(cfg.get("dispreferred_max", 3.5))


def read_log(root: str | os.PathLike) -> list[dict[str, Any]]:
    p = Path(root) / REVIEW_LOG
    return read_jsonl(p) if p.is_file() else []


def save_rows(root: str | os.PathLike, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rewrite items.parquet (+ split files, card) and stats.json from ``rows``; returns the stats."""
    root = Path(root)
    write_table(rows, root / "items.parquet")
    fails = root / "failures.jsonl"
    n_fail = sum(1 for line in open(fails, encoding="utf-8") if line.strip()) if fails.exists() else 0
    st = stats(rows, n_fail)
    atomic_write_text(root / "stats.json", json.dumps(st, indent=2) + "\n")
    return st


def check_scores(vals: dict[str, Any]) -> dict[str, float]:
    """The three scores of an answer as floats in [0, 5]; ValueError naming the bad one."""
    out = {}
    for k in DIMS:
        if k not in vals:
            raise ValueError(f"answer lacks {k!r} (needs {', '.join(DIMS)})")
        try:
            v = float(vals[k])
        except (TypeError, ValueError):
            raise ValueError(f"{k} is not a number: {vals[k]!r}") from None
        if not 0.0 <= v <= 5.0 or v != v:
            raise ValueError(f"{k} = {v} is outside [0, 5]")
        out[k] = v
    return out


def record_answer(root: str | os.PathLike, rows: list[dict[str, Any]], item_id: str, vals: dict[str, Any],
                  reviewer: str, log: list[dict[str, Any]] | None = None, save: bool = True) -> dict[str, Any]:
    """Apply one reviewer's three scores to ``item_id``: log it, relabel, rewrite the table.

    ``rows`` (the whole table) is changed in place; ``log`` (the records read so far) is extended.
    ``save=False`` leaves the table rewrite to the caller (the web app batches it: a 30k-row table
    takes over a second to rewrite). Returns the log record.
    """
    from dreamcs.data.calibrate import _apply_one

    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is needed")
    human = check_scores(vals)
    row = next((r for r in rows if r["id"] == item_id), None)
    if row is None:
        raise KeyError(f"unknown item id {item_id!r}")
    log = read_log(root) if log is None else log
    machine = machine_scores([row], log).get(item_id, {})
    before = {c: row.get(c) for c in (*SCORE_COLS, "label", "provenance", "score_source")}
    # several reviewers: the row gets the mean of each reviewer's last answer (this one included)
    others = {who: v for (i, who), v in latest_answers(log).items() if i == item_id and who != reviewer and all(d in v for d in DIMS)}
    applied = {d: round(float(np.mean([human[d], *(v[d] for v in others.values())])), 6) for d in DIMS}
    _apply_one(row, applied, f"reviewer:{reviewer}" if not others else f"reviewers:{'+'.join(sorted([reviewer, *others]))}")
    row["label"] = label_for(row["overall"], *thresholds(root))
    rec = {"id": item_id, "reviewer": reviewer, "by": f"reviewer:{reviewer}", "time": now_iso(), "human": human,
           "applied": applied, "machine": machine, "before": before, "after": {c: row[c] for c in (*SCORE_COLS, "label", "score_source")}}
    append_jsonl(Path(root) / REVIEW_LOG, rec)  # the log first: a crash before the table is rewritten loses nothing
    log.append(rec)
    if save:
        save_rows(root, rows)
    return rec


def reconcile(root: str | os.PathLike, rows: list[dict[str, Any]], log: list[dict[str, Any]]) -> bool:
    """Bring a table up to its log (after a crash between a log append and the table rewrite):
    re-apply the reviews and the last fit, relabel, rewrite when anything changed. Returns whether it did."""
    import copy

    from dreamcs.data.calibrate import apply_reviews

    before = copy.deepcopy(rows)
    apply_reviews(rows, log)
    pmin, dmax = thresholds(root)
    for r in rows:
        r["label"] = label_for(r["overall"], pmin, dmax)
    if rows == before:
        return False
    save_rows(root, rows)
    return True


def apply_fit(rows: list[dict[str, Any]], rec: dict[str, Any], skip: set[str] | frozenset[str] = frozenset()) -> int:
    """Put a fit record's correction on every machine-scored row not in ``skip`` (labels left to the
    caller); fills ``rec["machine"]`` with what it replaced. Returns the number of rows changed."""
    curves, kind = rec["correction"], rec["fit"]
    machine = rec.setdefault("machine", {})
    n = 0
    for r in rows:
        if r["id"] in skip or (r.get("score_source") or "machine") != "machine":
            continue
        have = [d for d in DIMS if r.get(d) is not None]
        if not any(d in curves for d in have):
            continue
        machine[r["id"]] = {c: r.get(c) for c in SCORE_COLS} | {"provenance": r.get("provenance")}
        if r.get("machine_overall") is None:
            r["machine_overall"] = r["overall"]
        for d in have:
            if d in curves:
                r[d] = round(float(apply_curve(r[d], curves[d])), 6)
        # overall as the scorers make it: the mean of the dimensions the row has
        r["overall"] = round(float(np.mean([r[d] for d in have])), 6)
        r["score_source"] = "calibrated"
        r["provenance"] = f"fit:{kind}:{rec.get('n_items', 0)} reviewed"
        n += 1
    return n


def fit_and_apply(root: str | os.PathLike, kind: str = "isotonic") -> dict[str, Any]:
    """Fit a correction per dimension on the reviews of ``root``, apply it to the unreviewed
    machine-scored items (``score_source=calibrated``), relabel every row, log the fit, rewrite.

    Returns ``{"agreement", "correction", "changed", "stats", "fitted"}`` (fitted: the dimensions
    that got a curve; see ``agreement.fit_correction``).
    """
    from dreamcs.data.calibrate import apply_reviews
    from dreamcs.data.review.agreement import human_consensus
    from dreamcs.data.store import read_table

    rows, log = read_table(root), read_log(root)
    apply_reviews(rows, [rec for rec in log if "fit" not in rec])  # answers the table may not hold yet
    reviewed = set(human_consensus(log)) & {r["id"] for r in rows}
    if not reviewed:
        raise ValueError(f"{Path(root) / REVIEW_LOG}: no human reviews to fit on; review items first (`dreamcs data review`)")
    # rows a previous fit changed go back to the machine's scores, so fits never compound
    previous = {i: m for rec in log if "fit" in rec for i, m in (rec.get("machine") or {}).items()}
    for r in rows:
        if str(r.get("provenance") or "").startswith("fit:") and r["id"] in previous:
            m = previous[r["id"]]
            r.update({c: m.get(c) for c in SCORE_COLS})
            r["provenance"], r["score_source"] = m.get("provenance"), "machine"
    ag = agreement(rows, log)
    curves = fit_correction(rows, log, kind)
    rec: dict[str, Any] = {"fit": kind, "by": f"fit:{kind}", "time": now_iso(),
                           "n_items": len(reviewed), "correction": curves, "agreement": ag}
    changed = apply_fit(rows, rec)
    pmin, dmax = thresholds(root)
    for r in rows:
        r["label"] = label_for(r["overall"], pmin, dmax)
    append_jsonl(Path(root) / REVIEW_LOG, rec)
    st = save_rows(root, rows)
    return {"agreement": ag, "correction": curves, "changed": changed, "stats": st, "fitted": sorted(curves)}
