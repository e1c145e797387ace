"""``evaluate score``: per-asset metrics of one or more studies, aggregated per variant.

    OUT/assets.jsonl     one record per asset (run, prompt, seed, variant, every metric, errors)
    OUT/table.{md,csv,json}  (recipe, variant) x metric, mean +/- std (the recipe, the study's
                         generation config, is named when the studies hold more than one)
    OUT/contact_sheet.png    every asset's turntable, labelled
    OUT/failures.jsonl       assets that could not be scored, or whose judge failed, with the reason

Per asset: the mesh is loaded and normalised; the geometry metrics and the Janus heuristic come from
``evaluate.geometry`` (with the Janus decision ``janus``, whose mean is the Janus ratio); CP (the
mean CLIP cosine, as the paper prints it) needs ``clip``, GA a RewardCS evaluator (``ga_reward``: by the paper's
protocol a model trained with another seed or configuration than the one that guided generation;
``evaluate.ga`` warns when it is the same), IR a 2D reward folder, VR a VisionReward VLM folder
(``evaluate.vision_reward``), the judge an endpoint. An asset whose mesh cannot be read, or whose scoring raises, is recorded
with its ``error`` and left out of the means (the run goes on); a judge that fails (bad reply,
dropped connection) leaves ``judge_error`` and is asked again on the next run. Records are cached in ``assets.jsonl`` under a key of the scoring settings, so a
re-run only scores what is new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamcs.evaluate.study import read_manifest
from dreamcs.evaluate.tables import aggregate, contact_sheet, group_labels, recipe_of, write_tables
from dreamcs.utils import append_jsonl, atomic_write_text, read_jsonl

#: 2: CP as the cosine (was 100 x), the Janus decision ``janus``, the recipe of each record
RECORD_FORMAT = 2


@dataclass
class ScoreConfig:
    """What ``score_studies`` computes."""

    clip: str | None = None
    """CLIP model folder or hub id for CP; None skips CP."""
    ga_reward: str | None = None
    """RewardCS evaluator (model folder or reward run) for GA; None skips GA."""
    image_reward: str | None = None
    """A 2D reward folder (ImageReward, or a DreamReward Reward3D head; ``dreamcs.generate.reward2d``,
    converted from the public checkpoints) scored on the turntable views for the IR column; None skips it."""
    vision_reward: str | None = None
    """A VisionReward folder (a transformers VLM, optionally with ``vision_reward.yaml`` and
    ``checklist.yaml``; ``dreamcs.evaluate.vision_reward``) scored on the turntable views for the VR
    column; None skips it."""
    vision_reward_overrides: list[str] = field(default_factory=list)
    """``key=value`` overrides of the folder's ``VisionRewardConfig`` (e.g. ``answers=soft``)."""
    judge_url: str | None = None
    """OpenAI-compatible endpoint of the VLM judge; None skips the judge."""
    judge_model: str = "gpt-4o"
    views: int = 8
    """Turntable views rendered for CP (and for the judge and contact sheet when a run has no turntable.png)."""
    resolution: int = 224
    n_patches: int = 256
    """Patches of the fused mesh that GA scores (the evaluator's faces_per_patch is its own)."""
    points: int = 2048
    """Surface samples for the Janus heuristic."""
    device: str = "cpu"

    def key(self) -> str:
        """A hash of the settings that change a record's numbers (not the device), and of the
        record format (records of an older format, e.g. CP as 100 x cosine, are scored again)."""
        d = asdict(self)
        d.pop("device")
        if not self.vision_reward:  # added later: without VR the key is the one earlier caches were written under
            d.pop("vision_reward"), d.pop("vision_reward_overrides")
        d["record_format"] = RECORD_FORMAT
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


class AssetScorer:
    """Loads the optional models once and scores one run folder at a time."""

    def __init__(self, cfg: ScoreConfig) -> None:
        self.cfg = cfg
        self.clip = self.ga = self.judge = self.image_reward = self.vision_reward = None
        if cfg.clip:
            from dreamcs.evaluate.clip_score import ClipScorer

            self.clip = ClipScorer(cfg.clip, cfg.device)
        if cfg.ga_reward:
            from dreamcs.generate.pipeline import resolve_reward_dir
            from dreamcs.reward import RewardCS

            self.ga = RewardCS.from_pretrained(resolve_reward_dir(cfg.ga_reward), device=cfg.device)
        if cfg.image_reward:
            from dreamcs.generate.reward2d.blip_reward import load_blip_reward

            self.image_reward = load_blip_reward(cfg.image_reward, device=cfg.device)
        if cfg.vision_reward:
            from dreamcs.evaluate.vision_reward import load_vision_reward

            self.vision_reward = load_vision_reward(cfg.vision_reward, cfg.vision_reward_overrides, device=cfg.device)
        if cfg.judge_url:
            from dreamcs.evaluate.judge import JudgeConfig, VLMJudge

            self.judge = VLMJudge(JudgeConfig(url=cfg.judge_url, model=cfg.judge_model))

    def views(self, mesh: Any) -> np.ndarray:
        """(N, H, W, 3) uint8 turntable of the normalised mesh."""
        from dreamcs.render import render_views

        return render_views(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64),
                            self.cfg.views, self.cfg.resolution)

    def reward(self, model: Any, mesh: Any, prompt: str) -> float:
        from dreamcs.mesh import fuse

        pm = fuse(mesh, n_patches=self.cfg.n_patches, faces_per_patch=int(model.config.faces_per_patch))
        return float(model.score(pm, prompt, figures_from=mesh))

    @torch.no_grad()
    def image_reward_of(self, views: np.ndarray, prompt: str) -> float:
        """Mean 2D reward of the prompt over the views (N, H, W, 3) uint8."""
        from dreamcs.generate.reward2d.blip_reward import preprocess

        model, tok = self.image_reward
        dev = next(model.parameters()).device
        x = preprocess(torch.from_numpy(np.ascontiguousarray(views)).to(dev, torch.float32) / 255.0, model.config.image_size)
        b = tok([prompt] * len(views), padding="max_length", truncation=True, max_length=model.config.max_length,
                return_tensors="pt")
        return float(model(x, b.input_ids.to(dev), b.attention_mask.to(dev)).mean())

    def score(self, run_dir: Path, prompt: str) -> tuple[dict[str, Any], np.ndarray | None]:
        """Metrics of ``run_dir/final.obj`` for ``prompt``, and the views rendered (or None)."""
        from dreamcs.evaluate.geometry import geometry_metrics
        from dreamcs.mesh import MeshError, load_mesh, normalize

        rec: dict[str, Any] = {}
        try:
            mesh = normalize(load_mesh(run_dir / "final.obj"))
        except MeshError as e:
            return {"error": str(e)}, None
        rec.update(geometry_metrics(mesh, n=self.cfg.points))
        views = None
        if any(m is not None for m in (self.clip, self.judge, self.image_reward, self.vision_reward)):
            views = self.views(mesh)
        if self.clip is not None:
            rec["clip_score"] = self.clip.score(views, prompt)
        if self.image_reward is not None:
            rec["image_reward"] = self.image_reward_of(views, prompt)
        if self.vision_reward is not None:
            rec["vision_reward"] = self.vision_reward.score(views, prompt)
        if self.ga is not None:
            try:
                rec["ga"] = self.reward(self.ga, mesh, prompt)
            except (MeshError, ValueError) as e:
                rec["ga_error"] = str(e)[:500]
        if self.judge is not None:
            from dreamcs.data.scorers import ScoreError

            try:
                rec.update({f"judge_{k}": v for k, v in self.judge.judge(np.concatenate(list(views), 1), prompt).items()})
            except ScoreError as e:
                rec["judge_error"] = e.reason[:500]
                rec["judge_raw"] = (e.raw or "")[:2000]
            except OSError as e:  # a transport error the client did not turn into a ScoreError
                rec["judge_error"] = f"{type(e).__name__}: {e}"[:500]
        return rec, views


def _strip(run_dir: Path, views: np.ndarray | None) -> np.ndarray | None:
    if views is not None:
        return np.concatenate(list(views), 1)
    png = run_dir / "turntable.png"
    if png.is_file():
        from PIL import Image

        return np.asarray(Image.open(png).convert("RGB"))
    return None


def _reusable(rec: dict[str, Any] | None, mesh: Path) -> bool:
    """A cached record counts when its mesh is unchanged and its judge did not fail (a re-run
    retries the judge, as the data stage retries an LLM scorer, never inventing a score)."""
    from dreamcs.utils import sha1_file

    return (rec is not None and "judge_error" not in rec and mesh.is_file()
            and rec.get("mesh_sha1") == sha1_file(mesh))


class _progress:
    """A rich progress bar with ETA over ``total`` assets (on stderr; silent when not a terminal)."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, total

    def __enter__(self) -> Callable[[], None]:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn(f"[bold]{self.what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        task = self.bar.add_task(self.what, total=self.total)
        self.bar.start()
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()


def score_studies(
    studies: Sequence[str | Path], out: str | Path, cfg: ScoreConfig, *, log: Callable[[str], None] = print,
    sheet: bool = True,
) -> dict[str, Any]:
    """Score every finished run of ``studies`` into ``out``; returns {"assets", "table", "paths",
    "ga_warning"} (the warning, also in ``table.json``, when GA's evaluator guided some runs)."""
    from dreamcs.utils import sha1_file

    out = Path(out)
    key = cfg.key()
    cache = {(r["study"], r["run"]): r for r in read_jsonl(out / "assets.jsonl") if r.get("settings") == key}
    scorer: AssetScorer | None = None
    records, strips = [], []
    jobs = []
    for study in map(Path, studies):
        runs = read_manifest(study)
        if not runs:
            raise FileNotFoundError(f"{study}: no finished runs in {study / 'manifest.jsonl'}")
        jobs += [(study, run) for run in sorted(runs, key=lambda r: (r["prompt"], r["seed"]))]
    ga_warn = None
    if cfg.ga_reward:
        from dreamcs.evaluate.ga import ga_warning, same_as_guidance

        ga_warn = ga_warning(cfg.ga_reward, same_as_guidance(cfg.ga_reward, jobs), len(jobs))
        if ga_warn:
            log(ga_warn)
    with _progress("scoring assets", len(jobs)) as advance:
        for study, run in jobs:
            run_dir = study / run["run"]
            views = None
            rec = cache.get((str(study), run["run"]))
            if not _reusable(rec, run_dir / "final.obj"):
                scorer = scorer or AssetScorer(cfg)
                log(f"score {run_dir}")
                crashed = False
                try:
                    metrics, views = scorer.score(run_dir, run["prompt"])
                except Exception as e:  # one asset's failure goes to the errors; the run goes on
                    metrics, crashed = {"error": f"{type(e).__name__}: {e}"[:2000]}, True
                    log(f"  failed: {metrics['error'][:200]}")
                sha = sha1_file(run_dir / "final.obj") if (run_dir / "final.obj").is_file() else None
                rec = {"study": str(study), "run": run["run"], "prompt": run["prompt"], "seed": run["seed"],
                       "variant": run["variant"], "recipe": recipe_of(run.get("config")), "settings": key,
                       "mesh_sha1": sha, **metrics}
                if not crashed:
                    append_jsonl(out / "assets.jsonl", rec)  # a crashed asset is not cached: retried next time
            records.append(rec)
            strips.append(_strip(run_dir, views) if sheet else None)
            advance()
    cells: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for rec, label, strip in zip(records, group_labels(records), strips, strict=True):
        if strip is not None:
            cells.setdefault((rec["prompt"], rec["seed"]), {})[label] = strip
    agg = aggregate(records)
    paths = write_tables(out, agg, "table", extra={"settings": asdict(cfg), "n_assets": len(records),
                                                   "errors": [r for r in records if "error" in r],
                                                   "judge_errors": [r for r in records if "judge_error" in r],
                                                   "ga_warning": ga_warn})
    fails = [{k: r.get(k) for k in ("study", "run", "prompt", "seed", "variant", "error", "judge_error") if r.get(k) is not None}
             for r in records if "error" in r or "judge_error" in r]
    paths["failures"] = atomic_write_text(out / "failures.jsonl", "".join(json.dumps(f) + "\n" for f in fails))
    if sheet and cells:
        paths["sheet"] = contact_sheet(cells, list(agg), out / "contact_sheet.png")
    return {"assets": records, "table": agg, "paths": paths, "ga_warning": ga_warn}
