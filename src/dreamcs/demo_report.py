"""``report.html`` of ``dreamcs quickstart``: one self-contained page (images inlined as base64).

Sections: the mesh-core table, the dataset statistics, RewardCS on the test split with its training
curves and embedding plot, and generation: the baseline-vs-RewardCS table (mean +/- std over the
prompts and seeds), the paired difference with bootstrap intervals, turntables side by side per prompt, and the loss and reward curves of each run.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamcs.utils import atomic_write_text, read_jsonl


def fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def html_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def stats_summary(st: dict[str, Any]) -> str:
    """The dataset's ``stats.json`` as a short paragraph and a per-split / per-source HTML table."""
    if not st:
        return "<p>not built</p>"

    def share(b: dict[str, Any]) -> str:
        p = b.get("preferred_share")
        return "-" if p is None else f"{100 * p:.0f}% / {100 - 100 * p:.0f}%"

    lead = (f"<p>{st['items']} scored items from {st.get('objects', '?')} objects: {st['preferred']} preferred, "
            f"{st['dispreferred']} dispreferred, {st['middle_left_out']} in the middle band (left out); "
            f"preferred / dispreferred {share(st)} (the paper's 3D-MeshPref: 47% / 53%); "
            f"mean overall score {fmt(st.get('mean_overall'))}; {st.get('failures', 0)} failures.</p>")
    rows = [
        {"group": f"{kind} {name}", "items": b["items"], "preferred": b["preferred"], "dispreferred": b["dispreferred"],
         "left out": b["middle_left_out"], "preferred / dispreferred": share(b), "mean overall": b.get("mean_overall")}
        for kind, key in (("split", "per_split"), ("source", "per_source"))
        for name, b in (st.get(key) or {}).items()
    ]
    return lead + html_table(rows)


def _img(png: bytes, alt: str = "") -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reward_curves_png(reward_run: Path) -> bytes | None:
    """The reward model's training curves (loss, MSE, D_CS against step), or None without metrics."""
    rows = [r for r in read_jsonl(reward_run / "metrics.jsonl") if "step" in r]
    keys = [k for k in ("loss", "loss_mse", "d_cs") if any(k in r for r in rows)]
    if not rows or not keys:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        pts = [(r["step"], r[k]) for r in rows if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    return _figure_png(fig)


def _smooth(values: list[float], k: int = 9) -> list[float]:
    """Running mean over k steps (SDS losses are very noisy step to step)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= k:
            acc -= values[i - k]
        out.append(acc / min(i + 1, k))
    return out


def generation_curves_png(runs: Sequence[dict[str, Any]]) -> bytes | None:
    """Per run: the SDS loss (running mean) and, where logged, the reward r and alpha(t) r."""
    series = []
    for run in runs:
        rows = read_jsonl(Path(run["dir"]) / "metrics.jsonl")
        if rows:
            series.append((f"{run['prompt']} ({run['variant']}, s{run['seed']})", rows))
    if not series:
        return None
    plt = _pyplot()
    fig, (ax_loss, ax_r) = plt.subplots(1, 2, figsize=(11, 3.4))
    for label, rows in series:
        pts = [(r["step"], r["loss_sds"]) for r in rows if r.get("loss_sds") is not None]
        if pts:
            ax_loss.plot([p[0] for p in pts], _smooth([p[1] for p in pts]), label=label, lw=1)
        rw = [(r["step"], r["reward"]) for r in rows if r.get("reward") is not None]
        if rw:
            ax_r.plot([p[0] for p in rw], [p[1] for p in rw], marker=".", label=label, lw=1)
    ax_loss.set_title("SDS loss (running mean of 9 steps)")
    ax_r.set_title("reward r during guided runs")
    for ax in (ax_loss, ax_r):
        ax.set_xlabel("step")
    ax_loss.legend(fontsize=6)
    fig.tight_layout()
    return _figure_png(fig)


def _paired_section(cmp: dict[str, Any]) -> list[str]:
    """The paired difference B - A (``evaluate.compare``) as a paragraph and a table."""
    from dreamcs.evaluate.compare import display_rows

    a, b, s = cmp["a"], cmp["b"], cmp["settings"]
    per_prompt = [r["pairs"] for res in cmp["metrics"].values() for r in res["per_prompt"]]
    text = (f"<h3>Paired difference: {html.escape(b)} - {html.escape(a)}</h3><p>The same prompt and seed "
            f"generated both ways (`dreamcs evaluate compare`): per prompt the mean difference over seeds with "
            f"a {100 * s['confidence']:g}% percentile bootstrap interval ({s['resamples']:,} resamples of the "
            f"seeds), and over all prompts the mean of the prompt means with a hierarchical bootstrap "
            f"(prompts resampled, then seeds). The arrow gives the better direction (↓: lower is better, so a "
            f"negative difference favours {html.escape(b)}); a verdict needs the interval to exclude 0.")
    if per_prompt and max(per_prompt) < 2:
        n = len(next(iter(cmp["metrics"].values()))["per_prompt"])
        text += (f" With one seed per prompt there is no per-prompt interval, and the pooled one only "
                 f"resamples {n} prompt(s): read it as rough (more seeds: <code>seeds=[0,1,2,3,4]</code>).")
    return [text + "</p>", html_table(display_rows(cmp))]


def _generation_section(gen: dict[str, Any]) -> list[str]:
    if not gen or not gen.get("runs"):
        return ["<p>not run</p>"]
    from dreamcs.evaluate.tables import html_table as html_metrics_table

    parts = []
    if gen.get("table"):
        parts.append("<p>Final meshes of both variants measured the same way (`dreamcs evaluate janus`): "
                     "mean +/- std over prompts and seeds. The reward column scores every mesh with the "
                     "demo's RewardCS, which also guided the +RewardCS runs, so it favours them by "
                     "construction; Chamfer and normal consistency to the prompt's ground-truth mesh, the "
                     "Janus score (and the Janus ratio: the share of meshes the Janus decision flags), floaters and "
                     "holes are independent of it.</p>")
        parts.append(html_metrics_table(gen["table"]))
    if gen.get("compare"):
        parts += _paired_section(gen["compare"])
    variants = list(dict.fromkeys(r["variant"] for r in gen["runs"]))
    cells: dict[tuple[str, int], dict[str, Path]] = {}
    for r in gen["runs"]:
        cells.setdefault((r["prompt"], r["seed"]), {})[r["variant"]] = Path(r["dir"]) / "turntable.png"
    rows = ["<table><tr><th>prompt</th>" + "".join(f"<th>{html.escape(v)}</th>" for v in variants) + "</tr>"]
    for (prompt, seed), by_variant in cells.items():
        tds = "".join(f"<td>{_img(p.read_bytes(), v) if (p := by_variant.get(v)) and p.exists() else '-'}</td>"
                      for v in variants)
        rows.append(f"<tr><td>{html.escape(prompt)}<br>seed {seed}</td>{tds}</tr>")
    parts.append("<h3>Turntables</h3>" + "".join(rows) + "</table>")
    curves = generation_curves_png(gen["runs"])
    if curves:
        parts.append("<h3>Loss and reward curves</h3>" + _img(curves, "generation curves"))
    return parts


def write_report(out: Path, sections: dict[str, Any], reward_run: Path) -> Path:
    """``out/report.html`` from the quickstart's sections (``mesh``, ``stats``, ``reward_eval``,
    ``generate``, ``seconds``)."""
    parts = ["<html><head><meta charset='utf-8'><title>dreamcs demo</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}img{max-width:100%}"
             "</style></head><body>",
             "<h1>dreamcs demo</h1>", f"<p>Total time: {sections['seconds']} s</p>",
             "<h2>1. Mesh core</h2>", html_table(sections["mesh"]),
             "<h2>2. 3D-MeshPref dataset</h2>", stats_summary(sections["stats"]),
             "<h2>3. RewardCS on the test split</h2>",
             html_table([sections["reward_eval"]] if sections["reward_eval"] else [])]
    curves = reward_curves_png(reward_run)
    if curves:
        parts.append("<h3>Training curves</h3>" + _img(curves, "reward training curves"))
    emb = reward_run / "embeddings.png"
    if emb.exists():
        parts.append("<h3>Test embeddings</h3>" + _img(emb.read_bytes(), "test embeddings"))
    parts.append("<h2>4. Generation: SDS baseline against SDS + RewardCS</h2>")
    parts += _generation_section(sections.get("generate") or {})
    parts.append("</body></html>")
    return atomic_write_text(out / "report.html", "\n".join(parts))
