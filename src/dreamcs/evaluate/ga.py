"""GA's protocol: the RewardCS that scores geometry alignment must not be the one that guided generation.

The paper's Table 1 scores GA with a RewardCS trained separately (another seed or configuration)
from the checkpoint used for guidance: a model scoring its own optimisation target rewards the
generator for exploiting it. ``guiding_checkpoints`` reads what guided each run (the study
manifest's ``reward`` and ``reward.checkpoint`` in the run's resolved ``config.yaml`` and in its
stages' folders, since a recipe may name the checkpoint itself), and ``same_as_guidance`` lists
the runs whose guidance is the GA evaluator: the same folder, or the same weights copied elsewhere
(SHA-1 of ``model.safetensors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _checkpoint_in(config: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None  # an unreadable config says nothing about guidance; scoring reports the run itself
    reward = data.get("reward") if isinstance(data, dict) else None
    ckpt = reward.get("checkpoint") if isinstance(reward, dict) else None
    return str(ckpt) if ckpt else None


def guiding_checkpoints(run_dir: Path, manifest_record: dict[str, Any]) -> list[str]:
    """Every RewardCS checkpoint that guided ``run_dir``, as written (a folder, a run, ``embedded``)."""
    found = [str(manifest_record["reward"])] if manifest_record.get("reward") else []
    for cfg in [run_dir / "config.yaml", *sorted(run_dir.glob("*/config.yaml"))]:
        ckpt = _checkpoint_in(cfg) if cfg.is_file() else None
        if ckpt and ckpt not in found:
            found.append(ckpt)
    return found


class _Identity:
    """Where a checkpoint resolves to and its weights' SHA-1, each computed once."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[Path, str] | None] = {}

    def __call__(self, spec: str) -> tuple[Path, str] | None:
        if spec not in self.cache:
            from dreamcs.generate.pipeline import resolve_reward_dir
            from dreamcs.utils import sha1_file

            try:
                d = resolve_reward_dir(spec).resolve()
                self.cache[spec] = (d, sha1_file(d / "model.safetensors"))
            except FileNotFoundError:
                self.cache[spec] = None  # moved or relative to another folder: cannot be compared
        return self.cache[spec]


def same_as_guidance(ga_reward: str, studies_runs: Sequence[tuple[Path, dict[str, Any]]]) -> list[str]:
    """``study/run`` of each run guided by the GA evaluator ``ga_reward`` (same folder or same weights).

    ``studies_runs``: (study folder, manifest record) pairs. Raises ``FileNotFoundError`` when
    ``ga_reward`` itself is not a RewardCS."""
    from dreamcs.generate.pipeline import resolve_reward_dir

    resolve_reward_dir(ga_reward)  # a clear error for a wrong --ga-reward before anything else
    ident = _Identity()
    ga = ident(ga_reward)
    hits = []
    for study, rec in studies_runs:
        for spec in guiding_checkpoints(study / rec["run"], rec):
            guide = ident(spec)
            if ga is not None and guide is not None and (guide[0] == ga[0] or guide[1] == ga[1]):
                hits.append(f"{study}/{rec['run']}")
                break
    return hits


def ga_warning(ga_reward: str, hits: Sequence[str], total: int) -> str | None:
    """The warning to print and record, or None when GA is a separate model for every run."""
    if not hits:
        return None
    shown = ", ".join(hits[:3]) + (f" and {len(hits) - 3} more" if len(hits) > 3 else "")
    return (f"warning: GA is scored by {ga_reward}, the RewardCS (same folder or same weights) that guided "
            f"{len(hits)} of {total} runs ({shown}); the paper's protocol scores GA with a RewardCS trained "
            "separately (another seed or configuration), so these GA numbers favour the guided runs")
