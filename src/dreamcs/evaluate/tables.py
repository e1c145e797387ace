"""Aggregation and the paper-layout table (rows: (recipe, variant), columns: metrics, cells: mean
+/- std), written as Markdown, CSV and JSON and as an HTML table; and the contact sheet of every asset.

CP is the paper's: the mean CLIP cosine (0.22-0.29 in the paper), not 100 x cosine. The Janus
ratio (share of assets the Janus decision flags) stands beside the continuous Janus score."""

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
    "image_reward": ("IR", True),
    "vision_reward": ("VR", True),
    "ga": ("GA", True),
    "chamfer": ("Chamfer", False),
    "normal_consistency": ("NC", True),
    "janus": ("Janus ratio", False),
    "janus_score": ("Janus score", False),
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


def recipe_of(config: Any) -> str | None:
    """A study's recipe name from its generation config (a preset name or a YAML path): the stem."""
    if not config:
        return None
    name = str(config).replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".yaml") else name[:-4] if name.endswith(".yml") else name


def group_labels(records: Sequence[dict[str, Any]]) -> list[str]:
    """The table row of each record: its ``variant``, as ``recipe / variant`` when the records hold
    more than one recipe (two backbones' baselines must not pool into one row)."""
    recipes = {r.get("recipe") for r in records}
    if len(recipes) <= 1:
        return [str(r.get("variant")) for r in records]
    return [f"{r.get('recipe') or '?'} / {r.get('variant')}" for r in records]


def aggregate(records: Sequence[dict[str, Any]], group: str | None = None,
              metrics: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{group value: {metric: {mean, std, n}}} over records; std is the population std (ddof 0).

    Grouped by ``group`` (a record key) or, by default, by (recipe, variant) (``group_labels``).
    Missing and non-finite values are left out (``n`` says how many counted); a metric no record of
    a group has is absent for that group. A 0/1 metric's mean is a ratio (the Janus ratio).
    """
    metrics = list(metrics or METRICS)
    labels = group_labels(records) if group is None else [str(r.get(group)) for r in records]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in labels:
        out.setdefault(name, {})
    for name in out:
        rows = [r for r, lab in zip(records, labels, strict=True) if lab == name]
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


def html_table(agg: dict[str, dict[str, dict[str, float]]], first: str = "Method", digits: int = 3) -> str:
    """The same table as ``markdown_table`` as an HTML ``<table>`` (escaped)."""
    import html

    cols = _columns(agg)
    head = [first] + [f"{METRICS.get(c, (c, True))[0]} {'↑' if METRICS.get(c, (c, True))[1] else '↓'}" for c in cols]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for name, row in agg.items():
        rows.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in [name] + [_cell(row.get(c), digits) for c in cols])
                    + "</tr>")
    return "<table class='metrics'>" + "".join(rows) + "</table>"


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
