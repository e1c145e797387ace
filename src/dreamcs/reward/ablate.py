"""The training objectives side by side: every ``loss_type`` trained on the same data with the same
seeds and settings, evaluated on one validation set, summarised as mean +/- std over seeds.

    DIR/runs/<loss>_seed<s>/          a normal training run (resumable) ...
    DIR/runs/<loss>_seed<s>/val/      ... and its evaluation (eval.json marks the run finished)
    DIR/ablation.json / .csv / .md    per-run metrics and the summary table

Rerunning skips finished runs and resumes interrupted ones from their last checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dreamcs.reward.losses import LOSS_TYPES
from dreamcs.reward.train import TrainConfig
from dreamcs.utils import atomic_write_text

METRICS = ("pair_accuracy", "roc_auc", "same_prompt_pair_accuracy", "prompt_agreement", "d_cs", "spearman")
"""Reported per run and summarised per objective (names as in ``evaluate``)."""
LABELS = {"pair_accuracy": "accuracy", "roc_auc": "ROC-AUC", "same_prompt_pair_accuracy": "same-prompt acc.",
          "prompt_agreement": "prompt agreement", "d_cs": "D_CS", "spearman": "Spearman"}


def run_name(loss_type: str, seed: int) -> str:
    return f"{loss_type}_seed{seed}"


def ablate(
    cfg: TrainConfig, train_data: Any, val_data: Any, out_dir: str | os.PathLike,
    loss_types: Sequence[str] = LOSS_TYPES, seeds: Sequence[int] = (0, 1, 2),
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Train ``cfg`` once per (loss_type, seed) on ``train_data``, evaluate each on ``val_data``,
    write the tables into ``out_dir``; returns {"runs": [...], "summary": {loss: {metric: (mean, std, n)}}}.

    A run that cannot train on this data (bradley_terry without same-prompt pairs) is recorded
    with its error and left out of the summary.
    """
    from dreamcs.reward.evaluate import _jsonable, evaluate
    from dreamcs.reward.model import RewardCS
    from dreamcs.reward.train import train

    bad = [t for t in loss_types if t not in LOSS_TYPES]
    if bad or not loss_types or not seeds:
        raise ValueError(f"ablate needs loss types among {LOSS_TYPES} and at least one seed; got {list(loss_types)}, "
                         f"{list(seeds)}")
    out = Path(out_dir)
    runs: list[dict[str, Any]] = []
    for loss_type in loss_types:
        for seed in seeds:
            name = run_name(loss_type, seed)
            run_dir = out / "runs" / name
            done = run_dir / "val" / "eval.json"
            rec: dict[str, Any] = {"run": name, "loss_type": loss_type, "seed": int(seed)}
            run_cfg = dataclasses.replace(cfg, loss_type=loss_type, seed=int(seed))
            _check_same_settings(run_dir, run_cfg)
            if done.is_file():
                log(f"{name}: finished earlier, skipped")
                rec.update(json.loads(done.read_text(encoding="utf-8")))
            else:
                log(f"{name}: training")
                try:
                    train(run_cfg, train_data, run_dir, resume=True)
                except ValueError as e:  # e.g. no same-prompt pairs for bradley_terry
                    log(f"{name}: cannot train on this data ({e})")
                    rec["error"] = str(e)
                    runs.append(rec)
                    continue
                model = RewardCS.from_pretrained(run_dir, device=cfg.device)
                rec.update(_jsonable(evaluate(model, val_data, run_dir / "val")))
            runs.append(rec)
    summary = summarise(runs, loss_types)
    result = {"train_config": _config_dict(cfg), "seeds": [int(s) for s in seeds], "runs": runs, "summary": summary}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablation.json", json.dumps(result, indent=2))
    atomic_write_text(out / "ablation.csv", to_csv(summary))
    atomic_write_text(out / "ablation.md", to_markdown(summary, len(seeds), cfg))
    return result


def _check_same_settings(run_dir: Path, cfg: TrainConfig) -> None:
    """A run folder left by an earlier ablation must have been trained with these settings."""
    saved = run_dir / "train_config.json"
    if not saved.is_file():
        return
    ignore = {"progress", "device"}
    old = {k: v for k, v in json.loads(saved.read_text(encoding="utf-8")).items() if k not in ignore}
    new = {k: v for k, v in _config_dict(cfg).items() if k not in ignore}
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f"{run_dir}: trained earlier with other settings ({', '.join(diff)}); "
                         "use a new --out folder (or delete that run) to ablate these settings")


def summarise(runs: list[dict[str, Any]], loss_types: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per loss type and metric: mean, sample std (0 for one run) and count over the finished runs."""
    summary: dict[str, dict[str, Any]] = {}
    for t in loss_types:
        rows = [r for r in runs if r["loss_type"] == t and "error" not in r]
        entry: dict[str, Any] = {"runs": len(rows)}
        for m in METRICS:
            vals = [float(r[m]) for r in rows if r.get(m) is not None and math.isfinite(float(r[m]))]
            mean = sum(vals) / len(vals) if vals else None
            std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0) if vals else None
            entry[m] = {"mean": mean, "std": std, "n": len(vals)}
        errors = [r["error"] for r in runs if r["loss_type"] == t and "error" in r]
        if errors:
            entry["error"] = errors[0]
        summary[t] = entry
    return summary


def to_csv(summary: dict[str, dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["loss_type", "runs", *[f"{m}_{s}" for m in METRICS for s in ("mean", "std")]])
    for t, e in summary.items():
        w.writerow([t, e["runs"], *[_num(e[m][s]) for m in METRICS for s in ("mean", "std")]])
    return buf.getvalue()


def to_markdown(summary: dict[str, dict[str, Any]], n_seeds: int, cfg: TrainConfig) -> str:
    head = ["objective", "runs", *[LABELS[m] for m in METRICS]]
    lines = [
        f"# RewardCS objectives side by side ({n_seeds} seeds, {cfg.steps} steps, batch {cfg.batch_size})",
        "",
        "Mean +/- std over seeds on the validation set. accuracy: share of (preferred, dispreferred) pairs "
        "ranked right; same-prompt acc.: the same over pairs that share a prompt; D_CS: between the "
        "classes' embeddings (cross-median bandwidth).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for t, e in summary.items():
        cells = [f"{e[m]['mean']:.3f} +/- {e[m]['std']:.3f}" if e[m]["mean"] is not None else "n/a" for m in METRICS]
        lines.append(f"| {t} | {e['runs']} | " + " | ".join(cells) + " |")
    notes = [f"- {t}: not trained ({e['error']})" for t, e in summary.items() if "error" in e]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    from dreamcs.config import config_to_dict

    return config_to_dict(cfg)
