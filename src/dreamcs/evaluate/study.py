"""A study: every prompt x seed generated into one folder, resumable and shardable.

    DIR/runs/<slug>-s<seed>/   one GeneratePipeline run folder each (config.yaml, final.obj, ...)
    DIR/manifest.jsonl         one record per finished run: run, prompt, seed, variant, config, reward
    DIR/failures.jsonl         runs that raised (the study goes on; a re-run retries them)
    DIR/study.json             the study's settings (prompts file, config, overrides, seeds, variant)

Jobs are listed in a fixed order (prompts in file order, then seeds) and shard ``i/n`` takes jobs
``k`` with ``k % n == i``: every machine computes the same split, the shards are disjoint and their
union is the study. Several shards may write into one shared ``DIR`` (each run folder belongs to one
shard) or into their own folders, joined afterwards by ``merge``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamcs.evaluate.prompts import run_name
from dreamcs.utils import append_jsonl, atomic_write_text, read_jsonl

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"


@dataclass(frozen=True)
class Job:
    """One (prompt, seed) generation; ``index`` is its place in the study's fixed order."""

    index: int
    prompt: str
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.prompt, self.seed)




def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2] (duplicates dropped, order kept)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    return list(dict.fromkeys(seeds))


def plan_jobs(prompts: Sequence[str], seeds: Sequence[int], shard: tuple[int, int] = (0, 1)) -> list[Job]:
    """The jobs of shard ``(i, n)``: prompt-major order, then every n-th job from i."""
    i, n = shard
    jobs = [Job(k, p, int(s)) for k, (p, s) in enumerate((p, s) for p in prompts for s in seeds)]
    return [j for j in jobs if j.index % n == i]


def default_variant(reward: str | None) -> str:
    """``+RewardCS`` when generation is guided by a reward checkpoint, else ``baseline``."""
    return "+RewardCS" if reward else "baseline"


def read_manifest(study_dir: str | Path) -> list[dict[str, Any]]:
    """Finished runs of a study, one record per run folder (the last record wins)."""
    recs: dict[str, dict[str, Any]] = {}
    for r in read_jsonl(Path(study_dir) / MANIFEST):
        recs[r["run"]] = r
    return list(recs.values())


def run_study(
    out: str | Path,
    prompts: Sequence[str],
    config: str,
    *,
    seeds: Sequence[int] = (0,),
    reward: str | None = None,
    variant: str | None = None,
    shard: tuple[int, int] = (0, 1),
    overrides: Sequence[str] = (),
    show_progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Generate this shard's jobs into ``out``; finished runs are skipped, partial ones resumed.

    Returns counts: ``done`` (this call), ``skipped`` (already finished), ``failed``.
    """
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.stages import run_generation

    out = Path(out)
    cfg_path = resolve_config_path(config)
    variant = variant or default_variant(reward)
    # validate the config, overrides and reward once, before any run starts
    load_config(GenerateConfig, cfg_path, list(overrides))
    if reward is not None:
        from dreamcs.generate.pipeline import resolve_reward_dir

        resolve_reward_dir(reward)
    settings = {"config": str(config), "config_path": str(cfg_path), "overrides": list(overrides),
                "seeds": [int(s) for s in seeds], "reward": reward, "variant": variant}
    _check_study_settings(out, settings)
    finished = {r["run"] for r in read_manifest(out)}
    counts = {"done": 0, "skipped": 0, "failed": 0}
    jobs = plan_jobs(prompts, seeds, shard)
    spent: list[float] = []  # seconds of the runs made by this call, for the ETA
    for k, job in enumerate(jobs, 1):
        rel = f"runs/{job.name}"
        run_dir = out / rel
        if rel in finished and (run_dir / "final.obj").is_file():
            counts["skipped"] += 1
            continue
        cfg = load_config(GenerateConfig, cfg_path, list(overrides))
        cfg.prompt, cfg.seed = job.prompt, job.seed
        if reward is not None:
            cfg.reward.checkpoint = reward
        resume = (run_dir / "config.yaml").is_file() or (run_dir / "metrics.jsonl").is_file()
        eta = f" (ETA {_duration(sum(spent) / len(spent) * (len(jobs) - k + 1))})" if spent else ""
        log(f"[{k}/{len(jobs)}] {'resume' if resume else 'run'} {rel}: {job.prompt!r} seed {job.seed}{eta}")
        t0 = time.perf_counter()
        try:
            res = run_generation(cfg, run_dir, resume=resume, show_progress=show_progress)  # stages too
        except Exception as e:  # one bad run must not end a 300-run study; recorded and retried next time
            counts["failed"] += 1
            append_jsonl(out / FAILURES, {"run": rel, "prompt": job.prompt, "seed": job.seed,
                                          "error": f"{type(e).__name__}: {e}"[:2000]})
            log(f"  failed: {type(e).__name__}: {e}")
            continue
        spent.append(time.perf_counter() - t0)
        last = res.metrics[-1] if res.metrics else {}
        append_jsonl(out / MANIFEST, {
            "run": rel, "prompt": job.prompt, "seed": job.seed, "variant": variant, "config": str(config),
            "reward": reward, "steps": res.steps, "final_loss": last.get("loss"),
            "final_reward": last.get("reward"), "seconds": round(time.perf_counter() - t0, 3),
        })
        counts["done"] += 1
    return counts


def _duration(seconds: float) -> str:
    """``1h02m`` / ``3m05s`` / ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _check_study_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write ``study.json``, or check that a resumed study keeps its settings (seeds may grow)."""
    path = out / "study.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in ("config_path", "overrides", "reward", "variant") if old.get(k) != settings.get(k)]
        if changed:
            raise ValueError(f"{out}: holds a study with other settings ({', '.join(changed)} differ); "
                             "use another --out")
        settings = {**settings, "seeds": sorted(set(old.get("seeds", [])) | set(settings["seeds"]))}
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def merge_studies(parts: Sequence[str | Path], out: str | Path, *, move: bool = False) -> dict[str, int]:
    """Join shard folders into ``out``: finished run folders copied (or moved), manifests joined.

    A run present in several parts is taken once (identical name = identical prompt and seed). Parts
    of different variants cannot be merged into one study (their run folders would collide).
    Returns counts: ``runs`` (in out's manifest), ``copied``, ``duplicates``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    have = {r["run"]: r for r in read_manifest(out)}
    variants = {r["variant"] for r in have.values()}
    copied = dupes = 0
    for part in map(Path, parts):
        if not (part / MANIFEST).is_file():
            raise FileNotFoundError(f"{part}: no {MANIFEST}; is it an evaluate run folder?")
        if part.resolve() == out.resolve():
            continue
        for rec in read_manifest(part):
            variants.add(rec["variant"])
            if len(variants) > 1:
                raise ValueError(f"{part}: variant {rec['variant']!r} differs from the others "
                                 f"({', '.join(sorted(variants - {rec['variant']}))}); merge each variant separately")
            src, dst = part / rec["run"], out / rec["run"]
            if rec["run"] in have and (dst / "final.obj").is_file():
                dupes += 1
                continue
            if not (src / "final.obj").is_file():
                raise FileNotFoundError(f"{src}: listed in {part / MANIFEST} but has no final.obj")
            tmp = dst.with_name(dst.name + ".merging")
            shutil.rmtree(tmp, ignore_errors=True)
            if move:
                shutil.move(str(src), str(tmp))
            else:
                shutil.copytree(src, tmp)
            shutil.rmtree(dst, ignore_errors=True)
            tmp.rename(dst)  # the run folder appears whole or not at all
            append_jsonl(out / MANIFEST, rec)
            have[rec["run"]] = rec
            copied += 1
        if (part / "study.json").is_file() and not (out / "study.json").is_file():
            shutil.copyfile(part / "study.json", out / "study.json")
    return {"runs": len(have), "copied": copied, "duplicates": dupes}
