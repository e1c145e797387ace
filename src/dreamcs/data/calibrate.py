"""Human calibration of a built dataset, and a review page to do it from.

``calibrate(dataset, "human.csv")`` reads a CSV with a header row, either
``id,alignment,realism,fidelity`` (overall becomes their mean) or ``id,overall`` (the scorer's
component scores are kept, overall is replaced). Each touched row gets ``provenance =
human:<csv file name>``, ``score_source`` ``human`` (all three scores from the reviewer) or
``calibrated`` (the reviewer's overall over the machine's component scores), and a new label from
the build's thresholds. ``dreamcs data review`` (``dreamcs.data.review``) is the interactive way to
write reviews; ``--fit isotonic|linear`` fits a per-dimension correction on them and applies it to
the unreviewed items (``dreamcs.data.review.records.fit_and_apply``). Human reviews are kept apart from machine scores: every review is appended
to ``DATASET/calibration.jsonl`` (who, the reviewer's values, before, after), the machine's overall
stays in ``machine_overall``, and ``dreamcs data build`` re-applies the log when it rebuilds the
table from its journal (``apply_reviews``), so a rebuild (``--retry-failed``, a resumed build)
never loses them. ``review(dataset, "review.html")`` writes a
self-contained page: multi-view thumbnails (rendered with ``dreamcs.render`` when it is installed,
else a small built-in orthographic splat) as base64 PNGs, the prompt, scores, label and provenance.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.data.store import SCORE_COLS, label_for, load_arrays, read_table, stats, write_table
from dreamcs.utils import append_jsonl, atomic_write_text


class CalibrationError(ValueError):
    """A bad overrides file; ``str()`` names the file (and line) and the reason."""


def _read_overrides(path: Path, known: set[str]) -> dict[str, dict[str, float]]:
    if not path.is_file():
        raise CalibrationError(f"{path}: overrides file not found")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if cols[:1] != ["id"] or set(cols[1:]) not in ({"alignment", "realism", "fidelity"}, {"overall"}):
            raise CalibrationError(f"{path}:1: header must be 'id,alignment,realism,fidelity' or 'id,overall', got {','.join(cols)!r}")
        out = {}
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if row["id"] not in known:
                raise CalibrationError(f"{path}:{lineno}: unknown item id {row['id']!r}")
            vals = {}
            for c in cols[1:]:
                try:
                    v = float(row[c])
                except ValueError:
                    raise CalibrationError(f"{path}:{lineno}: {c} is not a number: {row[c]!r}") from None
                if not 0.0 <= v <= 5.0:
                    raise CalibrationError(f"{path}:{lineno}: {c} = {v} is outside [0, 5]")
                vals[c] = v
            out[row["id"]] = vals
    return out


REVIEW_LOG = "calibration.jsonl"


def _apply_one(row: dict[str, Any], vals: dict[str, float], who: str) -> None:
    """Put a reviewer's values on a row (label left to the caller); the machine's overall is kept."""
    row.setdefault("machine_overall", row["overall"])
    if row.get("machine_overall") is None:
        row["machine_overall"] = row["overall"]
    if set(vals) == {"overall"}:
        row["overall"] = float(vals["overall"])
        row["score_source"] = "calibrated"
    else:
        row.update({k: float(vals[k]) for k in ("alignment", "realism", "fidelity")})
        row["overall"] = round(float(np.mean([vals["alignment"], vals["realism"], vals["fidelity"]])), 6)
        row["score_source"] = "human"
    row["provenance"] = who


def apply_reviews(rows: list[dict[str, Any]], log: list[dict[str, Any]]) -> int:
    """Re-apply the human reviews of a ``calibration.jsonl`` to freshly built rows, in log order
    (the last review of an item wins); reviews of items not in ``rows`` are ignored. Returns the
    number of rows touched. Labels are left to the caller (``finalize`` relabels every row)."""
    by_id = {r["id"]: r for r in rows}
    touched = set()
    fit = None
    for rec in log:
        if "fit" in rec:  # a fitted correction (dreamcs.data.review.records): the last one wins
            fit = rec
            continue
        r = by_id.get(rec.get("id"))
        if r is None:
            continue
        # 'applied': what the row got (the web app's mean over reviewers); 'human': this reviewer's values
        vals = rec.get("applied") or rec.get("human")
        if vals is None:  # a log written before the reviewer's values were kept: its 'after' holds them
            after = rec.get("after") or {}
            vals = {k: after[k] for k in ("alignment", "realism", "fidelity") if after.get(k) is not None}
            if len(vals) != 3:
                vals = {"overall": after["overall"]}
        _apply_one(r, vals, str(rec.get("by") or "human"))
        touched.add(r["id"])
    if fit is not None:  # the unreviewed machine rows get the correction, as `calibrate --fit` gave them
        from dreamcs.data.review.records import apply_fit

        return len(touched) + apply_fit(rows, dict(fit, machine={}), skip=frozenset(touched))
    return len(touched)


def calibrate(dataset: str | os.PathLike, overrides: str | os.PathLike) -> tuple[int, dict[str, Any]]:
    """Apply human scores from ``overrides``; returns (rows changed, new stats)."""
    import yaml

    root, overrides = Path(dataset), Path(overrides)
    rows = read_table(root)
    cfg = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8")) or {}
    pmin, dmax = float(cfg.get("preferred_min", 4.0)), float(cfg.get("dispreferred_max", 3.5))
    new = _read_overrides(overrides, {r["id"] for r in rows})
    who = f"human:{overrides.name}"
    for r in rows:
        if r["id"] not in new:
            continue
        before = {c: r.get(c) for c in (*SCORE_COLS, "label", "provenance", "score_source")}
        _apply_one(r, new[r["id"]], who)
        r["label"] = label_for(r["overall"], pmin, dmax)
        append_jsonl(root / REVIEW_LOG, {"id": r["id"], "by": who, "human": new[r["id"]], "before": before,
                                         "after": {c: r[c] for c in (*SCORE_COLS, "label", "score_source")}})
    write_table(rows, root / "items.parquet")
    n_fail = sum(1 for line in open(root / "failures.jsonl", encoding="utf-8") if line.strip()) if (root / "failures.jsonl").exists() else 0
    st = stats(rows, n_fail)
    atomic_write_text(root / "stats.json", json.dumps(st, indent=2) + "\n")
    return len(new), st


def _splat(vertices: np.ndarray, faces: np.ndarray, n_views: int, res: int) -> np.ndarray:
    """Fallback thumbnails: face centres splatted orthographically with a z-buffer, shaded by normal."""
    tri = vertices[faces.reshape(-1, 3)]
    c = tri.mean(1)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    out = np.full((n_views, res, res, 3), 255, np.uint8)
    for k in range(n_views):
        a = 2 * np.pi * k / n_views
        rot = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
        p, nn = c @ rot.T, n @ rot.T
        px = np.clip(((p[:, 0] + 1.1) / 2.2 * (res - 1)).astype(int), 0, res - 1)
        py = np.clip(((1.1 - p[:, 1]) / 2.2 * (res - 1)).astype(int), 0, res - 1)
        order = np.argsort(p[:, 2])  # far to near: nearer faces overwrite
        shade = (60 + 180 * np.abs(nn[:, 2])).astype(np.uint8)
        for dx in (0, 1):
            for dy in (0, 1):
                out[k, np.clip(py[order] + dy, 0, res - 1), np.clip(px[order] + dx, 0, res - 1)] = shade[order, None]
    return out


def thumbnails(vertices: np.ndarray, faces: np.ndarray, n_views: int = 4, resolution: int = 96) -> tuple[np.ndarray, str]:
    """(N, H, W, 3) uint8 views and the renderer used (``dreamcs.render`` when importable)."""
    try:
        import torch

        from dreamcs.render import render_views
    except ImportError:
        return _splat(vertices, faces, n_views, resolution), "splat"
    imgs = render_views(torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces.reshape(-1, 3), dtype=torch.long), n_views=n_views, resolution=resolution)
    return np.asarray(imgs, dtype=np.uint8), "dreamcs.render"


def _png_b64(img: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    mpimg.imsave(buf, img, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def review(dataset: str | os.PathLike, out: str | os.PathLike, limit: int | None = None, n_views: int = 4) -> int:
    """Write the review page for ``dataset`` to ``out``; returns the number of items shown."""
    root = Path(dataset)
    rows = read_table(root)[: limit or None]
    lab = {1: "preferred", 0: "dispreferred", -1: "left out"}
    parts = []
    renderer = "none"
    for r in rows:
        v, f = load_arrays(root, r)
        imgs, renderer = thumbnails(v, f, n_views=n_views)
        pics = "".join(f'<img src="data:image/png;base64,{_png_b64(im)}" width="96">' for im in imgs)
        sc = " ".join(f"{c}={'-' if r[c] is None else f'{r[c]:.2f}'}" for c in SCORE_COLS)
        parts.append(
            f"<tr class='l{r['label']}'><td><code>{html.escape(r['id'])}</code><br>{html.escape(r['source'])} / {r['split']}</td>"
            f"<td>{pics}</td><td>{html.escape(r['prompt'])}</td><td>{sc}<br><b>{lab[r['label']]}</b><br>"
            f"<small>{html.escape(r.get('score_source') or 'machine')}: {html.escape(r['provenance'])}</small></td></tr>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>MeshPref review</title><style>"
        "body{font-family:sans-serif} td{border-bottom:1px solid #ddd;padding:4px;vertical-align:top}"
        ".l1{background:#eefbea}.l0{background:#fdecea}</style>"
        f"<h1>{html.escape(str(root))}</h1><p>{len(rows)} items; thumbnails by {renderer}. "
        "To correct scores, write a CSV <code>id,alignment,realism,fidelity</code> (or <code>id,overall</code>) "
        "and run <code>dreamcs data calibrate DATASET --overrides FILE.csv</code>.</p>"
        "<table><tr><th>item</th><th>views</th><th>prompt</th><th>scores</th></tr>" + "".join(parts) + "</table>"
    )
    atomic_write_text(out, page)
    return len(rows)
