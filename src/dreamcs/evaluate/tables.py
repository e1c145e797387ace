"""Aggregation and the paper-layout table (rows: variants, columns: metrics, cells: mean +/- std),
written as Markdown, CSV and JSON; and the contact sheet of every asset."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.utils import atomic_write_bytes, atomic_write_text

#: metric key -> (column title, higher is better); the order of the table's columns.
METRICS: dict[str, tuple[str, bool]] = {
    "clip_score": ("CP", True),
    "ga": ("GA", True),
    "chamfer": ("Chamfer", False),
    "normal_consistency": ("NC", True),
    "janus_score": ("Janus", False),
    "janus_excess": ("Janus excess", False),
    "floaters": ("Floaters", False),
    "holes": ("Holes", False),
    "watertight": ("Watertight", True),
    "nonmanifold": ("Non-manifold", False),
    "reward": ("Reward", True),
    "judge_alignment": ("Judge: alignment", True),
    "judge_plausibility": ("Judge: plausibility", True),
    "judge_consistency": ("Judge: consistency", True),
}


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def aggregate(records: Sequence[dict[str, Any]], group: str = "variant",
              metrics: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{group value: {metric: {mean, std, n}}} over records; std is the population std (ddof 0).

    Missing and non-finite values are left out (``n`` says how many counted); a metric no record of
    a group has is absent for that group.
    """
    metrics = list(metrics or METRICS)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for rec in records:
        out.setdefault(str(rec.get(group)), {})
    for name in out:
        rows = [r for r in records if str(r.get(group)) == name]
        for m in metrics:
            vals = _finite([r.get(m) for r in rows])
            if vals:
                out[name][m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}
    return out


def _columns(agg: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    present = {m for row in agg.values() for m in row}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def _cell(stat: dict[str, float] | None, digits: int) -> str:
    if not stat:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(agg: dict[str, dict[str, dict[str, float]]], first: str = "Method", digits: int = 3) -> str:
    """A Markdown table: one row per group, one column per metric (arrow = the better direction)."""
    cols = _columns(agg)
    head = [first] + [f"{METRICS.get(c, (c, True))[0]} {'↑' if METRICS.get(c, (c, True))[1] else '↓'}" for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in agg.items():
        lines.append("| " + " | ".join([name] + [_cell(row.get(c), digits) for c in cols]) + " |")
    return "\n".join(lines) + "\n"


def csv_table(agg: dict[str, dict[str, dict[str, float]]], first: str = "variant") -> str:
    """CSV with numbers: ``variant, <metric>_mean, <metric>_std, <metric>_n, ...``."""
    cols = _columns(agg)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([first] + [f"{c}_{s}" for c in cols for s in ("mean", "std", "n")])
    for name, row in agg.items():
        w.writerow([name] + [("" if c not in row else row[c][s]) for c in cols for s in ("mean", "std", "n")])
    return buf.getvalue()


def write_tables(out: str | Path, agg: dict[str, dict[str, dict[str, float]]], stem: str = "table",
                 extra: dict[str, Any] | None = None, first: str = "Method") -> dict[str, Path]:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json`` (the aggregate plus ``extra``) into ``out``."""
    out = Path(out)
    paths = {
        "md": atomic_write_text(out / f"{stem}.md", markdown_table(agg, first)),
        "csv": atomic_write_text(out / f"{stem}.csv", csv_table(agg, "variant")),
        "json": atomic_write_text(out / f"{stem}.json", json.dumps({"table": agg, **(extra or {})}, indent=2,
                                                                   default=_json_default) + "\n"),
    }
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def contact_sheet(cells: dict[tuple[str, int], dict[str, np.ndarray]], variants: Sequence[str], path: str | Path,
                  cell_width: int = 512) -> Path:
    """One PNG for side-by-side review: a row per (prompt, seed) under a label line, a column per
    variant (in ``variants`` order, named in a header), each cell that asset's turntable strip
    (H, W, 3) uint8 scaled down to at most ``cell_width``; a missing asset leaves its cell blank."""
    from PIL import Image, ImageDraw

    if not cells:
        raise ValueError("contact sheet: no assets")
    label_h, pad = 14, 4
    scaled: dict[tuple[str, int], dict[str, Image.Image]] = {}
    for key, row in cells.items():
        scaled[key] = {}
        for v, img in row.items():
            im = Image.fromarray(np.ascontiguousarray(img))
            if im.width > cell_width:  # scale down only: a small turntable stays sharp
                im = im.resize((cell_width, max(1, round(im.height * cell_width / im.width))))
            scaled[key][v] = im
    cell_width = max(im.width for row in scaled.values() for im in row.values())
    heights = {k: max(im.height for im in row.values()) for k, row in scaled.items()}
    width = max(len(variants) * (cell_width + pad) + pad, 480)  # room for the prompt labels
    height = label_h + pad + sum(h + label_h + pad for h in heights.values()) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, v in enumerate(variants):
        draw.text((pad + j * (cell_width + pad), pad), v, fill=(0, 0, 160))
    y = label_h + 2 * pad
    for (prompt, seed), row in scaled.items():
        draw.text((pad, y), f"{prompt} (seed {seed})"[:200], fill=(0, 0, 0))
        for j, v in enumerate(variants):
            if v in row:
                sheet.paste(row[v], (pad + j * (cell_width + pad), y + label_h))
        y += heights[(prompt, seed)] + label_h + pad
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
