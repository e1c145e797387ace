"""Multi-stage recipes (Magic3D: a coarse NeRF, then a DMTet fitted to it and refined).

A recipe with ``stages`` runs one pipeline per stage, in order, into ``RUN/<stage>/``. Each stage's
config is the recipe's config with that stage's ``key=value`` overrides on top; the value
``stage:<name>`` stands for that earlier stage's folder (e.g. ``geometry.init=stage:coarse``).

    stages:
      coarse: [geometry.name=nerf, steps=5000]
      fine: [geometry.name=dmtet, geometry.init=stage:coarse, steps=3000]

The last stage's ``final.obj``, ``final.glb`` and ``turntable.png`` are also copied into RUN/
(where ``dreamcs evaluate`` looks). ``resume=True`` skips the stages that finished (their
``final.obj`` is written) and resumes the first unfinished one from its newest checkpoint. A
recipe without ``stages`` is one pipeline in RUN.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dreamcs.config import config_to_dict, save_config
from dreamcs.generate import pipeline as _pipeline
from dreamcs.generate.config import GenerateConfig
from dreamcs.generate.pipeline import GenerateOutput
from dreamcs.utils import read_jsonl


def stage_config(cfg: GenerateConfig, name: str, run_dir: Path) -> GenerateConfig:
    """The config of stage ``name``: ``cfg`` (without ``stages``) plus its overrides, ``stage:x`` resolved."""
    if name not in cfg.stages:
        raise ValueError(f"stages: no stage {name!r} (have {', '.join(cfg.stages) or 'none'})")
    overrides = []
    for item in cfg.stages[name]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"stages.{name}: override {item!r} is not of the form key=value")
        if value.startswith("stage:"):
            prev = value[len("stage:"):]
            if prev not in cfg.stages or list(cfg.stages).index(prev) >= list(cfg.stages).index(name):
                raise ValueError(f"stages.{name}: {item!r} must name an earlier stage")
            value = str(run_dir / prev)
        overrides.append(f"{key}={value}")
    base = config_to_dict(cfg)
    base["stages"] = {}
    merged = OmegaConf.merge(OmegaConf.structured(GenerateConfig), base, OmegaConf.from_dotlist(overrides))
    out: GenerateConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    return out


def _finished(stage_dir: Path, steps: int) -> bool:
    metrics = stage_dir / "metrics.jsonl"
    return (stage_dir / "final.obj").is_file() and metrics.is_file() and len(read_jsonl(metrics)) >= steps


def run_generation(cfg: GenerateConfig, out_dir: str | Path, *, resume: bool = False, show_progress: bool = True,
                   callback: Callable[[str, int, dict], None] | None = None, **components: Any) -> GenerateOutput:
    """Run a recipe into ``out_dir``: one pipeline, or each of ``cfg.stages`` into its subfolder.

    ``components`` (``guidance``, ``reward_model``) are passed to every stage's pipeline;
    ``callback(stage, step, record)`` is called after each step (stage "" without stages).
    Returns the last stage's output.
    """
    run_dir = Path(out_dir)
    if not cfg.stages:
        # looked up at call time (tests replace it); callback passed only when given
        pipe = _pipeline.GeneratePipeline(cfg, run_dir, show_progress=show_progress, **components)
        if callback is None:
            return pipe(resume=resume)
        return pipe(resume=resume, callback=lambda step, rec: callback("", step, rec))
    cfgs = {name: stage_config(cfg, name, run_dir) for name in cfg.stages}
    for c in cfgs.values():  # every stage's mistakes before the first one runs for hours
        c.validate()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")  # `--resume` without --config finds the recipe here
    result: GenerateOutput | None = None
    for name, stage_cfg in cfgs.items():
        stage_dir = run_dir / name
        if resume and _finished(stage_dir, stage_cfg.steps):
            metrics = read_jsonl(stage_dir / "metrics.jsonl")
            result = GenerateOutput(stage_dir, stage_cfg.steps, stage_dir / "final.obj", stage_dir / "final.glb",
                                    stage_dir / "turntable.png", metrics)
            continue
        pipe = _pipeline.GeneratePipeline(stage_cfg, stage_dir, show_progress=show_progress, **components)
        cb = None if callback is None else (lambda step, rec, name=name: callback(name, step, rec))
        result = pipe(resume=resume and (stage_dir / "metrics.jsonl").exists(), callback=cb)
    assert result is not None
    for name in ("final.obj", "final.glb", "turntable.png"):
        shutil.copyfile(result.run_dir / name, run_dir / name)
    return GenerateOutput(run_dir, result.steps, run_dir / "final.obj", run_dir / "final.glb", run_dir / "turntable.png",
                          result.metrics)
