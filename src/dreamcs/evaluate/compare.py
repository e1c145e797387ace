"""``evaluate compare``: variant B against variant A, paired by (prompt, seed), with bootstrap intervals.

Input: the per-asset records of ``evaluate janus`` (``janus.json``) or ``evaluate score``
(``assets.jsonl``): files, or folders holding them directly or in ``eval/`` (a study folder). The
records are grouped by (recipe, variant) as every evaluate table is (``tables.group_labels``); A
and B are two of those groups (by default, of exactly two: A the baseline, or the first seen).

For each metric and prompt, over the seeds both variants have, the paired difference ``B - A``:
its mean and a percentile bootstrap interval (seeds resampled); pooled over prompts, the mean of
the per-prompt means with a hierarchical bootstrap (prompts, then seeds within them; see
``evaluate.bootstrap``); and the share of prompts where B is better (the better direction of each
metric is that of ``tables.METRICS``: lower Chamfer, Janus, floaters and holes are better).
Assets without a partner are left out with a warning. Every interval draws from its own stream,
keyed by (seed, metric, prompt), so adding a prompt leaves the other prompts' intervals unchanged.

Output: ``compare.md`` (a table per metric: one row per prompt and a pooled row), ``compare.csv``
(the same rows, one per metric x prompt) and ``compare.json`` (everything, with the settings).
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dreamcs.evaluate.bootstrap import Interval, bootstrap_mean, hierarchical_bootstrap_mean
from dreamcs.evaluate.tables import METRICS, group_labels
from dreamcs.utils import atomic_write_text, read_jsonl

RESULT_FILES = ("janus.json", "assets.jsonl")
POOLED = "all prompts"
#: metrics that exist only when the benchmark had ground-truth meshes
NEEDS_GT = ("chamfer", "normal_consistency", "janus_excess")


@dataclass
class CompareConfig:
    """What ``compare_records`` computes."""

    metrics: list[str] = field(default_factory=lambda: ["chamfer", "janus", "floaters", "holes"])
    """Metrics to compare (keys of ``tables.METRICS``; the better direction comes from there)."""
    a: str | None = None
    """Group label of A (a variant, or ``recipe / variant`` when the records hold several recipes);
    None: of exactly two groups, the one whose variant is ``baseline``, else the first seen."""
    b: str | None = None
    """Group label of B; None: the other of the two groups."""
    resamples: int = 10_000
    """Bootstrap resamples per interval."""
    confidence: float = 0.95
    """Coverage of the percentile interval."""
    seed: int = 0
    """Seed of the bootstrap (with the metric and prompt: the same inputs give the same intervals)."""


def find_result_files(path: str | Path) -> list[Path]:
    """The record files a path stands for: itself, or ``janus.json`` / ``assets.jsonl`` in it or in its ``eval/``."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    for d in (p, p / "eval"):
        found = [d / f for f in RESULT_FILES if (d / f).is_file()]
        if found:
            return found
    raise FileNotFoundError(f"{p}: no {' or '.join(RESULT_FILES)} here or in {p / 'eval'}; "
                            "run `dreamcs evaluate janus` (or `evaluate score`) on it first")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Per-asset records of one ``janus.json`` (its ``assets``) or ``assets.jsonl``; each must have
    ``prompt``, ``seed`` and ``variant``."""
    p = Path(path)
    if p.suffix == ".jsonl":
        recs: Any = read_jsonl(p)
    else:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: invalid JSON at line {e.lineno}: {e.msg}") from None
        recs = data.get("assets") if isinstance(data, dict) else None
        if not isinstance(recs, list):
            raise ValueError(f"{p}: no 'assets' list; expected the janus.json of `dreamcs evaluate janus`")
    for i, r in enumerate(recs):
        if not isinstance(r, dict) or any(k not in r for k in ("prompt", "seed", "variant")):
            raise ValueError(f"{p}: asset record {i} lacks prompt, seed or variant")
    return recs


def load_records(paths: Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """Records of every path (``find_result_files``) and the files read. A run (study, run) found in
    several files is one asset whose metrics are joined (the later file wins a clash), so a study's
    ``janus.json`` and ``assets.jsonl`` together give Chamfer and CP side by side."""
    files = [f for p in paths for f in find_result_files(p)]
    merged: dict[Any, dict[str, Any]] = {}
    for f in files:
        for i, r in enumerate(read_records(f)):
            key = (r["study"], r["run"]) if "study" in r and "run" in r else (str(f), i)
            merged.setdefault(key, {}).update(r)
    return list(merged.values()), files


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _choose(labels: list[str], variants: dict[str, str], a: str | None, b: str | None) -> tuple[str, str]:
    """(A, B) among the group labels (``CompareConfig.a`` / ``.b``)."""
    for name, want in (("A", a), ("B", b)):
        if want is not None and want not in labels:
            raise ValueError(f"group {want!r} (for {name}) is not in the records; they hold {labels}")
    if a is None and b is None:
        if len(labels) != 2:
            raise ValueError(f"the records hold {len(labels)} group(s) {labels}; name the two to compare (--a, --b)")
        base = [g for g in labels if variants[g] == "baseline"]
        a = base[0] if len(base) == 1 else labels[0]
        b = next(g for g in labels if g != a)
    elif a is None or b is None:
        rest = [g for g in labels if g not in (a, b)]
        if len(rest) != 1:
            raise ValueError(f"the records hold {len(labels)} group(s) {labels}; name both to compare (--a, --b)")
        a, b = (rest[0], b) if a is None else (a, rest[0])
    if a == b:
        raise ValueError(f"A and B are the same group {a!r}")
    return a, b


def _by_key(records: list[dict[str, Any]], label: str) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        key = (str(r["prompt"]), int(r["seed"]))
        if key in out:
            raise ValueError(f"{label!r} has two assets for {key[0]!r} seed {key[1]}: "
                             f"{out[key].get('study')}/{out[key].get('run')} and {r.get('study')}/{r.get('run')}")
        out[key] = r
    return out


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode("utf-8")) for k in keys)])


def _verdict(iv: Interval, lower_better: bool, b: str, a: str) -> str:
    if iv.low is None or iv.high is None:
        return "no interval (one pair)"
    if iv.high < 0 or iv.low > 0:
        return f"{b if (iv.high < 0) == lower_better else a} better"
    return "no clear difference"


def compare_records(records: Sequence[dict[str, Any]], cfg: CompareConfig | None = None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compare B with A (module docstring); returns {"a", "b", "settings", "unpaired", "metrics"}.

    ``metrics[m]``: ``lower_is_better``, ``per_prompt`` and ``pooled`` rows (``prompt``, ``pairs``,
    ``a_mean``, ``b_mean``, ``diff`` = mean of B - A, ``ci_low``, ``ci_high``, ``verdict``),
    ``b_better`` / ``b_worse`` (prompts whose mean difference favours B / A), ``b_better_share``
    and ``dropped`` (pairs with a missing or non-finite value of m).
    """
    cfg = cfg or CompareConfig()
    if cfg.seed < 0 or cfg.resamples < 1 or not 0.0 < cfg.confidence < 1.0:
        raise ValueError(f"need seed >= 0, resamples >= 1 and 0 < confidence < 1; got seed {cfg.seed}, "
                         f"resamples {cfg.resamples}, confidence {cfg.confidence}")
    unknown = [m for m in cfg.metrics if m not in METRICS]
    if unknown or not cfg.metrics:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    if not records:
        raise ValueError("no asset records to compare")
    labels = group_labels(records)
    order = list(dict.fromkeys(labels))
    variants = {lab: str(r.get("variant")) for r, lab in zip(records, labels, strict=True)}
    a, b = _choose(order, variants, cfg.a, cfg.b)
    side = {g: _by_key([r for r, lab in zip(records, labels, strict=True) if lab == g], g) for g in (a, b)}
    paired = sorted(set(side[a]) & set(side[b]))
    unpaired = [{"group": g, "prompt": k[0], "seed": k[1]} for g, o in ((a, b), (b, a))
                for k in sorted(set(side[g]) - set(side[o]))]
    if not paired:
        raise ValueError(f"no (prompt, seed) is in both {a!r} ({len(side[a])} assets) and {b!r} "
                         f"({len(side[b])} assets); were they run on the same prompts and seeds?")
    if unpaired:
        shown = ", ".join(f"{u['group']} {u['prompt']!r} seed {u['seed']}" for u in unpaired[:5])
        log(f"warning: {len(unpaired)} asset(s) without a partner in the other variant are left out: {shown}"
            + (", ..." if len(unpaired) > 5 else ""))
    out: dict[str, Any] = {"a": a, "b": b, "settings": asdict(cfg), "unpaired": unpaired, "metrics": {}}
    for m in cfg.metrics:
        for g in (a, b):
            if not any(m in r for r in side[g].values()):
                hint = " (it needs ground-truth meshes: `evaluate janus --gt`)" if m in NEEDS_GT else ""
                raise ValueError(f"metric {m!r}: no asset of {g!r} has it{hint}")
        out["metrics"][m] = _compare_metric(m, paired, side[a], side[b], a, b, cfg, log)
    return out


def _compare_metric(m: str, paired: list[tuple[str, int]], sa: dict[tuple[str, int], dict[str, Any]],
                    sb: dict[tuple[str, int], dict[str, Any]], a: str, b: str, cfg: CompareConfig,
                    log: Callable[[str], None]) -> dict[str, Any]:
    lower = not METRICS[m][1]
    values: dict[str, list[tuple[float, float]]] = {}
    dropped = []
    for key in paired:
        va, vb = sa[key].get(m), sb[key].get(m)
        if _finite(va) and _finite(vb):
            values.setdefault(key[0], []).append((float(va), float(vb)))
        else:
            # inf (an empty mesh's Chamfer) is not JSON: kept as text
            dropped.append({"prompt": key[0], "seed": key[1], a: va if va is None or _finite(va) else str(va),
                            b: vb if vb is None or _finite(vb) else str(vb)})
    if dropped:
        log(f"warning: {m}: {len(dropped)} pair(s) with a missing or non-finite value are left out: "
            + ", ".join(f"{d['prompt']!r} seed {d['seed']}" for d in dropped[:5]) + (", ..." if len(dropped) > 5 else ""))
    if not values:
        raise ValueError(f"metric {m!r}: no pair has a finite value on both sides")
    kw = {"resamples": cfg.resamples, "confidence": cfg.confidence}
    rows, diffs = [], []
    for prompt, pairs in values.items():
        ab = np.asarray(pairs)  # (n, 2): A, B
        d = ab[:, 1] - ab[:, 0]
        diffs.append(d)
        iv = bootstrap_mean(d, _rng(cfg.seed, m, prompt), **kw)
        rows.append(_row(prompt, iv, ab[:, 0].mean(), ab[:, 1].mean(), lower, a, b))
    pooled_iv = hierarchical_bootstrap_mean(diffs, _rng(cfg.seed, m), **kw)
    pooled = _row(POOLED, pooled_iv, np.mean([r["a_mean"] for r in rows]), np.mean([r["b_mean"] for r in rows]),
                  lower, a, b)
    better = sum(1 for r in rows if (r["diff"] < 0 if lower else r["diff"] > 0))
    worse = sum(1 for r in rows if (r["diff"] > 0 if lower else r["diff"] < 0))
    return {"title": METRICS[m][0], "lower_is_better": lower, "per_prompt": rows, "pooled": pooled,
            "prompts": len(rows), "b_better": better, "b_worse": worse, "b_better_share": better / len(rows),
            "dropped": dropped}


def _row(prompt: str, iv: Interval, a_mean: float, b_mean: float, lower: bool, a: str, b: str) -> dict[str, Any]:
    return {"prompt": prompt, "pairs": iv.n, "a_mean": float(a_mean), "b_mean": float(b_mean), "diff": iv.mean,
            "ci_low": iv.low, "ci_high": iv.high, "verdict": _verdict(iv, lower, b, a)}


def comparison_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per metric x (prompt, then pooled): what compare.csv holds."""
    rows = []
    for m, res in result["metrics"].items():
        for level, r in [("prompt", r) for r in res["per_prompt"]] + [("pooled", res["pooled"])]:
            rows.append({"metric": m, "better": "lower" if res["lower_is_better"] else "higher", "level": level, **r})
    return rows


def num(v: float | None) -> str:
    """A table number: 4 significant digits, ``-`` for none."""
    return "-" if v is None else f"{v:.4g}"


def interval_text(r: dict[str, Any]) -> str:
    return "-" if r["ci_low"] is None else f"[{num(r['ci_low'])}, {num(r['ci_high'])}]"


def display_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """The comparison as rows of text for a console or HTML table: metric (with its better
    direction), prompt, pairs, A's and B's means, B - A, the interval and the verdict."""
    a, b = result["a"], result["b"]
    pct = f"{100 * result['settings']['confidence']:g}% interval"
    rows = []
    for res in result["metrics"].values():
        name = f"{res['title']} {'↓' if res['lower_is_better'] else '↑'}"
        for r in res["per_prompt"] + [res["pooled"]]:
            rows.append({"metric": name, "prompt": r["prompt"], "pairs": str(r["pairs"]), a: num(r["a_mean"]),
                         b: num(r["b_mean"]), "B - A": num(r["diff"]), pct: interval_text(r), "verdict": r["verdict"]})
    return rows


def markdown_comparison(result: dict[str, Any]) -> str:
    """``compare.md``: the method in two sentences, then per metric a table with a pooled last row."""
    a, b, s = result["a"], result["b"], result["settings"]
    pct = f"{100 * s['confidence']:g}%"
    lines = [f"# {b} (B) against {a} (A), paired by prompt and seed", "",
             f"Per prompt: the mean over the seeds both have of the paired difference B - A, with a {pct} "
             f"percentile bootstrap interval ({s['resamples']:,} resamples of the seeds, seed {s['seed']}). "
             f"Pooled: the mean of the per-prompt means, with a hierarchical bootstrap (prompts resampled, "
             f"then seeds within each). A verdict needs the interval to exclude 0.", ""]
    if result["unpaired"]:
        lines += [f"{len(result['unpaired'])} asset(s) without a partner were left out.", ""]
    for res in result["metrics"].values():
        lower = res["lower_is_better"]
        sign = "< 0" if lower else "> 0"
        lines += [f"## {res['title']} {'↓' if lower else '↑'}", "",
                  f"{'Lower' if lower else 'Higher'} is better: B - A {sign} favours {b}. {b} is better on "
                  f"{res['b_better']} of {res['prompts']} prompt(s) ({100 * res['b_better_share']:.0f}%), "
                  f"worse on {res['b_worse']}." + (f" {len(res['dropped'])} pair(s) without a finite value left out."
                                                   if res["dropped"] else ""), "",
                  f"| Prompt | Pairs | {a} | {b} | B - A | {pct} interval | Verdict |", "|---|---|---|---|---|---|---|"]
        for r in res["per_prompt"] + [res["pooled"]]:
            name = f"**{r['prompt']}**" if r is res["pooled"] else r["prompt"].replace("|", "\\|")
            lines.append(f"| {name} | {r['pairs']} | {num(r['a_mean'])} | {num(r['b_mean'])} | {num(r['diff'])} | "
                         f"{interval_text(r)} | {r['verdict']} |")
        lines.append("")
    return "\n".join(lines)


def csv_comparison(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    rows = comparison_rows(result)
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def write_comparison(result: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv`` and ``compare.json`` into ``out`` (atomically)."""
    out = Path(out)
    return {"md": atomic_write_text(out / "compare.md", markdown_comparison(result)),
            "csv": atomic_write_text(out / "compare.csv", csv_comparison(result)),
            "json": atomic_write_text(out / "compare.json", json.dumps(result, indent=2) + "\n")}


def compare_results(paths: Sequence[str | Path], out: str | Path | None = None, cfg: CompareConfig | None = None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load the records of ``paths``, compare and write the tables into ``out`` (default: the folder of
    the first record file); returns the comparison with ``paths`` (written) and ``files`` (read)."""
    records, files = load_records(paths)
    try:
        result = compare_records(records, cfg, log)
    except ValueError as e:
        raise ValueError(f"{', '.join(map(str, files))}: {e}") from None
    written = write_comparison(result, out if out is not None else files[0].parent)
    return {**result, "paths": written, "files": [str(f) for f in files]}
