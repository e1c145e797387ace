"""`dreamcs prior` commands: train the offline pixel prior, sample from it, check it, time a training
step, and write the held-out prompts' ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

prior_app = typer.Typer(help="The embedded pixel prior: train it on rendered meshes, sample from it, check it.",
                        no_args_is_help=True)


def _fail(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(max(1, n))


@prior_app.command("train")
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: the prior (unet/, scheduler/, prior.yaml), "
                             "MODEL_CARD.md, metrics.jsonl, checkpoints/."),
    overrides: list[str] | None = typer.Argument(None, help="Config overrides as key=value (e.g. "
                                                 "block_out_channels=[32,64,128] data.n_views=32)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="A YAML PriorTrainConfig file "
                                       "(with --resume: defaults to OUT/config.yaml)."),
    preset: str = typer.Option("embedded", "--preset", help="Training preset: embedded (the shipped prior's "
                               "data: the licensed meshes) or library (+ 3,300 procedural objects, framed "
                               "with margin, view suffixes; configs/prior/library.yaml)."),
    steps: int | None = typer.Option(None, "--steps", help="Total optimiser steps (default 6000)."),
    minutes: float | None = typer.Option(None, "--minutes", help="Wall-clock budget of this run; stops early "
                                         "and still writes the prior."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's newest checkpoint."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (on a shared CPU 1 may be faster)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (overrides the config; a run may "
                                      "resume on the other: its draws are made on the CPU)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Render the preset's objects and train the pixel prior into OUT (resumable)."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.prior.train import PriorTrainConfig, PriorTrainer, preset_path

    _threads(threads)
    if config is None and resume and (out / "config.yaml").is_file():
        config = out / "config.yaml"
    try:
        if config is None:
            config = preset_path(preset)
        cfg = load_config(PriorTrainConfig, config, list(overrides or []))
        if steps is not None:
            cfg.steps = steps
        if minutes is not None:
            cfg.minutes = minutes
        elif resume and not any(o.startswith("minutes=") for o in overrides or []):
            cfg.minutes = None  # a time budget belongs to the invocation that set it, not to the run
        if device is not None:
            cfg.device = device
        result = PriorTrainer(cfg, out, show_progress=not quiet).run(resume=resume)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as e:
        _fail(str(e))
    why = " (time budget spent)" if result.stopped_early else ""
    loss = f", loss {result.final_loss:.4f}" if result.final_loss is not None else ""
    card = f", card {out / 'MODEL_CARD.md'}" if cfg.card else " (no card: card=false; resume with card=true to write it)"
    typer.echo(f"done: step {result.step}{why}{loss}; prior in {out}{card}")


@prior_app.command("sample")
def sample(
    prompts: list[str] = typer.Argument(..., help="One or more prompts (one grid row each)."),
    prior: Path | None = typer.Option(None, "--prior", help="A prior folder (default: the shipped one)."),
    out: Path = typer.Option(Path("prior_samples.png"), "--out", "-o", help="PNG grid to write."),
    n: int = typer.Option(4, "--n", help="Samples per prompt."),
    steps: int = typer.Option(50, "--steps", help="DDIM steps."),
    guidance: float = typer.Option(4.0, "--guidance", help="Classifier-free guidance scale."),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """DDIM samples (classifier-free guidance) from a prior, as a PNG grid."""
    from dreamcs.generate.guidance.pixel import DEFAULT_PRIOR
    from dreamcs.prior.sample import sample_prior, save_grid

    _threads(threads)
    try:
        images = sample_prior(prior or DEFAULT_PRIOR, prompts, n, steps=steps, guidance=guidance, seed=seed)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    save_grid(images, prompts, out)
    typer.echo(f"wrote {out} ({len(prompts)} x {n} samples)")


@prior_app.command("export")
def export(
    run: Path = typer.Argument(..., help="A finished `prior train` folder."),
    to: Path | None = typer.Option(None, "--to", help="Destination (default: the package's assets/prior)."),
) -> None:
    """Copy a trained prior (weights, scheduler, prior.yaml, model card and its images) for shipping."""
    from dreamcs.generate.guidance.pixel import DEFAULT_PRIOR
    from dreamcs.prior.card import export_prior

    try:
        dest = export_prior(run, to or DEFAULT_PRIOR)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"exported {run} to {dest}")


@prior_app.command("speed")
def speed(
    overrides: list[str] | None = typer.Argument(None, help="Config overrides as key=value."),
    repeats: int = typer.Option(5, "--repeats", help="Timed steps (after one warm-up)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Time a training step of the configured model (random data) and say how many fit in an hour."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.prior.train import PriorTrainConfig, count_params, seconds_per_step

    _threads(threads)
    try:
        cfg = load_config(PriorTrainConfig, None, list(overrides or []))
    except (ConfigError, ValueError) as e:
        _fail(str(e))
    wall, cpu = seconds_per_step(cfg, repeats)
    typer.echo(f"{count_params(cfg) / 1e6:.2f} M parameters, batch {cfg.batch_size}: {wall:.3f} s/step wall "
               f"(about {int(3600 / wall)} steps per hour), {cpu:.3f} CPU s/step")


@prior_app.command("check")
def check(
    overrides: list[str] | None = typer.Argument(None, help="CheckConfig overrides as key=value (e.g. samples=16)."),
    prior: Path | None = typer.Option(None, "--prior", help="A prior folder (default: the shipped one)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Share of the prior's samples that a judge trained on unseen objects recognises, per category
    (PRIOR/check.json, check.png, and the model card's table)."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.generate.guidance.pixel import DEFAULT_PRIOR
    from dreamcs.prior.check import CheckConfig, check_prior

    _threads(threads)
    try:
        cfg = load_config(CheckConfig, None, list(overrides or []))
        result = check_prior(prior or DEFAULT_PRIOR, cfg, log=typer.echo)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    worst = sorted(result["categories"].items(), key=lambda kv: kv[1]["recognised_calibrated"])[:5]
    weakest = ", ".join(f"{c} {v['recognised_calibrated']:.0%}" for c, v in worst)
    typer.echo(f"mean recognised {result['mean_recognised']:.0%}, with the judge's bias removed "
               f"{result['mean_recognised_calibrated']:.0%} (judge accuracy {result['judge_accuracy']:.0%}); "
               f"weakest: {weakest}")


@prior_app.command("zero-shot")
def zero_shot(
    overrides: list[str] | None = typer.Argument(None, help="ZeroShotConfig overrides as key=value (e.g. views=4)."),
    prior: Path | None = typer.Option(None, "--prior", help="A prior folder (default: the shipped one)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Which category prompt denoises renders of unseen objects best, per category: the prior used as a
    diffusion classifier (PRIOR/zero_shot.json)."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.generate.guidance.pixel import DEFAULT_PRIOR
    from dreamcs.prior.zero_shot import ZeroShotConfig, zero_shot_check

    _threads(threads)
    try:
        cfg = load_config(ZeroShotConfig, None, list(overrides or []))
        result = zero_shot_check(prior or DEFAULT_PRIOR, cfg, log=typer.echo)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    real = "" if result["real_recognised"] is None else f", held-out real meshes {result['real_recognised']:.0%}"
    worst = sorted(result["categories"].items(), key=lambda kv: kv[1]["recognised"])[:5]
    typer.echo(f"recognised {result['mean_recognised']:.0%} of categories' views (chance {result['chance']:.0%}{real}); "
               f"mean rank of the right prompt {result['mean_rank']:.1f}; weakest: "
               + ", ".join(f"{c} {v['recognised']:.0%}" for c, v in worst))


@prior_app.command("heldout")
def heldout(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for gt.json, prompts.txt and meshes/."),
    meshes: Path | None = typer.Option(None, "--meshes", help="The shared meshes folder (default ../shared/data/meshes)."),
) -> None:
    """Write the held-out prompts (dreamcs.prior.HELD_OUT_PROMPTS) and their ground truth, y-up and
    normalised, for `dreamcs evaluate janus --prompts OUT/prompts.txt --gt OUT/gt.json`."""
    from dreamcs.prior.sources import write_heldout_gt

    try:
        gt = write_heldout_gt(out, meshes)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"wrote {gt} and {out / 'prompts.txt'}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app."""
    app.add_typer(prior_app, name="prior")
