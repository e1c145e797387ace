"""`dreamcs data validation`, `dreamcs data teacher-eval` and `dreamcs data teacher-figures`: the
held-out real-mesh set, how well the geometric scorer (the teacher) separates it, and the teacher's
per-figure reading of a built set as training targets."""

from __future__ import annotations

from pathlib import Path

import typer


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


def validation_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    split: str = typer.Option("heldout", "--split", help="heldout (real objects kept out of training and tuning) or tuning (the licensed training-side meshes)."),
    meshes: Path | None = typer.Option(None, "--meshes", help="Folder with MANIFEST.csv and the held-out meshes (default ../shared/data/meshes)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes."),
    seed: int = typer.Option(0, "--seed", help="Seeds the defects and their severities."),
) -> None:
    """Build an object-disjoint evaluation set: clean meshes, graded defects, wrong prompts."""
    from dreamcs.data.validation import build_validation

    try:
        st = build_validation(out, split, meshes_dir=meshes, seed=seed, workers=workers)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(
        f"{out}: {st['items']} items ({st['preferred']} preferred, {st['dispreferred']} dispreferred), "
        f"{st['failures']} failures, all in split 'test'; {st['build_seconds']} s"
    )


def teacher_eval_cmd(
    dataset: Path = typer.Argument(..., help="A set written by `dreamcs data validation`."),
    config: Path | None = typer.Option(None, "--config", help="YAML with GeometricScorerConfig settings (e.g. the v1 ramps)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes."),
    out: Path | None = typer.Option(None, "--out", help="Write the per-item scores and the table as JSON here."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of the scorer config."),
) -> None:
    """ROC-AUC of the geometric scorer per defect kind (clean items against each kind)."""
    from rich.console import Console
    from rich.table import Table

    from dreamcs.config import ConfigError, load_config
    from dreamcs.data.scorers.geometric import GeometricScorerConfig
    from dreamcs.data.teacher import teacher_eval

    try:
        cfg = load_config(GeometricScorerConfig, config, list(overrides or []))
        res = teacher_eval(dataset, cfg, workers=workers, out=out)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    halves = "".join(f", half {h} ({'development' if h == 'A' else 'report'}) {a:.3f}" for h, a in res["halves"].items() if a is not None)
    t = Table(title=f"geometric scorer on {dataset}: overall ROC-AUC {res['auc']:.3f}{halves}, {res['n_items']} items")
    for h in ("kind", "items", "ROC-AUC", "mean overall", "labelled right"):
        t.add_column(h)
    for kind, r in res["per_kind"].items():
        t.add_row(kind, str(r["n"]), "-" if r["auc"] is None else f"{r['auc']:.3f}", f"{r['mean_overall']:.2f}", f"{100 * r['label_agreement']:.0f}%")
    Console(width=120).print(t)


def teacher_figures_cmd(
    dataset: Path = typer.Argument(..., help="A built MeshPref folder (e.g. `dreamcs data build --preset offline`)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes."),
) -> None:
    """Write the teacher's penalty ramps of every item (teacher_figures.parquet) for `lambda_teacher`."""
    from dreamcs.data.teacher_figures import TEACHER_FIGURES, write_teacher_figures

    try:
        path = write_teacher_figures(dataset, workers=workers)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    failures = dataset / "teacher_figures.failures.jsonl"
    note = f"; items that failed: {failures}" if failures.is_file() else ""
    typer.echo(f"{path}: {len(TEACHER_FIGURES)} figures per item ({', '.join(TEACHER_FIGURES)}){note}")


def add_commands(app: typer.Typer) -> None:
    """Register these commands on the ``dreamcs data`` app."""
    app.command("validation")(validation_cmd)
    app.command("teacher-eval")(teacher_eval_cmd)
    app.command("teacher-figures")(teacher_figures_cmd)
