"""`dreamcs quickstart`: the whole method offline on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import typer


def quickstart(
    overrides: list[str] | None = typer.Argument(None, help="QuickstartConfig overrides: key=value."),
    out: str = typer.Option("demo", "--out", "-o", help="Output folder (reused: a killed demo resumes)."),
    config: str | None = typer.Option(None, "--config", "-c", help="A YAML QuickstartConfig."),
    seed: int = typer.Option(0, "--seed", help="Seed for every stage."),
) -> None:
    """Build the embedded dataset, train RewardCS, generate with and without 3D reward, write a report."""
    from dreamcs.config import ConfigError, load_config
    from dreamcs.quickstart import QuickstartConfig
    from dreamcs.quickstart import quickstart as run

    try:
        cfg = load_config(QuickstartConfig, config, [f"out={out}", f"seed={seed}", *(overrides or [])])
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    run(cfg)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
