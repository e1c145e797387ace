"""`dreamcs generate`: text-to-3D with SDS and (optionally) 3D reward guidance."""

from __future__ import annotations

from pathlib import Path

import typer


def generate(
    prompt: str = typer.Argument(..., help="The text prompt."),
    overrides: list[str] | None = typer.Argument(None, help="Config overrides: key=value (dotted keys)."),
    config: str | None = typer.Option(
        None, "--config", "-c", help="A YAML file or a shipped preset (dmtet-sd, dreamfusion-sd, magic3d-sd, dmtet-tiny, ...). "
        "With --resume it defaults to the run's saved config."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    reward: str | None = typer.Option(None, "--reward", help="A RewardCS folder or reward run, or `embedded` (the shipped model): turns on 3D reward guidance."),
    reward_2d: str | None = typer.Option(
        None, "--reward-2d", help="A 2D reward folder (ImageReward / Reward3D, see docs/recipes.md): adds "
        "-alpha_2d r_2d on the rendered views; its head sets reward_2d.name."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the config)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (overrides the config)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate a mesh for PROMPT into OUT: config.yaml, metrics.jsonl, checkpoints/, meshes/step_*.obj,
    final.obj, final.glb and turntable.png."""
    from rich.console import Console

    from dreamcs.config import ConfigError, load_config
    from dreamcs.generate.config import GenerateConfig, resolve_config_path
    from dreamcs.generate.stages import run_generation
    from dreamcs.schedule import ScheduleError

    console = Console(stderr=True)
    try:
        if config is None:
            saved = out / "config.yaml"
            if not (resume and saved.is_file()):
                raise typer.BadParameter("give --config NAME_OR_PATH (or --resume a run that has config.yaml)",
                                         param_hint="--config")
            path = saved
        else:
            path = resolve_config_path(config)
        cfg = load_config(GenerateConfig, path, list(overrides or []))
        cfg.prompt = prompt
        if reward is not None:
            cfg.reward.checkpoint = reward
        if reward_2d is not None:
            from dreamcs.generate.reward2d.config import head_of

            cfg.reward_2d.checkpoint, cfg.reward_2d.name = reward_2d, head_of(reward_2d)
        if seed is not None:
            cfg.seed = seed
        if device is not None:
            cfg.device = device
        result = run_generation(cfg, out, resume=resume, show_progress=not quiet)  # one pipeline per stage
    except (ConfigError, ScheduleError, FileNotFoundError, FileExistsError, ValueError, NotImplementedError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    last = result.metrics[-1] if result.metrics else {}
    reward_txt = f", reward {last['reward']:.3f}" if last.get("reward") is not None else ""
    console.print(f"done: {result.steps} steps, loss {last.get('loss', float('nan')):.4g}{reward_txt}; "
                  f"{result.final_obj}, {result.final_glb}, {result.turntable}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app."""
    app.command("generate")(generate)
