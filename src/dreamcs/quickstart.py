"""`dreamcs quickstart` (what `make demo` runs): the whole method offline, on embedded defaults.

    1. mesh core: the sample meshes fused to the 256x64 patch layout (a table);
    2. data: the embedded 3D-MeshPref dataset, built or reused;
    3. reward: RewardCS (cpu preset) trained on it, or reused, then evaluated on the test split (to
       show training; a few hundred items cannot make a reward that generalises);
    4. generation: DMTet with and without 3D reward guidance, when a prior is available; the guide is
       the RewardCS shipped with dreamcs (trained on the `offline` preset) when it is installed,
       else the one trained in step 3;
    5. report: ``OUT/report.html`` with the tables, the paired difference +RewardCS - baseline with
       bootstrap intervals (``evaluate.compare``; also ``OUT/generate/eval/compare.md``) and curves.

Every step reuses what an earlier run left in ``OUT`` (a killed demo resumes where it stopped).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dreamcs.config import save_config
from dreamcs.demo_report import fmt, write_report
from dreamcs.evaluate.compare import CompareConfig, compare_records, display_rows, write_comparison

SAMPLES = Path(__file__).resolve().parent / "assets" / "samples"
#: metrics of the paired comparison in the report (lower is better for all four)
COMPARED = ("chamfer", "janus", "floaters", "holes")


@dataclass
class QuickstartConfig:
    out: str = "demo"
    """Output folder: dataset, reward run, generation runs and report.html."""
    dataset: str | None = None
    """An existing MeshPref dataset to use instead of building one from ``sources``."""
    sources: list[str] = field(default_factory=lambda: ["embedded"])
    """Dataset sources (``dreamcs data build --source`` specs); the embedded set by default."""
    workers: int = 2
    """Processes for the dataset build."""
    reward_preset: str = "cpu"
    """RewardCS preset trained by the demo (cpu, small, base, tiny); the demo's training shows the
    stage, the shipped model guides generation."""
    reward_steps: int = 200
    reward_batch_size: int = 8
    guide: str = "shipped"
    """The reward that guides generation: ``shipped`` (the package's RewardCS, falling back to the one
    trained in step 3 when none is installed), ``trained`` (step 3's) or a RewardCS folder."""
    generate: bool = True
    """Run the generation step (skipped with a message when no prior is available)."""
    generate_config: str = "dmtet-embedded"
    generate_steps: int = 150
    generate_overrides: list[str] = field(default_factory=list)
    """Extra ``key=value`` overrides of the generation config (both variants)."""
    prompts: list[str] = field(default_factory=lambda: ["a vase", "a pyramid", "a king-size bed"])
    """Prompts generated with and without the reward. Captions of embedded meshes (these three are)
    have a ground-truth shape, so the table gets Chamfer and normal consistency to it."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Generation seeds per prompt (the table's std is over prompts and seeds; two give every prompt
    a paired interval for the reward's effect)."""
    seed: int = 0
    """Seed of the dataset build and the reward training."""


def _mesh_table(console: Console) -> list[dict[str, Any]]:
    from dreamcs.mesh import fuse, load_mesh, normalize, quality

    rows = []
    for path in sorted(SAMPLES.glob("*.obj")):
        mesh = normalize(load_mesh(path))
        q = quality(mesh)
        t0 = time.perf_counter()
        pm = fuse(mesh)
        ms = (time.perf_counter() - t0) * 1e3
        rows.append({
            "mesh": path.stem.split("__")[-1].removeprefix("s_"), "faces_in": int(len(mesh.faces)), "components": q["n_components"],
            "watertight": q["watertight"], "patches": f"{pm.faces.shape[0]}x{pm.faces.shape[1]}",
            "connected_patches": f"{pm.n_connected_patches() / pm.n_patches:.0%}", "fuse_ms": f"{ms:.0f}",
        })
    _print_rows(console, "1. mesh core: sample meshes -> 256x64 patch layout", rows)
    return rows


def _print_rows(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title=title)
    for k in rows[0]:
        table.add_column(k)
    for r in rows:
        table.add_row(*[str(v) for v in r.values()])
    console.print(table)


def _dataset(cfg: QuickstartConfig, out: Path, console: Console) -> Path:
    from dreamcs.data.build import BuildConfig, build

    if cfg.dataset is not None:
        console.print(f"2. data: using {cfg.dataset}")
        return Path(cfg.dataset)
    root = out / "meshpref"
    if (root / "items.parquet").exists():
        console.print(f"2. data: reusing {root}")
    else:
        console.print(f"2. data: building a 3D-MeshPref dataset from {', '.join(cfg.sources)}")
        build(BuildConfig(sources=list(cfg.sources), seed=cfg.seed), root, workers=cfg.workers)
    return root


def _reward(cfg: QuickstartConfig, data: Path, out: Path, console: Console) -> tuple[Path, dict[str, Any]]:
    from dreamcs.data import MeshPrefDataset
    from dreamcs.reward import RewardCS, preset
    from dreamcs.reward.config import TRAIN_PRESETS
    from dreamcs.reward.evaluate import evaluate
    from dreamcs.reward.train import TrainConfig, train

    run = out / "reward"
    if (run / "model.safetensors").exists():
        console.print(f"3. reward: reusing {run}")
        model = RewardCS.from_pretrained(run)
    else:
        console.print(f"3. reward: training RewardCS ({cfg.reward_preset}) for {cfg.reward_steps} steps")
        tcfg = TrainConfig(
            model=preset(cfg.reward_preset), steps=cfg.reward_steps, batch_size=cfg.reward_batch_size,
            warmup_steps=max(1, cfg.reward_steps // 10), checkpoint_every=max(1, cfg.reward_steps // 4),
            seed=cfg.seed, lambda_swap=TRAIN_PRESETS.get(cfg.reward_preset, {}).get("lambda_swap", 0.0),
        )
        model = train(tcfg, MeshPrefDataset(data, split="train"), run, resume=True)
    test = MeshPrefDataset(data, split="test")
    metrics = evaluate(model.eval(), test, out_dir=run) if len(test) else {}
    return run, metrics


def _guide(cfg: QuickstartConfig, reward_run: Path, console: Console) -> str:
    """The reward folder that guides generation (see ``QuickstartConfig.guide``)."""
    from dreamcs.reward.model import EMBEDDED, resolve_model_dir

    if cfg.guide == "trained":
        return str(reward_run)
    if cfg.guide != "shipped":
        return cfg.guide
    try:
        path = resolve_model_dir(EMBEDDED)
    except FileNotFoundError:
        console.print(f"4. generate: no shipped RewardCS installed; guiding with the demo's own ({reward_run})")
        return str(reward_run)
    console.print(f"4. generate: guiding with the shipped RewardCS ({path})")
    return str(path)


def _check_prior(cfg: QuickstartConfig) -> None:
    """FileNotFoundError when the generation config wants the embedded prior and none is there (a
    per-run failure inside the study would hide it; a random prior would make meaningless shapes)."""
    from dreamcs.config import load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.guidance.pixel import prior_dir

    g = load_config(GenerateConfig, resolve_config_path(cfg.generate_config), list(cfg.generate_overrides)).guidance
    root = prior_dir(g.pretrained)
    if g.name == "embedded" and not (root / "prior.yaml").is_file():
        raise FileNotFoundError(f"{root}: no embedded prior (train one with `dreamcs prior train`)")


def _generate(cfg: QuickstartConfig, reward_run: Path, out: Path, console: Console) -> dict[str, Any]:
    """Every prompt and seed without and with 3D reward guidance (two ``evaluate`` studies, so a
    killed demo resumes run by run), then both variants' final meshes through the Janus and geometry
    benchmark, with the same RewardCS as the reward column and the embedded mesh of a prompt's
    caption as its ground truth when every prompt has one."""
    from dreamcs.data.embedded import embedded_ground_truth
    from dreamcs.evaluate.janus import janus_benchmark
    from dreamcs.evaluate.study import read_manifest, run_study

    _check_prior(cfg)
    guide = _guide(cfg, reward_run, console)
    studies = {"baseline": (out / "generate" / "baseline", None), "+RewardCS": (out / "generate" / "reward", guide)}
    overrides = [f"steps={cfg.generate_steps}", *cfg.generate_overrides]
    runs = []
    for variant, (study, reward) in studies.items():
        console.print(f"4. generate: {len(cfg.prompts)} prompt(s) x {len(cfg.seeds)} seed(s), {variant} -> {study}")
        counts = run_study(study, cfg.prompts, cfg.generate_config, seeds=cfg.seeds, reward=reward, variant=variant,
                           overrides=overrides, show_progress=True, log=console.print)
        if counts["failed"]:
            console.print(f"4. generate: {counts['failed']} run(s) failed, see {study / 'failures.jsonl'}")
        runs += [{"prompt": r["prompt"], "seed": r["seed"], "variant": variant, "dir": str(study / r["run"])}
                 for r in read_manifest(study)]
    if not runs:
        return {"runs": []}
    known = embedded_ground_truth()
    gt = {q: known[q] for q in cfg.prompts} if all(q in known for q in cfg.prompts) else None
    console.print("4. generate: measuring both variants (Chamfer to ground truth, Janus, floaters, holes, reward)")
    res = janus_benchmark(cfg.prompts, [s for s, _ in studies.values()], out / "generate" / "eval", gt=gt,
                          reward=guide, log=lambda _: None)
    _print_rows(console, "4. generation: mean +/- std over prompts and seeds", [
        {"variant": v, **{m: f"{s['mean']:.3f} +/- {s['std']:.3f}" for m, s in metrics.items()}}
        for v, metrics in res["table"].items()])
    paired = paired_comparison(res["assets"], out / "generate" / "eval", seed=cfg.seed, log=console.print)
    if paired:
        _print_rows(console, "4. generation: +RewardCS - baseline, paired by prompt and seed", display_rows(paired))
    return {"runs": runs, "table": res["table"], "per_prompt": res["per_prompt"], "ground_truth": gt is not None,
            "compare": paired}


def paired_comparison(assets: list[dict[str, Any]], out: Path, *, seed: int = 0,
                      log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """+RewardCS - baseline per prompt and pooled, with bootstrap intervals (``evaluate.compare``),
    on the metrics that both variants have (Chamfer only with ground truth), written to
    ``out/compare.{md,csv,json}``; None (with a message) when there is nothing to pair.
    Costs well under a second: 10,000 resamples of a handful of prompts."""
    def has(m: str, variant: str) -> bool:
        return any(m in r for r in assets if r.get("variant") == variant)

    metrics = [m for m in COMPARED if has(m, "baseline") and has(m, "+RewardCS")]
    if not metrics:
        log("4. generate: no metric that both variants have; no paired comparison")
        return None
    try:
        res = compare_records(assets, CompareConfig(metrics=metrics, a="baseline", b="+RewardCS", seed=seed), log)
    except ValueError as e:  # e.g. every baseline run failed: no pair
        log(f"4. generate: no paired comparison ({e})")
        return None
    write_comparison(res, out)
    return res


def quickstart(cfg: QuickstartConfig) -> Path:
    """Run the demo; returns the path of ``report.html``."""
    console = Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.perf_counter()
    sections: dict[str, Any] = {"mesh": _mesh_table(console)}
    data = _dataset(cfg, out, console)
    stats_path = data / "stats.json"
    sections["stats"] = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    reward_run, metrics = _reward(cfg, data, out, console)
    sections["reward_eval"] = metrics
    _print_rows(console, "3. reward: test split", [{k: fmt(v) for k, v in metrics.items()}] if metrics else [])
    sections["generate"] = {}
    if cfg.generate:
        try:
            sections["generate"] = _generate(cfg, reward_run, out, console)
        except (FileNotFoundError, ImportError) as e:
            console.print(f"4. generate: skipped ({e})")
    sections["seconds"] = round(time.perf_counter() - t0, 1)
    report = write_report(out, sections, reward_run)
    console.print(f"done in {sections['seconds']} s: {report}")
    return report
