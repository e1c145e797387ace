"""How good is the teacher? The geometric scorer's ROC-AUC on an evaluation set, per defect kind.

    res = teacher_eval("VAL")                     # a set written by dreamcs.data.validation
    res["auc"], res["per_kind"]["holes"]["auc"]

Every item of the set is prepared as the build prepares it (normalise, simplify to the set's
``max_faces``) and scored by the ``geometric`` scorer. The AUC of a kind is the probability that a
random clean item scores higher (``overall``) than a random item of that kind (ties count half);
``auc`` is clean against every damaged or wrong-prompt item. ``label_agreement`` is the share of a
kind's items that the scorer labels as the set does (clean: overall >= 4, others: overall <= 3.5).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.data.scorers.geometric import GeometricScorerConfig


def roc_auc(pos: list[float] | np.ndarray, neg: list[float] | np.ndarray) -> float | None:
    """P(score of a random positive > score of a random negative), ties half; None if a side is empty."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        return None
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _score_rows(rows: list[dict[str, Any]], cfg: GeometricScorerConfig, max_faces: int) -> list[dict[str, Any]]:
    import torch

    from dreamcs.data.build import BuildConfig, prepare_mesh
    from dreamcs.data.scorers.geometric import GeometricScorer
    from dreamcs.data.sources import SourceItem

    torch.set_num_threads(1)
    scorer = GeometricScorer(cfg)
    bcfg = BuildConfig(max_faces=max_faces)
    out = []
    for r in rows:
        item = SourceItem(id=r["id"], path=r["path"], prompt=r["prompt"], source=r["source"], object_id=r["object_id"], caption=r["caption"])
        s = scorer.score(prepare_mesh(item, bcfg), r["prompt"], caption=r["caption"])
        out.append({
            "id": r["id"], "kind": r["defect"] or "clean", "severity": r["severity"], "label": r["label"],
            "alignment": s.alignment, "realism": s.realism, "fidelity": s.fidelity, "overall": s.overall(),
            "figures": s.details.get("figures", {}),
        })
    return out


def score_eval_set(root: str | os.PathLike, cfg: GeometricScorerConfig | None = None, workers: int = 1) -> list[dict[str, Any]]:
    """Per-item scores and figures of the geometric scorer on the set at ``root``."""
    from dreamcs.config import load_config
    from dreamcs.data.build import BuildConfig
    from dreamcs.data.validation import read_eval_manifest

    cfg = cfg or GeometricScorerConfig()
    rows = read_eval_manifest(root)
    cfg_path = Path(root) / "config.yaml"
    max_faces = load_config(BuildConfig, cfg_path).max_faces if cfg_path.is_file() else BuildConfig().max_faces
    if workers <= 1:
        return _score_rows(rows, cfg, max_faces)
    chunks = [rows[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_score_rows, chunks, [cfg] * workers, [max_faces] * workers))
    by_id = {r["id"]: r for part in parts for r in part}
    return [by_id[r["id"]] for r in rows]


def summarize(scored: list[dict[str, Any]], preferred_min: float = 4.0, dispreferred_max: float = 3.5) -> dict[str, Any]:
    """The overall and per-kind AUC, mean overall score and label agreement of scored items."""
    clean = [r["overall"] for r in scored if r["kind"] == "clean"]
    kinds = sorted({r["kind"] for r in scored} - {"clean"})
    per_kind: dict[str, Any] = {}
    for kind in ["clean", *kinds]:
        vals = [r["overall"] for r in scored if r["kind"] == kind]
        agree = [v >= preferred_min for v in vals] if kind == "clean" else [v <= dispreferred_max for v in vals]
        per_kind[kind] = {
            "n": len(vals), "auc": None if kind == "clean" else roc_auc(clean, vals),
            "mean_overall": float(np.mean(vals)) if vals else float("nan"),
            "label_agreement": float(np.mean(agree)) if agree else float("nan"),
        }
    neg = [r["overall"] for r in scored if r["kind"] != "clean"]
    return {"auc": roc_auc(clean, neg), "n_items": len(scored), "per_kind": per_kind, "halves": half_aucs(scored)}


def half_aucs(scored: list[dict[str, Any]], key: str = "overall") -> dict[str, float | None]:
    """ROC-AUC (clean against the rest) within each half of the held-out objects
    (``dreamcs.data.validation.heldout_half``: A develops, B reports); {} for a set of other objects."""
    from dreamcs.data.validation import heldout_half

    out: dict[str, float | None] = {}
    for half in ("A", "B"):
        rows = [r for r in scored if heldout_half(r.get("id", "")) == half]
        if rows:
            out[half] = roc_auc([r[key] for r in rows if r["label"] == 1], [r[key] for r in rows if r["label"] == 0])
    return out


def teacher_eval(
    root: str | os.PathLike, cfg: GeometricScorerConfig | None = None, workers: int = 1, out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Score the set at ``root`` and summarise (see the module docstring); ``out``: write it as JSON."""
    scored = score_eval_set(root, cfg, workers)
    res = summarize(scored)
    if out is not None:
        from dreamcs.utils import atomic_write_text

        atomic_write_text(Path(out), json.dumps({**res, "items": scored}, indent=1, default=float))
    return res
