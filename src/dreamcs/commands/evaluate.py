"""`dreamcs evaluate`: run a prompt-set study, merge shards, score it, the Janus benchmark, a paired
comparison of two variants with bootstrap intervals, and the representation floor of a recipe."""

from __future__ import annotations

from pathlib import Path

import typer

evaluate_app = typer.Typer(help="Evaluate text-to-3D on a prompt set: run, merge, score, janus, compare.",
                           no_args_is_help=True)


def _fail(msg: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(msg)}")
    raise typer.Exit(2)


@evaluate_app.command("run")
def run(
    overrides: list[str] | None = typer.Argument(None, help="Generation config overrides: key=value."),
    prompts: Path = typer.Option(..., "--prompts", help="JSON list, JSON object of lists, or one prompt per line."),
    config: str = typer.Option(..., "--config", "-c", help="Generation config: a YAML file or a shipped preset."),
    out: Path = typer.Option(..., "--out", "-o", help="Study folder (runs/, manifest.jsonl)."),
    reward: str | None = typer.Option(None, "--reward", help="RewardCS folder or reward run: guided generation."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    shard: str | None = typer.Option(None, "--shard", help="i/n: run only this deterministic share of the jobs."),
    variant: str | None = typer.Option(None, "--variant", help="Name in the tables (default: baseline / +RewardCS)."),
    progress: bool = typer.Option(False, "--progress", help="Show each run's progress bar."),
) -> None:
    """Generate every prompt x seed into OUT/runs/<slug>-s<seed>/; finished runs are skipped, partial ones resumed."""
    from dreamcs.config import ConfigError
    from dreamcs.evaluate.prompts import PromptFileError, load_prompts
    from dreamcs.evaluate.study import parse_seeds, run_study
    from dreamcs.utils import parse_shard

    try:
        counts = run_study(out, load_prompts(prompts), config, seeds=parse_seeds(seeds), reward=reward,
                           variant=variant, shard=parse_shard(shard), overrides=list(overrides or []),
                           show_progress=progress, log=typer.echo)
    except (PromptFileError, ConfigError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"done {counts['done']}, skipped {counts['skipped']} (finished before), failed {counts['failed']}")
    if counts["failed"]:
        typer.echo(f"failures: {out / 'failures.jsonl'} (run the same command again to retry)")
        raise typer.Exit(1)


@evaluate_app.command("merge")
def merge(
    parts: list[Path] = typer.Argument(..., help="Shard study folders."),
    out: Path = typer.Option(..., "--out", "-o", help="The merged study folder."),
    move: bool = typer.Option(False, "--move", help="Move run folders instead of copying them."),
) -> None:
    """Join shard folders into one study (runs copied, manifests joined, duplicates taken once)."""
    from dreamcs.evaluate.study import merge_studies

    try:
        c = merge_studies(parts, out, move=move)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"{out}: {c['runs']} runs ({c['copied']} added, {c['duplicates']} already there)")


@evaluate_app.command("score")
def score(
    studies: list[Path] = typer.Argument(..., help="Study folders (one per variant, e.g. baseline and +RewardCS)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where the tables go (default: first STUDY/eval)."),
    clip: str | None = typer.Option(None, "--clip", help="CLIP folder or hub id for CP."),
    ga_reward: str | None = typer.Option(None, "--ga-reward", help="RewardCS evaluator for GA (not the guiding one)."),
    image_reward: str | None = typer.Option(None, "--image-reward", help="ImageReward / Reward3D folder (dreamcs.generate.reward2d) for IR."),
    vision_reward: str | None = typer.Option(None, "--vision-reward", help="VisionReward folder (a transformers VLM, "
                                             "+ vision_reward.yaml, checklist.yaml) or hub id for VR."),
    vr_set: list[str] | None = typer.Option(None, "--vr-set", help="VisionReward setting key=value (repeat), e.g. answers=soft."),
    judge_url: str | None = typer.Option(None, "--judge-url", help="OpenAI-compatible endpoint for the VLM judge."),
    judge_model: str = typer.Option("gpt-4o", "--judge-model"),
    views: int = typer.Option(8, "--views", help="Turntable views for CP, IR, VR and the judge."),
    resolution: int = typer.Option(224, "--resolution"),
    n_patches: int = typer.Option(256, "--n-patches", help="Patches of the fused mesh for GA."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Per-asset metrics and a variant x metric table (Markdown, CSV, JSON) plus a contact sheet."""
    from dreamcs.evaluate.score import ScoreConfig, score_studies

    cfg = ScoreConfig(clip=clip, ga_reward=ga_reward, image_reward=image_reward, vision_reward=vision_reward,
                      vision_reward_overrides=list(vr_set or []), judge_url=judge_url, judge_model=judge_model,
                      views=views, resolution=resolution, n_patches=n_patches, device=device)
    try:
        res = score_studies(studies, out or studies[0] / "eval", cfg, log=typer.echo)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo((res["paths"]["md"]).read_text(encoding="utf-8"))
    if res["ga_warning"]:
        typer.echo(res["ga_warning"])
    typer.echo("written: " + ", ".join(str(p) for p in res["paths"].values()))


@evaluate_app.command("janus")
def janus(
    prompts: Path = typer.Option(..., "--prompts", help="Prompt file."),
    runs: list[Path] = typer.Option(..., "--runs", help="Study folder; repeat for each variant."),
    gt: Path | None = typer.Option(None, "--gt", help="JSON map prompt -> ground-truth mesh path."),
    reward: str | None = typer.Option(None, "--reward", help="RewardCS evaluator for the reward column."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where janus.md/json go (default: first RUNS/eval)."),
    points: int = typer.Option(2048, "--points", help="Surface samples per mesh."),
) -> None:
    """Janus and geometry benchmark: Chamfer/NC to ground truth, Janus heuristic, floaters, holes, reward."""
    from dreamcs.evaluate.janus import janus_benchmark, load_gt_map
    from dreamcs.evaluate.prompts import PromptFileError, load_prompts

    try:
        res = janus_benchmark(load_prompts(prompts), runs, out or runs[0] / "eval",
                              gt=load_gt_map(gt) if gt else None, reward=reward, points=points, log=typer.echo)
    except (PromptFileError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(res["paths"]["md"].read_text(encoding="utf-8"))


@evaluate_app.command("compare")
def compare(
    results: list[Path] = typer.Argument(..., help="janus.json / assets.jsonl files, or folders holding them "
                                                   "(a study folder: its eval/); e.g. STUDY_A STUDY_B."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where compare.md/csv/json go (default: beside the first records)."),
    metrics: str = typer.Option("chamfer,janus,floaters,holes", "--metrics", help="Comma-separated metrics."),
    a: str | None = typer.Option(None, "--a", help="Group A (variant, or 'recipe / variant'); default: the baseline."),
    b: str | None = typer.Option(None, "--b", help="Group B; default: the other of two groups."),
    resamples: int = typer.Option(10_000, "--resamples", help="Bootstrap resamples per interval."),
    confidence: float = typer.Option(0.95, "--confidence", help="Coverage of the percentile interval."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
) -> None:
    """Paired B - A per prompt (seeds matched) with bootstrap intervals, pooled hierarchically over prompts."""
    from dreamcs.evaluate.compare import CompareConfig, compare_results

    cfg = CompareConfig(metrics=[m.strip() for m in metrics.split(",") if m.strip()], a=a, b=b,
                        resamples=resamples, confidence=confidence, seed=seed)
    try:
        res = compare_results(results, out, cfg, log=typer.echo)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(res["paths"]["md"].read_text(encoding="utf-8"))
    typer.echo("written: " + ", ".join(str(p) for p in res["paths"].values()))


@evaluate_app.command("floor")
def floor(
    overrides: list[str] | None = typer.Argument(None, help="Generation config overrides: key=value "
                                                 "(e.g. geometry.grid_resolution=32)."),
    gt: Path = typer.Option(..., "--gt", help="JSON map prompt -> ground-truth mesh path."),
    config: str = typer.Option("dmtet-embedded", "--config", "-c", help="Generation recipe whose field is measured."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompt file (default: every prompt of --gt)."),
    size: float = typer.Option(1.0, "--size", help="Object half-extent in the grid (SDS shapes are often smaller)."),
    steps: int = typer.Option(0, "--steps", help="Fit steps (0: the recipe's geometry.init_steps)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write floor.md and floor.json into this folder."),
) -> None:
    """The representation floor: the Chamfer the recipe's field reaches when fitted to the ground truth."""
    import json

    from dreamcs.config import ConfigError, load_config
    from dreamcs.evaluate.floor import floor_markdown, floor_table
    from dreamcs.evaluate.janus import load_gt_map
    from dreamcs.evaluate.prompts import PromptFileError, load_prompts
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.utils import atomic_write_text

    try:
        cfg = load_config(GenerateConfig, resolve_config_path(config), list(overrides or []))
        res = floor_table(cfg.geometry, load_gt_map(gt), load_prompts(prompts) if prompts else None,
                          steps=steps, size=size, log=typer.echo)
    except (ConfigError, PromptFileError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    md = floor_markdown(res)
    if out is not None:
        atomic_write_text(out / "floor.md", md)
        atomic_write_text(out / "floor.json", json.dumps(res, indent=2) + "\n")
    typer.echo(md)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app."""
    app.add_typer(evaluate_app, name="evaluate")
